"""What the console's pages show, read for one account only: the account is in every query.

A row of another account is never loaded and then hidden: it is not found, and the page is a
404. Each panel is one grouped query (a few on the pages other than the overview), whatever the
number of rows behind it; the indexes that serve the overview's are in docs/speed.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any, cast
from zoneinfo import ZoneInfo

import dramatiq
from peewee import JOIN, SQL, fn

from producers.dlq import DeadMessage, list_dead, redis_broker
from producers.scheduler.schedules import load_schedules
from producers.status import queue_depths, schedules_status
from storage import clock
from storage.errors import NotFound
from storage.models.accounts import Account, User
from storage.models.campaigns import (
    PENDING,
    QUEUED,
    RECIPIENT_FAILED,
    RECIPIENT_STATUSES,
    SENT,
    SKIPPED,
    Campaign,
    CampaignBatch,
    CampaignRecipient,
)
from storage.models.engagement import OUTCOMES, EngagementOutcome, EngagementRun
from storage.models.hunts import (
    ALL_CHANNELS,
    LEAD_STAGES,
    Hunt,
    HuntChannelCredit,
    HuntPacing,
    Lead,
)
from storage.models.outbox import (
    FAILED,
    SENDING,
    STATUSES,
    SUPPRESSED,
    UNKNOWN,
    OutboxMessage,
)
from storage.models.outbox import QUEUED as OUTBOX_QUEUED
from storage.models.outbox import SENT as OUTBOX_SENT
from storage.models.senders import Sender
from storage.settings import get_settings
from worker.campaigns.lifecycle import ALLOWED_FROM, DUE_STATUSES, Move
from worker.hunts.pacing import local_day

# Rows shown at most on a page (the oldest first for work to review, the newest for history).
CAMPAIGNS_SHOWN = 200
RUNS_SHOWN = 20
UNKNOWN_SHOWN = 100
ERRORS_SHOWN = 20
# Outbox rows still to be decided (shown whatever their age) and rows finished (shown for today).
OPEN_STATUSES = (OUTBOX_QUEUED, SENDING, UNKNOWN)
FINISHED_STATUSES = (OUTBOX_SENT, FAILED, SUPPRESSED)
# Outbox rows that wait on their sender: a pause holds them.
WAITING_STATUSES = (OUTBOX_QUEUED, SENDING)
# COUNT(*), not COUNT(id): PostgreSQL then counts from the index alone (an index-only scan).
COUNT_ROWS = fn.COUNT(SQL("*"))


def _rows(query: Any) -> list[tuple[Any, ...]]:
    """A `.tuples()` query's rows (peewee's type hints say model instances)."""
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def day_start(account: Account, now: datetime) -> datetime:
    """Midnight of the account's current day, in UTC: the "today" of its panels."""
    zone = ZoneInfo(account.timezone)
    local = clock.as_utc(now).astimezone(zone)
    return datetime.combine(local.date(), time(0), zone).astimezone(UTC)


# --- overview ----------------------------------------------------------------------------------


def outbox_query(account_id: int, since: datetime) -> Any:
    """This account's outbox rows still open (of any age) and finished since `since`, counted
    by status and source: one statement, two ranges of the outbox index ``account_id, status,
    finished_at, source, sender`` read from the index alone."""
    open_rows = (
        OutboxMessage.select(OutboxMessage.status, OutboxMessage.source, COUNT_ROWS)
        .where((OutboxMessage.account_id == account_id) & OutboxMessage.status.in_(OPEN_STATUSES))
        .group_by(OutboxMessage.status, OutboxMessage.source)
    )
    finished_rows = (
        OutboxMessage.select(OutboxMessage.status, OutboxMessage.source, COUNT_ROWS)
        .where(
            (OutboxMessage.account_id == account_id)
            & OutboxMessage.status.in_(FINISHED_STATUSES)
            & (OutboxMessage.finished_at >= since)
        )
        .group_by(OutboxMessage.status, OutboxMessage.source)
    )
    return open_rows.union_all(finished_rows)


