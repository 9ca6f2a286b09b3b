"""End to end on real Redis and PostgreSQL with the Procfile's `dramatiq` worker: a campaign of
1,000 contacts with a limit of 300 runs four batches over four simulated days."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.campaigns import tick
from storage import clock
from storage.db import database
from storage.models import (
    Account,
    Campaign,
    CampaignBatch,
    CampaignRecipient,
    Contact,
    ContactList,
    OutboxMessage,
    User,
)
from tests.conftest import T0
from tests.processes import wait_until, worker_process
from worker.campaigns.create import CampaignSpec, create_campaign
from worker.campaigns.progress import campaign_status

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

CONTACTS = 1_000
LIMIT = 300


def _sent() -> int:
    with database.connection_context():
        return OutboxMessage.select().where(OutboxMessage.status == "sent").count()


def _batch_done(number: int, sent: int) -> bool:
    with database.connection_context():
        finished = (
            CampaignBatch.select()
            .where((CampaignBatch.number == number) & CampaignBatch.finished_at.is_null(False))
            .count()
        )
    return finished == 1 and _sent() == sent


def test_a_campaign_of_1000_contacts_runs_four_daily_batches_end_to_end(live_services, tmp_path):
    with database.connection_context():
        # Given 1,000 contacts and a campaign on `log` due at 09:00 with a daily limit of 300
        account = Account.create(name="Bakery", created_at=clock.now())
        owner = User.create(account=account, name="Alice", created_at=clock.now())
        contact_list = ContactList.create(name="everyone", created_at=clock.now())
        Contact.insert_many(
            [
                {
                    "contact_list": contact_list.id,
                    "phone": f"+3361{n:07d}",
                    "first_name": f"Name{n}",
                    "created_at": clock.now(),
                }
                for n in range(CONTACTS)
            ]
        ).execute()
        campaign = create_campaign(
            CampaignSpec.from_mapping(
                {
                    "owner_id": owner.id,
                    "name": "Spring",
                    "channel": "log",
                    "contact_list": "everyone",
                    "template": "Hello {Name}",
                    "daily_send_limit": LIMIT,
                    "start_at": T0.isoformat(),
                }
            )
        )
    with worker_process(live_services, tmp_path / "worker.log"):
        for day in range(4):
            # When the scheduler ticks a couple of minutes after 09:00 on each day
            clock.get_clock().set(T0 + timedelta(days=day, minutes=2))  # type: ignore[attr-defined]
            with database.connection_context():
                assert tick(clock.now())["enqueued"] == 1
                # A second scheduler firing at once adds nothing
                assert tick(clock.now())["enqueued"] == 0
            expected = min(CONTACTS, LIMIT * (day + 1))
            wait_until(
                lambda day=day, expected=expected: _batch_done(day + 1, expected),
                timeout=120,
                what=f"batch {day + 1} to be sent",
            )
    with database.connection_context():
        # Then every contact was messaged exactly once, in batches of 300, 300, 300 and 100
        keys = [m.idempotency_key for m in OutboxMessage.select(OutboxMessage.idempotency_key)]
        assert len(keys) == CONTACTS == len(set(keys))
        batches = list(CampaignBatch.select().order_by(CampaignBatch.number))
        assert [b.selected for b in batches] == [300, 300, 300, 100]
        history = campaign_status(campaign.id)["batches"]
        assert [b["sent"] for b in history] == [300, 300, 300, 100]
        assert [b.scheduled_at for b in batches] == [T0 + timedelta(days=d) for d in range(4)]
        assert (
            CampaignRecipient.select().where(CampaignRecipient.status == "sent").count() == CONTACTS
        )
        done = Campaign.get_by_id(campaign.id)
        assert done.status == "completed"
        assert done.next_batch_at is None
    # And the worker's log masks the phone numbers it sent to
    log = (tmp_path / "worker.log").read_text()
    assert '"event": "message.sent"' in log
    assert "+33610000001" not in log
