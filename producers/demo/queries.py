"""Small reads both the day reports and the summary make: time windows, counts per key, groups
seen twice, and the campaign's and engagement's state right now."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from peewee import fn

from storage.models.campaigns import CampaignRecipient
from storage.models.engagement import EngagementState


def window(column: Any, start: datetime, end: datetime) -> Any:
    return (column >= start) & (column < end)


def tuples(query: Any) -> list[tuple[Any, ...]]:
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def counts(query: Any) -> dict[str, int]:
    """A (key, count) query as a dict."""
    return {str(key): int(count) for key, count in tuples(query)}


def duplicates(query: Any) -> int:
    """How many groups of `query` have more than one row."""
    return len(tuples(query.having(fn.COUNT(1) > 1)))


def campaign_sent(campaign_id: int) -> int:
    return (
        CampaignRecipient.select()
        .where((CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == "sent"))
        .count()
    )


def engagement_states() -> dict[str, int]:
    return counts(
        EngagementState.select(EngagementState.state, fn.COUNT(EngagementState.id))
        .group_by(EngagementState.state)
        .order_by(EngagementState.state)
    )
