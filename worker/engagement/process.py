"""The work of one message: one user, one check of one daily run.

The user is read again (the state may have changed since the sweep); a user no longer due is
recorded as skipped. Otherwise the transition, the goodbye's outbox claim and the outcome
commit together, so a failure leaves the user as they were, to be tried again next day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peewee import IntegrityError

from storage import clock
from storage.errors import InvalidInput, NotFound, OutreachError
from storage.models.accounts import User
from storage.models.engagement import (
    FAILED,
    GROUP,
    SKIPPED,
    SUCCEEDED,
    EngagementRun,
    EngagementState,
    UserProfile,
)
from storage.models.outbox import SUPPRESSED, OutboxMessage
from storage.settings import get_settings
from worker import outbox_sql
from worker.consent.users import OPTED_OUT as OPTED_OUT_CAUSE
from worker.consent.users import suppress_users
from worker.delivery import send_here
from worker.engagement import catalogue, runs, sql
from worker.engagement.checks import Check, get_check
from worker.engagement.state_machine import StateChanged, Thresholds, transition_state
from worker.logging import get_logger
from worker.outbox import new_claim

log = get_logger("outreach.engagement")

GOODBYE_MESSAGE_KEY = "engagement.goodbye.self_select"
OUTBOX_SOURCE = "engagement"
OPTED_OUT = "re-engagement opt-out"


def goodbye_key(user_id: int, now: datetime) -> str:
    """One goodbye per user per UTC day, whoever asks and however often (seed 004)."""
    return f"{user_id}:goodbye_sent:{now.date().isoformat()}"


@dataclass(frozen=True)
class GoodbyeReading:
    """What the inactivity check reads of a user, in one query: state, user and profile."""

    user_id: int
    account_id: int
    state: str
    version: int
    last_activity_at: datetime
    name: str
    phone: str | None
    email: str | None
    preferred_destination: str | None
    whatsapp_jid: str | None
    group_jid: str | None
    locale: str | None
    opted_out: bool


# A user without a profile reads as the profile's defaults: individual, fallback locale.
_READ = sql.SelectOne(
    (
        EngagementState.state,
        EngagementState.version,
        EngagementState.last_activity_at,
        User.account,
        User.name,
        User.phone,
        User.email,
        UserProfile.preferred_destination,
        UserProfile.whatsapp_jid,
        UserProfile.group_jid,
        UserProfile.locale,
        UserProfile.reengagement_opt_out,
    ),
    key=EngagementState.user,
    joins=(
        (EngagementState.user, User.id, False),
        (EngagementState.user, UserProfile.user, True),
    ),
)


def read_for_goodbye(user_id: int) -> GoodbyeReading | None:
    values = _READ.fetch(user_id)
    if values is None:
        return None
    (state, version, last_activity_at, account_id, name, phone, email) = values[:7]
    (destination, jid, group, locale, out) = values[7:]
    return GoodbyeReading(
        user_id=user_id,
        account_id=int(account_id),
        state=state,
        version=version,
        last_activity_at=last_activity_at,
        name=name,
        phone=phone,
        email=email,
        preferred_destination=destination,
        whatsapp_jid=jid,
        group_jid=group,
        locale=locale,
        opted_out=bool(out),
    )


def goodbye_recipient(reading: GoodbyeReading, channel: str) -> str:
    """The user's preferred destination on `channel`."""
    user_id = reading.user_id
    if channel == "email":
        if not reading.email:
            raise InvalidInput(f"user {user_id} has no email address")
        return reading.email
    if reading.preferred_destination == GROUP:
        if not reading.group_jid:
            raise InvalidInput(f"user {user_id} prefers the group destination but has no group")
        return reading.group_jid
    recipient = reading.whatsapp_jid or reading.phone
    if not recipient:
        raise InvalidInput(f"user {user_id} has no WhatsApp id and no phone number")
    return recipient


def _checked_claim_sql(param: str) -> list[str]:
    # A goodbye always has an account (its user's) and is no stop's confirmation: checked.
    return outbox_sql.claim_values_sql(
        param, outbox_sql.CLAIMED_HERE, checked=True, by_account=True
    )


# The goodbye's claim in the outbox, written with the transition (and only if it applies),
# already claimed for sending by this worker; a key claimed before is left as it is. For an
# address suppressed in the user's account the same statement writes it `suppressed` (as every
# claim: worker.outbox_sql). Its id and status are read back for the send.
_GOODBYE_CLAIM = sql.Insert(
    *outbox_sql.CLAIMED_HERE,
    ignore_conflicts=True,
    returning=(OutboxMessage.id, OutboxMessage.status),
    values_sql=_checked_claim_sql,
)


