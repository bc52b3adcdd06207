"""The package's loggers write where the Jupyter server writes, at the server's level.

Jupyter logs through its own ``ServerApp`` logger (its handlers and format, ``--log-level``), which
does not propagate to the root logger; the package's module loggers (``jupyter_cortex_claude.*``)
would otherwise be left to Python's defaults: nothing below WARNING, and no Jupyter format. So
``jupyter server --log-level=DEBUG`` shows the gateway's own debug lines (what shaping changed,
each retry), and the default INFO level shows its warnings, with the server's other lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

PACKAGE_LOGGER = "jupyter_cortex_claude"


class _ToServerLog(logging.Handler):
    """Hands each record to the server logger's handlers (whatever they are at that moment)."""

    def __init__(self, server_log: logging.Logger) -> None:
        super().__init__()
        self.server_log = server_log

    def emit(self, record: logging.LogRecord) -> None:
        # The handlers only, not `server_log.handle`: where the server's logger propagates to the
        # root logger, the package's record gets there by its own propagation, once.
        for handler in list(self.server_log.handlers):
            if record.levelno >= handler.level:
                handler.handle(record)


def follow_server_log(server_log: logging.Logger, level: int | str) -> Callable[[], None]:
    """Send the package's log records to ``server_log``'s handlers from ``level`` up (the server's
    ``log_level``); returns the undo. A second server in the same process (tests) takes over."""
    package = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(package.handlers):
        if isinstance(handler, _ToServerLog):
            package.removeHandler(handler)
    forward = _ToServerLog(server_log)
    package.addHandler(forward)
    package.setLevel(level)

    def undo() -> None:
        package.removeHandler(forward)
        if not any(isinstance(h, _ToServerLog) for h in package.handlers):
            package.setLevel(logging.NOTSET)

    return undo
