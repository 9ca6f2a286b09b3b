"""The project's dramatiq middleware: one concern per module."""

from worker.middleware.database import DatabaseConnection
from worker.middleware.log_context import LogContext

__all__ = ["DatabaseConnection", "LogContext"]