def outbox_today(account_id: int, since: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """This account's outbox by status (open rows, and rows finished since `since`) and its
    sends since then by kind."""
    by_status = dict.fromkeys(STATUSES, 0)
    sends: dict[str, int] = {}
    for status, source, count in _rows(outbox_query(account_id, since)):
        by_status[str(status)] += int(count)
        if status == OUTBOX_SENT:
            sends[str(source)] = sends.get(str(source), 0) + int(count)
    return by_status, sends


def paused_senders_query(account_id: int, now: datetime) -> Any:
    """Senders paused now that this account uses: its own (``sender.account_id``), and any
    other holding its messages waiting to go (a channel's default sender, say), each with how
    many of them wait. One statement; the waiting rows are read from the outbox index."""
    waiting = OutboxMessage.alias("waiting")
    return (
        Sender.select(
            Sender.name,
            Sender.channel,
            Sender.paused_until,
            Sender.pause_reason,
            fn.COUNT(waiting.sender).alias("waiting"),
        )
        .join(
            waiting,
            JOIN.LEFT_OUTER,
            on=(
                (waiting.sender == Sender.name)
                & (waiting.account_id == account_id)
                & waiting.status.in_(WAITING_STATUSES)
            ),
        )
        .where(
            (Sender.paused_until > now)
            & ((Sender.account_id == account_id) | waiting.sender.is_null(False))
        )
        .group_by(Sender.id, Sender.name, Sender.channel, Sender.paused_until, Sender.pause_reason)
        .order_by(Sender.paused_until, Sender.name)
    )


def paused_senders(account_id: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "channel": channel,
            "paused_until": Sender.paused_until.python_value(until),
            "reason": reason,
            "waiting": int(count),
        }
        for name, channel, until, reason, count in _rows(paused_senders_query(account_id, now))
    ]


def overview(account: Account, now: datetime) -> dict[str, Any]:
    since = day_start(account, now)
    outbox, sends = outbox_today(account.id, since)
    schedules = schedules_status(load_schedules(get_settings()), now)
    return {
        "since": since,
        # Queues and schedules are the installation's, shared by every account: counts only.
        "queues": queue_depths(dramatiq.get_broker()),
        "outbox": outbox,
        "sends": sends,
        "senders": paused_senders(account.id, now),
        "schedules": schedules,
    }


# --- campaigns ---------------------------------------------------------------------------------


def recipient_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    counts = {i: dict.fromkeys(RECIPIENT_STATUSES, 0) for i in campaign_ids}
    if not campaign_ids:
        return counts
    rows = _rows(
        CampaignRecipient.select(
            CampaignRecipient.campaign, CampaignRecipient.status, fn.COUNT(CampaignRecipient.id)
        )
        .where(CampaignRecipient.campaign.in_(campaign_ids))
        .group_by(CampaignRecipient.campaign, CampaignRecipient.status)
    )
    for campaign_id, status, count in rows:
        counts[int(campaign_id)][str(status)] = int(count)
    return counts


def progress(counts: dict[str, int]) -> dict[str, Any]:
    total = sum(counts.values())
    done = counts.get(SENT, 0) + counts.get(RECIPIENT_FAILED, 0) + counts.get(SKIPPED, 0)
    return {
        "total": total,
        "done": done,
        "percent": round(100 * done / total) if total else 0,
        "remaining": counts.get(PENDING, 0) + counts.get(QUEUED, 0),
    }


def campaigns(account_id: int) -> list[dict[str, Any]]:
    rows = list(
        Campaign.select(Campaign)
        .join(User, on=(Campaign.owner == User.id))
        .where(User.account == account_id)
        .order_by(Campaign.id.desc())
        .limit(CAMPAIGNS_SHOWN)
    )
    counts = recipient_counts([c.id for c in rows])
    return [
        {"campaign": c, "counts": counts[c.id], "progress": progress(counts[c.id])} for c in rows
    ]


def owned_campaign(account_id: int, campaign_id: int) -> Campaign:
    """The campaign if a user of this account owns it; any other id is not found."""
    campaign: Campaign | None = (
        Campaign.select(Campaign)
        .join(User, on=(Campaign.owner == User.id))
        .where((Campaign.id == campaign_id) & (User.account == account_id))
        .first()
    )
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def allowed_moves(status: str) -> list[str]:
    """The buttons a campaign in `status` shows (the lifecycle's rules, not the template's)."""
    moves = [m.value for m in (Move.PAUSE, Move.RESUME, Move.CANCEL) if status in ALLOWED_FROM[m]]
    # Run now: start a draft or scheduled one (runManually), or run a running one's due batch.
    if status in ALLOWED_FROM[Move.RUN] or status in DUE_STATUSES:
        moves.insert(0, "run-now")
    return moves


