"""Sending hours at delivery: a send due outside waits for the next opening, in the account's
zone; never dropped, never sent outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage.models import Account, OutboxMessage
from tests.pacing.helpers import TimedChannel, play_deliveries
from worker import delivery, outbox_sql
from worker.accounts import create_account
from worker.delivery import Outcome, send_here
from worker.outbox import Outgoing, claim_here, queue_messages

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> TimedChannel:
    recording = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: recording)
    return recording


def paris_account() -> int:
    return int(create_account("Paris team", "Europe/Paris")["id"])


def queue_batch(account_id: int, count: int, hours: str | None = None) -> list[int]:
    rows = queue_messages(
        [Outgoing(f"b-{n}", "log", f"+3361234{n:04d}", "hello") for n in range(count)],
        source="campaign",
        account_id=account_id,
        sending_hours=hours,
    )
    return [row.id for row in rows]


def test_a_batch_due_at_three_goes_at_nine_in_the_accounts_zone(db, clock, channel):
    # Given a Paris account and a batch of 25 due at 03:00 Paris time on a Tuesday
    account = paris_account()
    clock.set(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    ids = queue_batch(account, 25)
    # When its delivery runs: nothing goes, everything waits
    outcomes = delivery.deliver_many(ids)
    assert set(outcomes.values()) == {Outcome.DEFERRED}
    assert channel.sent == []
    # Then when the delayed deliveries fire, all 25 go at 09:00 Paris (08:00 UTC), once each
    play_deliveries(ids, clock)
    assert [when for when in channel.times] == [datetime(2026, 3, 3, 8, 0, tzinfo=UTC)] * 25
    assert len({m.idempotency_key for _, m in channel.sent}) == 25


def test_across_the_spring_change_the_morning_opening_moves_with_the_wall_clock(db, clock, channel):
    # Given a batch due Saturday 28 March 2026 at 21:00 Paris; Sunday is closed and the clocks
    # go forward that night
    account = paris_account()
    clock.set(datetime(2026, 3, 28, 20, 0, tzinfo=UTC))
    ids = queue_batch(account, 3)
    play_deliveries(ids, clock)
    # Then it goes on Monday at 09:00 summer time: 07:00 UTC
    assert set(channel.times) == {datetime(2026, 3, 30, 7, 0, tzinfo=UTC)}


def test_nothing_goes_outside_the_hours_over_a_simulated_week(db, clock, channel):
    # Given a Paris account with a batch queued every 5 hours for a week around the DST change
    account = paris_account()
    start = datetime(2026, 3, 25, 0, 0, tzinfo=UTC)
    ids: list[int] = []
    for n in range(34):
        clock.set(start + timedelta(hours=5 * n))
        rows = queue_messages(
            [Outgoing(f"w-{n}-{k}", "log", f"+336123{n:02d}{k:03d}", "hi") for k in range(3)],
            source="campaign",
            account_id=account,
        )
        ids += [r.id for r in rows]
        play_deliveries(ids, clock)
    # Then every message was sent, once, Monday to Saturday between 09:00 and 20:00 Paris
    assert len(channel.sent) == len(ids) == 102
    for when in channel.times:
        local = when.astimezone(PARIS)
        assert local.weekday() < 6 and 9 <= local.hour < 20, local


def test_a_campaigns_own_hours_override_the_accounts(db, clock, channel):
    account = paris_account()
    clock.set(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    ids = queue_batch(account, 2, hours="always")
    assert set(delivery.deliver_many(ids).values()) == {Outcome.SENT}


def test_an_accounts_hours_replace_the_default(db, clock, channel):
    account = paris_account()
    Account.update(sending_hours="mon-fri 14:00-15:00").where(Account.id == account).execute()
    clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))  # 10:00 Paris: open by default
    ids = queue_batch(account, 1)
    play_deliveries(ids, clock)
    assert channel.times == [datetime(2026, 3, 3, 13, 0, tzinfo=UTC)]


def test_a_manual_message_of_no_account_has_no_hours(db, clock, channel):
    clock.set(datetime(2026, 3, 1, 2, 0, tzinfo=UTC))  # a Sunday night
    rows = queue_messages([Outgoing("manual-1", "log", "+33612340000", "hi")])
    assert delivery.deliver_many([rows[0].id]) == {rows[0].id: Outcome.SENT}


def test_an_engagement_goodbye_follows_the_default_hours(db, clock, env, channel):
    # Given a goodbye claimed and sent at once by the engagement worker at 03:00 UTC
    env.setenv("OUTREACH_SENDING_TIMEZONE", "Europe/Paris")
    clock.set(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    values = claim_here("goodbye-1", "log", "+33612340000", "bye", source="engagement")
    names = [f.name for f in outbox_sql.CLAIMED_HERE]
    goodbye_id = OutboxMessage.insert(dict(zip(names, values, strict=True))).execute()
    # When its worker sends it: it is not sent, but deferred to 09:00 Paris
    send_here(goodbye_id, values)
    row = OutboxMessage.get_by_id(goodbye_id)
    assert (row.status, channel.sent) == ("queued", [])
    assert row.enqueued_at == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    play_deliveries([goodbye_id], clock)
    assert channel.times == [datetime(2026, 3, 3, 8, 0, tzinfo=UTC)]
