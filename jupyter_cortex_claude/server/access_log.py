"""Jupyter's access log line and metric for a gateway request, without building a line no one sees.

Jupyter's ``log_request`` (its tornado ``log_function``) formats an access line for every request,
scrubs the URI, and hands the line to its logger at DEBUG for a success; then it records the
``http_request_duration_seconds`` metric. The server's logger itself is at DEBUG (traitlets
configures it so, and filters by level in its handlers: ``Application.get_default_logging_config``),
so each success builds a log record that every handler then drops: ~100 µs of the gateway's
per-request CPU on a small request (benchmarks/server_cpu.py). When no handler would show that
line, only the metric is recorded; whenever one would (``--log-level=DEBUG``, a ``logging_config``
with a debug handler), when the request failed, or when the server's ``log_function`` is not
Jupyter's, Jupyter's own function runs as before.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from jupyter_server.log import log_request
from jupyter_server.prometheus.log_functions import prometheus_log_method
from tornado import web


def would_show(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``level`` on ``logger`` reaches a handler that keeps it (the check
    ``Logger.callHandlers`` makes, without building the record)."""
    if not logger.isEnabledFor(level):
        return False
    found = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    last_resort = logging.lastResort
    return not found and last_resort is not None and level >= last_resort.level


def metric_only(handler: web.RequestHandler) -> bool:
    """Record the request's metric alone, and True, where Jupyter's ``log_request`` would log
    nothing visible for it; else False (the caller logs it as usual)."""
    if handler.get_status() >= 300:
        return False  # a redirect or an error: Jupyter logs it at INFO and above
    log_function: Any = handler.settings.get("log_function")
    if not (isinstance(log_function, functools.partial) and log_function.func is log_request):
        return False
    logger = getattr(handler, "log", None)
    if not isinstance(logger, logging.Logger) or would_show(logger, logging.DEBUG):
        return False
    if log_function.keywords.get("record_prometheus_metrics", True):
        prometheus_log_method(handler)
    return True