def goodbye_claim(reading: GoodbyeReading, now: datetime) -> sql.Row:
    """The user's goodbye for the day, as a claim in the outbox (checked, not yet written),
    for the user's account."""
    channel = get_settings().engagement_channel
    body = catalogue.render(
        GOODBYE_MESSAGE_KEY,
        reading.locale,
        name=reading.name,
        days=(now - reading.last_activity_at).days,
    )
    message = new_claim(
        goodbye_key(reading.user_id, now),
        channel,
        goodbye_recipient(reading, channel),
        body,
        source=OUTBOX_SOURCE,
        account_id=reading.account_id,
    )
    values = message.claimed_here(now)
    params = outbox_sql.claim_params(message, values, outbox_sql.CLAIMED_HERE)
    return _GOODBYE_CLAIM.row_with_params(values, params)


def _skip(run_id: int, user_id: int, check: Check, reason: str) -> str:
    runs.record_outcome(run_id, user_id, check.name, SKIPPED, reason)
    log.info(
        "engagement.user_skipped",
        run_id=run_id,
        user_id=user_id,
        check_type=check.name,
        reason=reason,
    )
    return SKIPPED


def _no_longer_due(run_id: int, user_id: int, check: Check) -> str:
    row = EngagementState.get_or_none(EngagementState.user == user_id)
    if row is None:
        raise NotFound(f"user {user_id} has no engagement state")
    return _skip(run_id, user_id, check, f"no longer due (state {row.state})")


def _move(run_id: int, user_id: int, check: Check, now: datetime) -> str:
    """A check that sends nothing: one conditional update, on the state and due time the sweep
    found, is the whole re-read (no query before it). The outcome is written with it, so on
    PostgreSQL the user is one statement."""
    try:
        transition_state(
            user_id,
            check.name,
            run_id=run_id,
            from_state=check.state,
            due=check.due_bound(now, Thresholds.from_settings()),
            also_write=[runs.outcome_row(run_id, user_id, check.name, SUCCEEDED)],
        )
    except StateChanged:
        return _no_longer_due(run_id, user_id, check)
    return SUCCEEDED


def _say_goodbye(run_id: int, user_id: int, check: Check, now: datetime) -> str:
    """The inactivity check: the user is read (the goodbye needs their profile), and the
    transition is conditional on the version read."""
    reading = read_for_goodbye(user_id)
    if reading is None:
        raise NotFound(f"user {user_id} has no engagement state")
    if not check.is_due(reading, now, Thresholds.from_settings()):
        return _skip(run_id, user_id, check, f"no longer due (state {reading.state})")
    if reading.opted_out:
        # Opted out since the sweep: consent wins, for every kind of work (worker.consent).
        suppress_users([user_id], OPTED_OUT_CAUSE)
        return _skip(run_id, user_id, check, OPTED_OUT)
    claim = goodbye_claim(reading, now)
    try:
        # The transition, its audit, the outcome and the goodbye's claim: all or nothing (one
        # statement on PostgreSQL).
        transition = transition_state(
            user_id,
            check.name,
            run_id=run_id,
            current=reading,
            also_write=[runs.outcome_row(run_id, user_id, check.name, SUCCEEDED), claim],
        )
    except StateChanged as exc:
        # Another delivery of this message, another run, or the user themself got there first.
        return _skip(run_id, user_id, check, str(exc))
    (goodbye,) = transition.read_back
    if goodbye is None:  # the day's goodbye was claimed before, and is on its way
        return SUCCEEDED
    goodbye_id, status = goodbye
    if status == SUPPRESSED:
        # The user is moved all the same; the goodbye is final, never sent nor enqueued.
        log.info("engagement.goodbye_suppressed", user_id=user_id, outbox_id=goodbye_id)
        return SUCCEEDED
    # Committed: this worker sends the goodbye itself, sparing a delivery message; a send
    # that must be retried goes to the delivery actor.
    send_here(int(goodbye_id), claim.values)
    return SUCCEEDED


def _process(run_id: int, user_id: int, check: Check) -> str:
    now = clock.now()
    if check.sends_goodbye:
        return _say_goodbye(run_id, user_id, check, now)
    return _move(run_id, user_id, check, now)


def process_user(run_id: int, user_id: int, check_type: str) -> str:
    """Apply one check to one user; returns the outcome recorded for the run.

    Bad input (unknown check, user or run; no way to reach the user) is recorded as failed and
    raised, so the message goes straight to the dead letters. Any other error is raised for
    Dramatiq to retry; :func:`record_failure` is called when the retries run out.
    """
    try:
        check = get_check(check_type)
        return _process(run_id, user_id, check)
    except OutreachError as exc:
        record_failure(run_id, user_id, check_type, str(exc))
        raise
    except IntegrityError:
        if EngagementRun.get_or_none(EngagementRun.id == run_id) is None:
            raise NotFound(f"engagement run {run_id} does not exist") from None
        raise


def record_failure(run_id: int, user_id: int, check_type: str, error: str) -> bool:
    """The user's processing failed for good: count it in the run and say so in the log."""
    log.error(
        "engagement.user_failed",
        run_id=run_id,
        user_id=user_id,
        check_type=check_type,
        error=error,
    )
    try:
        return runs.record_outcome(run_id, user_id, check_type, FAILED, error)
    except IntegrityError:
        # The run or the user does not exist: nothing to count it against.
        return False