def campaign_detail(account_id: int, campaign_id: int) -> dict[str, Any]:
    campaign = owned_campaign(account_id, campaign_id)
    counts = recipient_counts([campaign.id])[campaign.id]
    per_batch: dict[tuple[int, str], int] = {}
    outcomes = _rows(
        CampaignRecipient.select(
            CampaignRecipient.batch_number, CampaignRecipient.status, fn.COUNT(CampaignRecipient.id)
        )
        .where(
            (CampaignRecipient.campaign == campaign.id)
            & CampaignRecipient.batch_number.is_null(False)
        )
        .group_by(CampaignRecipient.batch_number, CampaignRecipient.status)
    )
    for number, status, count in outcomes:
        per_batch[(int(number), str(status))] = int(count)
    batches = [
        {
            "batch": b,
            "sent": per_batch.get((b.number, SENT), 0),
            "failed": per_batch.get((b.number, RECIPIENT_FAILED), 0),
            "skipped": per_batch.get((b.number, SKIPPED), 0),
        }
        for b in CampaignBatch.select()
        .where(CampaignBatch.campaign == campaign.id)
        .order_by(CampaignBatch.number.desc())
    ]
    return {
        "campaign": campaign,
        "counts": counts,
        "progress": progress(counts),
        "batches": batches,
        "moves": allowed_moves(campaign.status),
    }


# --- hunts -------------------------------------------------------------------------------------


def hunts(account: Account, now: datetime) -> list[dict[str, Any]]:
    rows = list(Hunt.select().where(Hunt.account == account.id).order_by(Hunt.id))
    ids = [h.id for h in rows]
    today = local_day(account.timezone, now)
    contacted: dict[int, int] = {}
    credits: dict[int, list[HuntChannelCredit]] = {i: [] for i in ids}
    stages: dict[int, dict[str, int]] = {i: dict.fromkeys(LEAD_STAGES, 0) for i in ids}
    if ids:
        for hunt_id, count in _rows(
            HuntPacing.select(HuntPacing.hunt, HuntPacing.count).where(
                HuntPacing.hunt.in_(ids)
                & (HuntPacing.day == today)
                & (HuntPacing.channel == ALL_CHANNELS)
            )
        ):
            contacted[int(hunt_id)] = int(count)
        for credit in (
            HuntChannelCredit.select()
            .where(HuntChannelCredit.hunt.in_(ids))
            .order_by(HuntChannelCredit.hunt, HuntChannelCredit.channel)
        ):
            credits[credit.hunt_id].append(credit)
        for hunt_id, stage, count in _rows(
            Lead.select(Lead.hunt, Lead.stage, fn.COUNT(Lead.id))
            .where((Lead.account == account.id) & Lead.hunt.in_(ids))
            .group_by(Lead.hunt, Lead.stage)
        ):
            stages[int(hunt_id)][str(stage)] = int(count)
    return [
        {
            "hunt": h,
            "contacted_today": contacted.get(h.id, 0),
            "credits": credits[h.id],
            "stages": stages[h.id],
        }
        for h in rows
    ]


# --- engagement --------------------------------------------------------------------------------


def engagement(account_id: int) -> dict[str, Any]:
    """The latest daily runs, with the outcomes of this account's users only."""
    runs = list(EngagementRun.select().order_by(EngagementRun.id.desc()).limit(RUNS_SHOWN))
    ids = [r.id for r in runs]
    outcomes: dict[int, dict[str, int]] = {i: dict.fromkeys(OUTCOMES, 0) for i in ids}
    errors: list[EngagementOutcome] = []
    if ids:
        mine = EngagementOutcome.run.in_(ids) & (User.account == account_id)
        for run_id, outcome, count in _rows(
            EngagementOutcome.select(
                EngagementOutcome.run, EngagementOutcome.outcome, fn.COUNT(EngagementOutcome.id)
            )
            .join(User, on=(EngagementOutcome.user_id == User.id))
            .where(mine)
            .group_by(EngagementOutcome.run, EngagementOutcome.outcome)
        ):
            outcomes[int(run_id)][str(outcome)] = int(count)
        errors = list(
            EngagementOutcome.select(EngagementOutcome)
            .join(User, on=(EngagementOutcome.user_id == User.id))
            .where(mine & (EngagementOutcome.outcome == "failed"))
            .order_by(EngagementOutcome.id.desc())
            .limit(ERRORS_SHOWN)
        )
    return {
        "runs": [{"run": r, "outcomes": outcomes[r.id]} for r in runs],
        "outcome_names": OUTCOMES,
        "errors": errors,
    }


