"""``jupyter server`` under cProfile, switched on and off by signals (for benchmarks/server_cpu.py).

    python benchmarks/profiled_server.py OUT.prof [jupyter server arguments...]

SIGRTMIN starts the profile, SIGRTMIN+1 stops it and writes OUT.prof (read it with ``python -m
pstats OUT.prof``), so start-up and warm-up stay out of it. The profile counts the main thread's
CPU time (``time.thread_time``), not wall time: on a shared machine, a ``send`` that lets the
client run first would otherwise look expensive. cProfile inflates the time of every Python call
(roughly x2 here): compare functions with each other, not with the CPU figures.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time


def main() -> None:
    profile = cProfile.Profile(time.thread_time)
    out = sys.argv[1]

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGRTMIN, lambda *_: profile.enable())
    signal.signal(signal.SIGRTMIN + 1, stop)
    sys.argv = ["jupyter-server", *sys.argv[2:]]
    from jupyter_server.serverapp import main as serve

    serve()


if __name__ == "__main__":
    main()
