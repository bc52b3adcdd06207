"""Results as Markdown tables, every number also as a ratio to the straight path."""

from __future__ import annotations

import math
from typing import Any

from .measure import Target


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or math.isnan(value) or math.isnan(base) or base <= 0:
        return "–"
    return f"×{value / base:.2f}"


def _added(value: float | None, base: float | None) -> str:
    if value is None or base is None or math.isnan(value) or math.isnan(base):
        return "–"
    return f"{value - base:+.2f}"


def latency_table(targets: list[Target]) -> str:
    by_name = {target.name: target for target in targets}
    lines = [
        "| path | non-stream p50 ms | p99 ms | added p50 ms | ratio p50 | stream TTFB p50 ms "
        "| p99 ms | added TTFB p50 ms | ratio TTFB p50 | server CPU µs/event | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        r = target.results
        base = by_name[target.baseline].results if target.baseline in by_name else {}
        lines.append(
            f"| {target.name} | {_num(r.get('plain_p50'))} | {_num(r.get('plain_p99'))} "
            f"| {_added(r.get('plain_p50'), base.get('plain_p50'))} "
            f"| {_ratio(r.get('plain_p50'), base.get('plain_p50'))} "
            f"| {_num(r.get('ttfb_p50'))} | {_num(r.get('ttfb_p99'))} "
            f"| {_added(r.get('ttfb_p50'), base.get('ttfb_p50'))} "
            f"| {_ratio(r.get('ttfb_p50'), base.get('ttfb_p50'))} "
            f"| {_num(r.get('cpu_us_per_event'), 1)} | {_num(r.get('peak_rss_mb'), 0)} |"
        )
    return "\n".join(lines)


def concurrency_table(targets: list[Target]) -> str:
    by_name = {target.name: target for target in targets}
    lines = [
        "| path | concurrent streams | ok | errors | streams/s | ratio | events/s | TTFB p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        runs = target.results.get("concurrency")
        if not runs:
            continue
        baseline = by_name.get(target.baseline)
        base_runs = {
            run["level"]: run
            for run in (baseline.results.get("concurrency") or [] if baseline else [])
        }
        for run in runs:
            base = base_runs.get(run["level"], {})
            lines.append(
                f"| {target.name} | {run['level']} | {run['ok']} | {run['errors']} "
                f"| {_num(run['streams_per_s'], 1)} "
                f"| {_ratio(run['streams_per_s'], base.get('streams_per_s'))} "
                f"| {_num(run['events_per_s'], 0)} | {_num(run['ttfb_p50_ms'], 1)} |"
            )
    return "\n".join(lines)


def errors_section(targets: list[Target]) -> str:
    lines = []
    for target in targets:
        first = target.results.get("first_error")
        if first:
            count = target.results.get("latency_errors")
            lines.append(f"- {target.name}: {count} failed requests, first: {first}")
        for run in target.results.get("concurrency") or []:
            if run["first_error"]:
                lines.append(
                    f"- {target.name} at {run['level']} streams: {run['errors']} failed, "
                    f"first: {run['first_error']}"
                )
    return "\n".join(lines)


def full_report(
    targets: list[Target], startup: dict[str, Any] | None, notes: list[str], settings: str
) -> str:
    parts = [
        f"## Latency, relay cost, memory ({settings})",
        "Ratios and 'added' are against each path's straight path (client → Cortex emulator).",
        "",
        latency_table(targets),
        "",
        "## Concurrent streams",
        "",
        concurrency_table(targets),
    ]
    if startup:
        parts += [
            "",
            "## Jupyter server start-up",
            "",
            "| jupyter server until /api/status answers | median wall ms | median server CPU ms |",
            "|---|---:|---:|",
            f"| without the extension | {_num(startup.get('without_ms'), 0)} "
            f"| {_num(startup.get('without_cpu_ms'), 0)} |",
            f"| with the extension | {_num(startup.get('with_ms'), 0)} "
            f"| {_num(startup.get('with_cpu_ms'), 0)} |",
            f"| added by the extension | {_num(startup.get('added_ms'), 0)} "
            f"| {_num(startup.get('added_cpu_ms'), 0)} |",
            f"| import of the extension after jupyter_server | "
            f"{_num(startup.get('added_import_ms'), 0)} | – |",
        ]
    failures = errors_section(targets)
    if failures:
        parts += ["", "## Failures", "", failures]
    if notes:
        parts += ["", "## Notes", "", *[f"- {note}" for note in notes]]
    return "\n".join(parts)
