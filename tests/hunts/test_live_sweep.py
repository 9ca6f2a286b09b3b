"""End to end on real Redis and PostgreSQL with the Procfile's `dramatiq` worker: the daily sweep
over several hunts, their deliveries on the `log` channel, and the next day's run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.hunts import sweep
from storage import clock
from storage.db import database
from storage.models import Account, Ad, ContactedAd, HuntRun, Lead, OutboxMessage, User
from tests.hunts.conftest import ad_row, definition
from tests.processes import wait_until, worker_process
from worker.hunts import pacing
from worker.hunts.definition import create_hunt

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]


def _settled(day_runs: int, messages: int) -> bool:
    with database.connection_context():
        finished = HuntRun.select().where(HuntRun.finished_at.is_null(False)).count()
        sent = OutboxMessage.select().where(OutboxMessage.status == "sent").count()
        return finished == day_runs and sent == messages


def test_daily_sweep_over_several_hunts_end_to_end(live_services, tmp_path):
    with database.connection_context():
        # Given 12 ads, and three hunts of two accounts (Paris and Los Angeles) on `log`
        Ad.insert_many([ad_row(n) for n in range(1, 13)]).execute()
        paris = Account.create(name="Paris", timezone="Europe/Paris", created_at=clock.now())
        la = Account.create(name="LA", timezone="America/Los_Angeles", created_at=clock.now())
        paris_owner = User.create(account=paris, name="Claire", created_at=clock.now())
        la_owner = User.create(account=la, name="Ann", created_at=clock.now())
        on_log = {"channels": ["log"]}
        limited = create_hunt(
            definition(paris_owner, daily_pacing_limit=2, credits={"log": 100}, **on_log)
        )
        # Same account, so it only gets the ads the first one did not take
        wide = create_hunt(
            definition(
                paris_owner, name="wide", daily_pacing_limit=3, credits={"log": 100}, **on_log
            )
        )
        # Another account: no limit, but 4 credits
        credited = create_hunt(
            definition(la_owner, daily_pacing_limit=None, credits={"log": 4}, **on_log)
        )
        # When the sweep fires, and the Procfile's worker runs
        assert sweep(clock.now())["enqueued"] == 3
    with worker_process(live_services, tmp_path / "worker.log"):
        wait_until(lambda: _settled(3, 2 + 3 + 4), timeout=90, what="day one's hunts")
        with database.connection_context():
            # Then each hunt contacted what its caps allow, and every message went out
            by_hunt = {
                h: ContactedAd.select().where(ContactedAd.hunt == h).count()
                for h in (limited.id, wide.id, credited.id)
            }
            assert by_hunt == {limited.id: 2, wide.id: 3, credited.id: 4}
            assert {lead.stage for lead in Lead.select()} == {"contacte"}
            assert pacing.today_count(limited.id) == 2
            # The two Paris hunts never contacted the same ad
            paris_ads = [
                c.ad_id
                for c in ContactedAd.select().where(ContactedAd.hunt.in_([limited.id, wide.id]))
            ]
            assert len(set(paris_ads)) == 5
            # A second sweep the same day enqueues nothing
            assert sweep(clock.now())["enqueued"] == 0

            # When the next day comes and the sweep fires again
            clock.get_clock().set(clock.now() + timedelta(days=1))  # type: ignore[attr-defined]
            assert sweep(clock.now())["enqueued"] == 3
        # Then the limits apply afresh; the credited hunt has no credits left
        wait_until(lambda: _settled(6, 9 + 2 + 3), timeout=90, what="day two's hunts")
        with database.connection_context():
            assert ContactedAd.select().count() == 14
            assert pacing.today_count(credited.id) == 0
    # And the worker's log has the runs, with no phone number in clear
    log = (tmp_path / "worker.log").read_text()
    assert '"event": "hunt.run"' in log
    assert "+33600000001" not in log
