"""Delivery results flow back to the recipient rows, and the campaign completes when all are in.

Registered on the outbox for source "campaign": called in the delivery's own transaction when a
campaign message ends (sent, failed, or unknown: a send that died mid-way, recorded as failed
with that reason so an operator sees it). When no recipient is pending any more, the campaign
row is locked before the completion check, so of two last outcomes arriving together the later
one sees the other committed and completes the campaign.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from peewee import fn

from storage import clock
from storage.db import database, write_transaction
from storage.models.campaigns import (
    COMPLETED,
    OUTSTANDING,
    PENDING,
    QUEUED,
    RECIPIENT_FAILED,
    RUNNING,
    SENT,
    SKIPPED,
    Campaign,
    CampaignRecipient,
)
from storage.models.outbox import FAILED as OUTBOX_FAILED
from storage.models.outbox import SENT as OUTBOX_SENT
from storage.models.outbox import SUPPRESSED as OUTBOX_SUPPRESSED
from storage.models.outbox import OutboxMessage
from worker.logging import get_logger
from worker.outcomes import on_outcome

log = get_logger("outreach.campaigns.outcomes")

_KEY = re.compile(r"^campaign:(\d+):contact:(\d+)$")


def parse_key(idempotency_key: str) -> tuple[int, int] | None:
    """(campaign id, contact id) of a campaign message's key; None for any other key."""
    match = _KEY.match(idempotency_key)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def lock_campaign(campaign_id: int, now: datetime, only_status: str | None = None) -> bool:
    """Take the campaign's row lock for this transaction (PostgreSQL; SQLite has one writer).

    A touch of `updated_at`: the same statement on both backends, and it says whether the row
    (in `only_status`, when given) exists.
    """
    query = Campaign.update(updated_at=now).where(Campaign.id == campaign_id)
    if only_status is not None:
        query = query.where(Campaign.status == only_status)
    return bool(query.execute())


def complete_if_done(campaign_id: int, now: datetime) -> bool:
    """A running campaign with every recipient made and none pending or queued is completed.

    Call it with the campaign's row lock held, so the check sees every other outcome committed.
    """
    outstanding = CampaignRecipient.select(CampaignRecipient.id).where(
        (CampaignRecipient.campaign == campaign_id) & CampaignRecipient.status.in_(OUTSTANDING)
    )
    completed = (
        Campaign.update(status=COMPLETED, completed_at=now, next_batch_at=None, updated_at=now)
        .where(
            (Campaign.id == campaign_id)
            & (Campaign.status == RUNNING)
            & Campaign.recipients_ready_at.is_null(False)
            & ~fn.EXISTS(outstanding)
        )
        .execute()
    )
    if completed:
        log.info("campaign.completed", campaign_id=campaign_id)
    return bool(completed)


def complete_settled_campaigns(limit: int = 1000) -> int:
    """Complete running campaigns left with nothing outstanding (the tick's repair pass).

    An outcome that saw a pending recipient does not check for completion; if that recipient
    was claimed and finished in the instant before the outcome committed, nobody completed the
    campaign. This finds such campaigns.
    """
    outstanding = CampaignRecipient.select(CampaignRecipient.id).where(
        (CampaignRecipient.campaign == Campaign.id) & CampaignRecipient.status.in_(OUTSTANDING)
    )
    settled = [
        campaign.id
        for campaign in Campaign.select(Campaign.id)
        .where(
            (Campaign.status == RUNNING)
            & Campaign.recipients_ready_at.is_null(False)
            & ~fn.EXISTS(outstanding)
        )
        .order_by(Campaign.id)
        .limit(limit)
    ]
    completed = 0
    for campaign_id in settled:
        now = clock.now()
        with write_transaction():
            lock_campaign(campaign_id, now)
            completed += complete_if_done(campaign_id, now)
    return completed


def _recipient_result(message: OutboxMessage) -> tuple[str, str | None]:
    """The recipient's status and error for a campaign message's final outbox status."""
    if message.status == OUTBOX_SENT:
        return SENT, None
    if message.status == OUTBOX_SUPPRESSED:
        return SKIPPED, f"address suppressed: {message.last_error or 'opted out'}"
    if message.status == OUTBOX_FAILED:
        return RECIPIENT_FAILED, message.last_error or "failed"
    return RECIPIENT_FAILED, f"outcome unknown: {message.last_error or 'the send was interrupted'}"


_RECIPIENT = CampaignRecipient._meta.table_name
_CAMPAIGN_ID = CampaignRecipient.campaign.column_name
_CONTACT_ID = CampaignRecipient.contact.column_name


@lru_cache(maxsize=64)
def _record_sql(param: str, rows: int) -> str:
    """The recipients' results, row by row, in one statement; each updated row says whether its
    campaign still has a pending recipient (SQLite 3.33+ and PostgreSQL read it the same way)."""
    value_row = (
        f"(CAST({param} AS BIGINT), CAST({param} AS BIGINT), "
        f"CAST({param} AS TEXT), CAST({param} AS TEXT))"
    )
    table = f'"{_RECIPIENT}"'
    return (
        f'UPDATE {table} SET "status" = v.column3, "error" = v.column4, "finished_at" = {param} '
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f'WHERE {table}."{_CAMPAIGN_ID}" = v.column1 AND {table}."{_CONTACT_ID}" = v.column2 '
        f'AND {table}."status" = {param} '
        f'RETURNING {table}."{_CAMPAIGN_ID}", EXISTS (SELECT 1 FROM {table} AS p '
        f'WHERE p."{_CAMPAIGN_ID}" = {table}."{_CAMPAIGN_ID}" AND p."status" = {param})'
    )


@on_outcome("campaign")
def record_delivery_outcomes(messages: Sequence[OutboxMessage]) -> None:
    """One statement in the usual case: the recipients' results, and whether any is pending.

    Conditional on `queued`, so an outcome reported twice changes nothing. A campaign left with
    no pending recipient may be complete: that is checked under its lock, campaigns in id order
    (so two transactions never wait on each other's campaigns in a cycle).
    """
    values: list[object] = []
    rows = 0
    for message in messages:
        ids = parse_key(message.idempotency_key)
        if ids is None:
            log.warning("campaign.outcome_unknown_key", outbox_id=message.id)
            continue
        values += [*ids, *_recipient_result(message)]
        rows += 1
    if not rows:
        return
    now = clock.now()
    param = database.obj.param
    params = [
        CampaignRecipient.finished_at.db_value(now),
        *values,
        QUEUED,
        PENDING,
    ]
    recorded = database.execute_sql(_record_sql(param, rows), params).fetchall()
    # Recipients still wait for a batch: those campaigns cannot be complete yet.
    maybe_done = {campaign_id for campaign_id, pending in recorded if not pending}
    for campaign_id in sorted(maybe_done):
        # Possibly the last one: under the lock, every other outcome is committed or waits.
        lock_campaign(campaign_id, now)
        complete_if_done(campaign_id, now)
