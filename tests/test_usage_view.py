"""``%cortex_claude usage``'s plot: a real time axis, tokens and estimated credits, by model or by
client, the legend beside the bars (issue 15). The whole magic runs in a real kernel in
tests/test_notebooks.py; here the figure itself is measured."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import matplotlib.dates as mdates
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from jupyter_cortex_claude.kernel.usage_view import figure_png, plot_usage, usage_series


def group(hour: str, model: str, client: str, tokens: int, credits: float) -> dict[str, Any]:
    return {
        "hour": hour,
        "model": model,
        "client": client,
        "requests": 1,
        "input_tokens": tokens - 100,
        "output_tokens": 100,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "estimated_credits": credits,
    }


GROUPS = [
    group("2026-11-28T09:00", "claude-sonnet-4-6", "claude-cli/2.1", 15_000, 0.04),
    group("2026-11-28T10:00", "claude-opus-4-6", "claude-cli/2.1", 10_000, 0.05),
    group("2026-11-28T10:00", "claude-sonnet-4-6", "aider", 2_500, 0.006),
    # Thirty-six idle hours, then one more request: the axis must show the gap.
    group("2026-11-29T22:00", "claude-sonnet-4-6", "aider", 59_000, 0.14),
]


def bar_starts(axes: Any) -> list[datetime]:
    return sorted(
        {mdates.num2date(patch.get_x()).replace(tzinfo=timezone.utc) for patch in axes.patches}
    )


def test_bars_stand_at_their_hour_on_a_time_axis_so_idle_hours_show_as_a_gap() -> None:
    figure = plot_usage(GROUPS)
    token_axes, credit_axes = figure.axes
    starts = bar_starts(token_axes)
    assert starts[-1] - starts[0] == timedelta(hours=37)  # not three evenly spaced categories
    assert bar_starts(credit_axes) == starts
    assert "per hour (UTC), by model" in token_axes.get_title()
    assert token_axes.get_ylabel() == "tokens"
    assert credit_axes.get_ylabel() == "credits (estimate)"


def test_tokens_and_estimated_credits_add_up_per_hour_by_model_or_by_client() -> None:
    bucket, times, tokens, credits = usage_series(GROUPS, by="model")
    assert bucket == "hour" and len(times) == 3
    assert tokens["claude-sonnet-4-6"] == [15_000, 2_500, 59_000]
    assert credits["claude-opus-4-6"] == [0.0, 0.05, 0.0]
    _, _, by_client, client_credits = usage_series(GROUPS, by="client")
    assert set(by_client) == {"claude-cli/2.1", "aider"}
    assert by_client["claude-cli/2.1"] == [15_000, 10_000, 0]
    assert sum(map(sum, client_credits.values())) == pytest.approx(0.236)


def test_the_legend_stands_beside_the_bars_not_over_them() -> None:
    figure = plot_usage(GROUPS, by="client")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # legend and axes get their final positions
    renderer = canvas.get_renderer()
    token_axes = figure.axes[0]
    legend = token_axes.get_legend()
    assert legend is not None and legend.get_title().get_text() == "client"
    legend_box = legend.get_window_extent(renderer)
    for axes in figure.axes:
        assert legend_box.x0 >= axes.get_window_extent(renderer).x1  # entirely to the right
    assert {text.get_text() for text in legend.get_texts()} == {"aider", "claude-cli/2.1"}


def test_a_month_of_usage_is_summed_into_days() -> None:
    month = [
        group(f"2026-11-{day:02d}T{hour:02d}:00", "claude-haiku-4-5", "c", 1_000, 0.001)
        for day in (1, 2, 20)
        for hour in (8, 17)
    ]
    bucket, times, tokens, _ = usage_series(month)
    assert bucket == "day"
    assert [moment.day for moment in times] == [1, 2, 20]
    assert tokens["claude-haiku-4-5"] == [2_000, 2_000, 2_000]
    figure = plot_usage(month)
    assert "per day (UTC)" in figure.axes[0].get_title()
    assert figure_png(figure).startswith(b"\x89PNG")


def test_nothing_recorded_means_no_plot() -> None:
    assert plot_usage([]) is None
