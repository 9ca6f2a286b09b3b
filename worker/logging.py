"""Structured JSON logs for every line the process writes, dramatiq's own included.

Read the pipeline top to bottom: lines below the level dropped first, context bound per message,
level and time, dates as ISO 8601, then masking of personal data last, so nothing reaches the
output unmasked. JSON by default; OUTREACH_LOG_FORMAT=console renders for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import date, datetime, time
from typing import Any

import structlog

from storage.settings import LOG_FORMATS
from worker.masking import mask_event

_configured = False


def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_iso(v) for v in value)
    return value


def render_dates(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: datetimes, dates and times as ISO 8601 text, nested ones too (the
    JSON renderer would otherwise fall back on their Python repr)."""
    return {key: _iso(value) for key, value in event_dict.items()}


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        render_dates,
        mask_event,
    ]


def _renderer(log_format: str, stream: object) -> structlog.typing.Processor:
    if log_format == "console":
        isatty = getattr(stream, "isatty", None)
        return structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    return structlog.processors.JSONRenderer()


def configure_logging(level: str = "INFO", stream: object = None, log_format: str = "json") -> None:
    """Route structlog and stdlib logging (dramatiq, peewee) to one stream, JSON or console."""
    global _configured
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _renderer(log_format, stream),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    if not _configured:
        structlog.configure(
            processors=[
                # A line below the level is dropped before anything (masking above all) runs.
                structlog.stdlib.filter_by_level,
                *_shared_processors(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