# --- review ------------------------------------------------------------------------------------


def unknown_rows(account_id: int) -> list[OutboxMessage]:
    return list(
        OutboxMessage.select()
        .where((OutboxMessage.status == UNKNOWN) & (OutboxMessage.account_id == account_id))
        .order_by(OutboxMessage.id)
        .limit(UNKNOWN_SHOWN)
    )


def owned_unknown(account_id: int, outbox_id: int) -> OutboxMessage:
    row: OutboxMessage | None = OutboxMessage.get_or_none(
        (OutboxMessage.id == outbox_id) & (OutboxMessage.account_id == account_id)
    )
    if row is None:
        raise NotFound(f"outbox message {outbox_id} does not exist")
    return row


# The actors whose first argument names a row of an account, and the query from that id to it.
def _accounts_by_first_arg(actor: str, ids: list[int]) -> dict[int, int | None]:
    query: Any
    if actor in ("deliver_outbox_message", "deliver_outbox_messages"):
        query = OutboxMessage.select(OutboxMessage.id, OutboxMessage.account_id).where(
            OutboxMessage.id.in_(ids)
        )
    elif actor == "run_campaign_batch":
        query = (
            Campaign.select(Campaign.id, User.account)
            .join(User, on=(Campaign.owner == User.id))
            .where(Campaign.id.in_(ids))
        )
    elif actor == "process_hunt":
        query = Hunt.select(Hunt.id, Hunt.account).where(Hunt.id.in_(ids))
    else:
        return {}
    return {int(i): (int(a) if a is not None else None) for i, a in _rows(query)}


def _first_id(dead: DeadMessage) -> int | None:
    args = list(dead.message.args)
    if not args:
        return None
    first = args[0]
    if isinstance(first, list):  # a delivery group: its rows are of one account
        first = first[0] if first else None
    if dead.message.actor_name == "process_engagement_user" and len(args) > 1:
        first = args[1]  # (run id, user id, check)
    return int(first) if isinstance(first, int) and not isinstance(first, bool) else None


def _engagement_accounts(ids: list[int]) -> dict[int, int | None]:
    query = User.select(User.id, User.account).where(User.id.in_(ids))
    return {int(i): int(a) for i, a in _rows(query)}


# The actors a dead message is attributed to an account by; any other is the installation's.
ATTRIBUTED_ACTORS = (
    "deliver_outbox_message",
    "deliver_outbox_messages",
    "run_campaign_batch",
    "process_hunt",
    "process_engagement_user",
)


def visible_dead(account_id: int) -> list[tuple[DeadMessage, bool]]:
    """Dead messages this account's operators may see and requeue, each with True when it is
    the account's own, False when it belongs to no account (a schedule's sweep, say).

    A dead message carries only ids: its account is found from them, one query per actor.
    """
    dead = list_dead(redis_broker())
    wanted: dict[str, list[int]] = {}
    for d in dead:
        first = _first_id(d)
        if d.message.actor_name in ATTRIBUTED_ACTORS and first is not None:
            wanted.setdefault(d.message.actor_name, []).append(first)
    owners: dict[str, dict[int, int | None]] = {}
    for actor, ids in wanted.items():
        if actor == "process_engagement_user":
            owners[actor] = _engagement_accounts(ids)
        else:
            owners[actor] = _accounts_by_first_arg(actor, ids)
    visible = []
    for d in dead:
        actor = d.message.actor_name
        if actor not in ATTRIBUTED_ACTORS:
            visible.append((d, False))
            continue
        first = _first_id(d)
        owner = owners.get(actor, {}).get(first) if first is not None else None
        if owner == account_id:
            visible.append((d, True))
    return visible
