"""The project's dramatiq middleware: one concern per module."""

from worker.middleware.database import DatabaseConnection
from worker.middleware.log_context import LogContext
from worker.middleware.retry_backoff import RetryBackoff

__all__ = ["DatabaseConnection", "LogContext", "RetryBackoff"]
