"""All models, in an order that creates referenced tables first."""

from storage.models.base import BaseModel, UTCDateTimeField
from storage.models.outbox import OutboxMessage

ALL_MODELS: list[type[BaseModel]] = [OutboxMessage]

__all__ = ["ALL_MODELS", "BaseModel", "OutboxMessage", "UTCDateTimeField"]
