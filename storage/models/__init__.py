"""All models, in an order that creates referenced tables first."""

from storage.models.accounts import Account, User
from storage.models.base import BaseModel, UTCDateTimeField
from storage.models.outbox import OutboxMessage

ALL_MODELS: list[type[BaseModel]] = [
    OutboxMessage,
    Account,
    User,
]

__all__ = [
    "ALL_MODELS",
    "Account",
    "BaseModel",
    "OutboxMessage",
    "UTCDateTimeField",
    "User",
]
