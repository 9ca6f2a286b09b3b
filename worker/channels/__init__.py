"""Channels, chosen per message by name."""

from __future__ import annotations

from functools import lru_cache

from storage.errors import InvalidInput
from storage.settings import Settings, get_settings
from worker.channels.base import (
    Channel,
    Media,
    Outbound,
    PermanentSendError,
    SendError,
    TransientSendError,
    UncertainSendError,
)
from worker.channels.email import EmailChannel
from worker.channels.log import LogChannel
from worker.channels.webhook import WebhookChannel
from worker.channels.whatsapp import WhatsAppChannel

CHANNEL_NAMES = ("log", "email", "whatsapp", "webhook")


def validate_channel(name: str) -> str:
    if name not in CHANNEL_NAMES:
        raise InvalidInput(f"unknown channel {name!r} (expected one of {', '.join(CHANNEL_NAMES)})")
    return name


def build_channel(name: str, settings: Settings) -> Channel:
    validate_channel(name)
    if settings.force_log_channel or name == "log":
        return LogChannel()
    if name == "email":
        return EmailChannel(
            settings.smtp_url, settings.smtp_from, settings.smtp_subject, settings.channel_timeout
        )
    if name == "whatsapp":
        return WhatsAppChannel(
            settings.waha_url,
            settings.waha_api_key,
            settings.waha_session,
            settings.channel_timeout,
        )
    return WebhookChannel(settings.webhook_url, settings.channel_timeout)


@lru_cache(maxsize=16)
def _cached(name: str, settings: Settings) -> Channel:
    return build_channel(name, settings)


def get_channel(name: str, settings: Settings | None = None) -> Channel:
    """One channel object per name and settings, reused across messages (HTTP keep-alive)."""
    return _cached(name, settings or get_settings())


__all__ = [
    "CHANNEL_NAMES",
    "Channel",
    "Media",
    "Outbound",
    "PermanentSendError",
    "SendError",
    "TransientSendError",
    "UncertainSendError",
    "build_channel",
    "get_channel",
    "validate_channel",
]
