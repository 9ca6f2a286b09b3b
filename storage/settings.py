"""Settings from the environment, read once into a frozen object.

Every setting has a default that works on a laptop with nothing installed: a SQLite file,
an in-process broker and the ``log`` channel.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache

from storage.errors import ConfigurationError

# The embedded default database: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///outreach.sqlite3"
# Prefix of every key the Redis broker writes.
DEFAULT_REDIS_NAMESPACE = "outreach"
# Network calls to a channel give up after this many seconds.
DEFAULT_CHANNEL_TIMEOUT = 10.0
# The web process's own address on a laptop (uvicorn's port in the Procfile's default).
DEFAULT_PUBLIC_URL = "http://localhost:8000"
# WAHA's own advice against bans: a random 30 to 60 s between two messages of one session.
DEFAULT_WHATSAPP_SPACING = (30.0, 60.0)
# An SMTP from-address sends a few messages per second.
DEFAULT_EMAIL_SPACING = (0.2, 0.4)
# When messages of an account go out, in the account's zone.
DEFAULT_SENDING_HOURS = "mon-sat 09:00-20:00"
# WAHA's 463 ("stop contacting new people for a while") pauses the sender this long.
DEFAULT_WAHA_463_PAUSE_SECONDS = 86_400
# The levels OUTREACH_LOG_LEVEL accepts (the standard library's names).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The renderers OUTREACH_LOG_FORMAT accepts: one JSON object a line, or structlog's console view.
LOG_FORMATS = ("json", "console")


def _env_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _env_number(value: str, kind: type[int] | type[float]) -> int | float:
    # Every number setting is a count, a duration or a share: negative or NaN is a typo.
    number = kind(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class Settings:
    """Configuration; each field's metadata names its environment variable."""

    database_url: str = field(default=DEFAULT_DATABASE_URL, metadata={"env": "DATABASE_URL"})
    # Unset means the in-process broker (embedded mode: demo, unit tests).
    redis_url: str | None = field(default=None, metadata={"env": "REDIS_URL"})
    redis_namespace: str = field(
        default=DEFAULT_REDIS_NAMESPACE, metadata={"env": "OUTREACH_REDIS_NAMESPACE"}
    )
    # Staging switch: every send goes to the log channel whatever the message asks for.
    force_log_channel: bool = field(default=False, metadata={"env": "OUTREACH_FORCE_LOG_CHANNEL"})
    channel_timeout: float = field(
        default=DEFAULT_CHANNEL_TIMEOUT, metadata={"env": "OUTREACH_CHANNEL_TIMEOUT"}
    )
    smtp_url: str | None = field(default=None, metadata={"env": "SMTP_URL"})
    smtp_from: str = field(default="outreach@localhost", metadata={"env": "SMTP_FROM"})
    smtp_subject: str = field(default="A message for you", metadata={"env": "SMTP_SUBJECT"})
    waha_url: str | None = field(default=None, metadata={"env": "WAHA_URL"})
    waha_api_key: str | None = field(default=None, metadata={"env": "WAHA_API_KEY"})
    waha_session: str = field(default="default", metadata={"env": "WAHA_SESSION"})
    webhook_url: str | None = field(default=None, metadata={"env": "WEBHOOK_URL"})
    # WAHA signs its webhooks with this key (HMAC-SHA512); unset, POST /inbound/waha is off.
    waha_webhook_key: str | None = field(default=None, metadata={"env": "WAHA_WEBHOOK_KEY"})
    # Where people reach the web process from outside (the unsubscribe links point there).
    public_url: str = field(default=DEFAULT_PUBLIC_URL, metadata={"env": "OUTREACH_PUBLIC_URL"})
    # Signs unsubscribe tokens and operator sessions; unset, a fixed development key is used
    # and the web process says so in its log (never leave it unset in production).
    secret_key: str | None = field(default=None, metadata={"env": "OUTREACH_SECRET_KEY"})
    # Pacing (docs/operating.md, "Pacing"): the defaults of every sender of a channel, which a
    # sender's own row may override. Webhook and log senders are unpaced.
    whatsapp_min_spacing: float = field(
        default=DEFAULT_WHATSAPP_SPACING[0], metadata={"env": "OUTREACH_WHATSAPP_MIN_SPACING"}
    )
    whatsapp_max_spacing: float = field(
        default=DEFAULT_WHATSAPP_SPACING[1], metadata={"env": "OUTREACH_WHATSAPP_MAX_SPACING"}
    )
    email_min_spacing: float = field(
        default=DEFAULT_EMAIL_SPACING[0], metadata={"env": "OUTREACH_EMAIL_MIN_SPACING"}
    )
    email_max_spacing: float = field(
        default=DEFAULT_EMAIL_SPACING[1], metadata={"env": "OUTREACH_EMAIL_MAX_SPACING"}
    )
    # Slots a sender hands out per calendar day (unset: no cap).
    sender_daily_cap: int | None = field(
        default=None, metadata={"env": "OUTREACH_SENDER_DAILY_CAP"}
    )
    # The sending hours of an account that sets none, and of engagement goodbyes.
    sending_hours: str = field(
        default=DEFAULT_SENDING_HOURS, metadata={"env": "OUTREACH_SENDING_HOURS"}
    )
    # The zone of goodbyes' hours and of every sender's "day" for its daily cap.
    sending_timezone: str = field(default="UTC", metadata={"env": "OUTREACH_SENDING_TIMEZONE"})
    waha_463_pause_seconds: int = field(
        default=DEFAULT_WAHA_463_PAUSE_SECONDS, metadata={"env": "OUTREACH_WAHA_463_PAUSE"}
    )
    # Outbox rows still queued this long after their last enqueue are enqueued again.
    relay_after_seconds: int = field(default=900, metadata={"env": "OUTREACH_RELAY_AFTER"})
    # A row left in `sending` this long is taken as a send that died mid-way.
    sending_stale_seconds: int = field(default=120, metadata={"env": "OUTREACH_SENDING_STALE"})
    # Redis broker: a worker silent this long is taken as dead, and the messages it had fetched
    # are given back to the queue (Dramatiq's own default is 60 s).
    broker_heartbeat_timeout: float = field(
        default=60.0, metadata={"env": "OUTREACH_BROKER_HEARTBEAT_TIMEOUT"}
    )
    # Share of broker commands that also look for dead workers' messages (Dramatiq's 0.1%).
    broker_maintenance_chance: float = field(
        default=0.001, metadata={"env": "OUTREACH_BROKER_MAINTENANCE_CHANCE"}
    )
    # Seconds between retries of a failed message, for every actor (unset: each actor's own).
    retry_min_backoff: float | None = field(
        default=None, metadata={"env": "OUTREACH_RETRY_MIN_BACKOFF"}
    )
    retry_max_backoff: float | None = field(
        default=None, metadata={"env": "OUTREACH_RETRY_MAX_BACKOFF"}
    )
    # Workers on Redis count their messages with Dramatiq's Prometheus middleware and serve
    # them on dramatiq_prom_port (9191); off, nothing is counted or served.
    worker_metrics: bool = field(default=False, metadata={"env": "OUTREACH_WORKER_METRICS"})
    # "file:/path" makes every process read the current time from that file (tests, demos).
    clock: str = field(default="system", metadata={"env": "OUTREACH_CLOCK"})
    log_level: str = field(default="INFO", metadata={"env": "OUTREACH_LOG_LEVEL"})
    # "console" reads better on a terminal; JSON stays the default everywhere else.
    log_format: str = field(default="json", metadata={"env": "OUTREACH_LOG_FORMAT"})
    # Engagement thresholds (seed 004).
    inactivity_days: int = field(default=14, metadata={"env": "OUTREACH_INACTIVITY_DAYS"})
    goodbye_timeout_hours: int = field(
        default=48, metadata={"env": "OUTREACH_GOODBYE_TIMEOUT_HOURS"}
    )
    # Channel of the engagement goodbye ("log" for a dry run).
    engagement_channel: str = field(
        default="whatsapp", metadata={"env": "OUTREACH_ENGAGEMENT_CHANNEL"}
    )

    # Scheduler: cron expressions (an optional sixth field is seconds) and the hunts' zone.
    engagement_cron: str = field(default="0 6 * * *", metadata={"env": "OUTREACH_ENGAGEMENT_CRON"})
    hunts_cron: str = field(default="0 8 * * *", metadata={"env": "OUTREACH_HUNTS_CRON"})
    hunts_timezone: str = field(default="Europe/Paris", metadata={"env": "OUTREACH_HUNTS_TIMEZONE"})
    campaigns_cron: str = field(default="*/5 * * * *", metadata={"env": "OUTREACH_CAMPAIGNS_CRON"})
    # A JSON file of schedules that replaces the default set.
    schedules_file: str | None = field(default=None, metadata={"env": "OUTREACH_SCHEDULES"})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                if kind.startswith("bool"):
                    values[f.name] = _env_bool(raw)
                elif kind.startswith("int"):
                    values[f.name] = _env_number(raw, int)
                elif kind.startswith("float"):
                    values[f.name] = _env_number(raw, float)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ConfigurationError(f"{name}: {exc}") from None
        level = str(values.get("log_level", "INFO")).upper()
        if level not in LOG_LEVELS:
            raise ConfigurationError(
                f"OUTREACH_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {level!r}"
            )
        log_format = str(values.get("log_format", "json")).lower()
        if log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"OUTREACH_LOG_FORMAT: expected one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
            )
        values["log_format"] = log_format
        return cls(**values)  # type: ignore[arg-type]

    @staticmethod
    def documented() -> list[tuple[str, str]]:
        """(environment variable, default) for every setting, for docs and `outreach settings`."""
        return [(f.metadata["env"], repr(f.default)) for f in fields(Settings)]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
