"""A hunt at a glance: today's count against its limit, credits, leads by stage, last scan."""

from __future__ import annotations

from typing import Any, cast

from peewee import fn

from storage.errors import NotFound
from storage.models.hunts import (
    ALL_CHANNELS,
    LEAD_STAGES,
    ContactedAd,
    Hunt,
    HuntChannelCredit,
    HuntRun,
    Lead,
)
from worker.hunts import pacing


def hunt_status(hunt_id: int) -> dict[str, Any]:
    corrupt = False
    try:
        hunt = Hunt.get_or_none(Hunt.id == hunt_id)
    except ValueError:  # a JSON column holds something else: show everything else
        corrupt = True
        readable = [f for f in Hunt._meta.sorted_fields if f.name not in ("criteria", "channels")]
        hunt = Hunt.select(*readable).where(Hunt.id == hunt_id).first()
    if hunt is None:
        raise NotFound(f"hunt {hunt_id} does not exist")
    day, counts = pacing.today(hunt_id)
    limit = hunt.daily_pacing_limit
    today_count = counts.pop(ALL_CHANNELS)
    leads = dict.fromkeys(LEAD_STAGES, 0)
    by_stage = (
        Lead.select(Lead.stage, fn.COUNT(Lead.id))
        .where(Lead.hunt == hunt_id)
        .group_by(Lead.stage)
        .tuples()
    )
    leads.update(cast(list[tuple[str, int]], list(by_stage)))
    by_status = (
        ContactedAd.select(ContactedAd.status, fn.COUNT(ContactedAd.id))
        .where(ContactedAd.hunt == hunt_id)
        .group_by(ContactedAd.status)
        .tuples()
    )
    contacts = dict(cast(list[tuple[str, int]], list(by_status)))
    credits = {
        row.channel: {
            "allocated": row.allocated,
            "reserved": row.reserved,
            "consumed": row.consumed,
            "available": max(0, row.allocated - row.reserved - row.consumed),
        }
        for row in HuntChannelCredit.select()
        .where(HuntChannelCredit.hunt == hunt_id)
        .order_by(HuntChannelCredit.channel)
    }
    last_run = HuntRun.select().where(HuntRun.hunt == hunt_id).order_by(HuntRun.day.desc()).first()
    return {
        "id": hunt.id,
        "name": hunt.name,
        "account_id": hunt.account_id,
        "owner_id": hunt.owner_id,
        "status": hunt.status,
        "auto_refresh": hunt.auto_refresh,
        "channels": None if corrupt else hunt.channels,
        "criteria": "(stored value is not JSON)" if corrupt else hunt.criteria,
        "today": {
            "day": day.isoformat(),
            "contacted": today_count,
            "limit": limit,
            "remaining": None if limit is None else max(0, limit - today_count),
            "by_channel": counts,
        },
        "credits": credits,
        "leads": leads,
        "contacts": contacts,
        "last_scan_at": hunt.last_scan_at.isoformat() if hunt.last_scan_at else None,
        "last_run": None
        if last_run is None
        else {
            "day": last_run.day.isoformat(),
            "enqueued_at": last_run.enqueued_at.isoformat(),
            "finished_at": last_run.finished_at.isoformat() if last_run.finished_at else None,
            "contacted": last_run.contacted,
            "error": last_run.error,
        },
    }
