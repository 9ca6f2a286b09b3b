"""Structured JSON logs for every line the process writes, dramatiq's own included.

Read the pipeline top to bottom: lines below the level dropped first, context bound per message,
level and time, then masking of personal data last, so nothing reaches the output unmasked.
"""

from __future__ import annotations

import logging
import sys

import structlog

from worker.masking import mask_event

_configured = False


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_event,
    ]


def configure_logging(level: str = "INFO", stream: object = None) -> None:
    """Route structlog and stdlib logging (dramatiq, peewee) to one JSON stream."""
    global _configured
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
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
