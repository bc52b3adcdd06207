"""500 concurrent streams and a steady soak through a real `jupyter server` subprocess: no errors,
memory within a stated bound, open files back where the warm-up left them (benchmarks/soak.py).

CI runs a 30 s soak; `python benchmarks/soak.py --minutes 10` is the long one (docs/reliability.md).
"""

from __future__ import annotations

import asyncio

from benchmarks import soak

RSS_GROWTH_BOUND_MB = 64  # a second burst of 500 may grow the server this much at most
SOAK_RSS_BOUND_MB = 32  # between the soak's first and last second
FILES_SLACK = 4  # listening sockets and the like that may come and go


def test_500_concurrent_streams_and_a_soak_complete_without_errors_or_leaks() -> None:
    figures = asyncio.run(soak.run(burst_size=500, soak_seconds=30, rate=20, sequential=50))
    print("\n" + soak.report(figures))

    for result in figures.bursts:
        assert result["errors"] == 0 and result["ok"] == 500, (result["first_error"], result)
    assert figures.soak["errors"] == 0 and figures.soak["ok"] == figures.soak["sent"], figures.soak
    assert figures.soak["sent"] >= 500

    started = figures.samples["started"]
    warm = figures.samples["after warm-up burst"]
    for when, current in figures.samples.items():
        # Back to the files of a fresh server, but for the idle keep-alive sockets to Cortex that
        # the gateway's pool keeps on purpose (at most max_keepalive_connections=100).
        assert current.other_files <= started.other_files + FILES_SLACK, (when, figures.samples)
        assert current.upstream_sockets <= 100, (when, current)
    measured = figures.samples["after measured burst"]
    assert measured.rss_mb - warm.rss_mb < RSS_GROWTH_BOUND_MB, figures.samples
    assert figures.soak["rss_last_mb"] - figures.soak["rss_first_mb"] < SOAK_RSS_BOUND_MB
