"""The inbound loop through real parts: the Procfile's `web` (uvicorn) and `worker` processes, on
the real PostgreSQL and Redis; WAHA's side played by signed HTTP posts."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from storage import clock
from storage.models import Account, EngagementState, OutboxMessage
from storage.models.consent import HANDLED, InboundEvent, Suppression
from storage.models.engagement import GOODBYE_SENT, REMIND_LATER
from storage.models.outbox import CONSENT_SOURCE
from tests.inbound import waha
from tests.inbound.conftest import make_member, sent_row
from tests.processes import wait_until, web_process, worker_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]


def _now_ms() -> int:
    # The processes read the same file clock as the test: "stale" is judged on it.
    return int(clock.now().timestamp() * 1000)


def _post(base: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/inbound/waha", content=body, headers=headers, timeout=10)


def test_bad_requests_are_refused_and_nothing_is_stored(live_services, tmp_path):
    env = {**live_services, "WAHA_WEBHOOK_KEY": waha.KEY}
    with web_process(env, tmp_path / "web.log") as base:
        body = waha.message(waha.MEMBER_JID, "STOP")
        signed = waha.headers(body, at_ms=_now_ms())
        unsigned = {"content-type": "application/json"}
        wrong_key = waha.headers(body, "another-key", at_ms=_now_ms())
        stale = waha.headers(body, at_ms=_now_ms() - 6 * 60 * 1000)
        tampered = body.replace(b"STOP", b"STAY")
        not_json = b"{not json"
        no_event = json.dumps({"payload": {}}).encode()
        huge = b" " * (1024 * 1024 + 1)
        answers = [
            _post(base, body, unsigned).status_code,
            _post(base, body, wrong_key).status_code,
            _post(base, body, stale).status_code,
            _post(base, tampered, signed).status_code,
            _post(base, not_json, waha.headers(not_json, at_ms=_now_ms())).status_code,
            _post(base, no_event, waha.headers(no_event, at_ms=_now_ms())).status_code,
            _post(base, huge, waha.headers(huge, at_ms=_now_ms())).status_code,
        ]
        assert answers == [401, 401, 401, 401, 400, 400, 413]
        assert InboundEvent.select().count() == 0
        ready = httpx.get(f"{base}/readyz", timeout=5).json()
        assert ready == {"ready": True, "database": "ok", "redis": "ok"}


def test_a_stop_posted_twice_at_once_suppresses_and_confirms_once_and_answers_are_heard(
    live_services, tmp_path
):
    # Given a member we wrote to, and a second member who was sent the goodbye in French
    now = clock.now()
    account = Account.create(name="Acme", created_at=now)
    make_member(account, now)
    sent_row(account.id, waha.MEMBER_JID, "greeting-1", now, provider_message_id="true_abc")
    other_jid = "33698765432@c.us"
    other = make_member_with(account, other_jid, now)
    sent_row(account.id, other_jid, "goodbye-2", now)
    env = {**live_services, "WAHA_WEBHOOK_KEY": waha.KEY, "OUTREACH_FORCE_LOG_CHANNEL": "true"}
    with (
        web_process(env, tmp_path / "web.log") as base,
        worker_process(env, tmp_path / "worker.log"),
    ):
        # When WAHA posts the same STOP twice at the same moment, then once more later
        stop = waha.message(waha.MEMBER_JID, "STOP", message_id="false_stop_1")
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(lambda _: _post(base, stop, waha.headers(stop, at_ms=_now_ms())), range(4))
            )
        assert [c.status_code for c in codes] == [200] * 4
        # And the second member answers "2", and WAHA acks our first message as read
        answer = waha.message(other_jid, "2")
        read = waha.ack("true_abc", 3)
        for body in (answer, read):
            assert _post(base, body, waha.headers(body, at_ms=_now_ms())).status_code == 200

        def all_handled() -> bool:
            events = list(InboundEvent.select())
            return len(events) == 3 and all(e.status == HANDLED for e in events)

        wait_until(all_handled, timeout=60, what="the worker to handle every event")
        confirmation = OutboxMessage.get(OutboxMessage.source == CONSENT_SOURCE)
        wait_until(
            lambda: OutboxMessage.get_by_id(confirmation.id).status == "sent",
            timeout=30,
            what="the confirmation to be sent",
        )
    # Then the address is suppressed once, and got exactly one confirmation
    assert Suppression.select().where(Suppression.address == "33612345678").count() == 1
    assert OutboxMessage.select().where(OutboxMessage.source == CONSENT_SOURCE).count() == 1
    # And the goodbye answer moved the second member, and the ack set the read time
    assert EngagementState.get(EngagementState.user == other).state == REMIND_LATER
    assert OutboxMessage.get(OutboxMessage.provider_message_id == "true_abc").read_at is not None


def make_member_with(account: Account, jid: str, now) -> int:
    from storage.models import User, UserProfile

    user = User.create(account=account, name="Zoé", created_at=now)
    UserProfile.create(user=user, locale="fr", whatsapp_jid=jid, created_at=now)
    EngagementState.create(
        user=user,
        state=GOODBYE_SENT,
        last_activity_at=now - timedelta(days=15),
        goodbye_expires_at=now + timedelta(hours=48),
        updated_at=now,
    )
    return int(user.id)


def test_a_burst_of_events_and_their_retries_is_stored_and_handled_once_each(
    live_services, tmp_path
):
    # Given 40 members we wrote to
    now = clock.now()
    account = Account.create(name="Acme", created_at=now)
    jids = [f"336{n:08d}@c.us" for n in range(40)]
    for n, jid in enumerate(jids):
        make_member_with(account, jid, now)
        sent_row(account.id, jid, f"greeting-{n}", now)
    # And a message from each, and a second copy of every fourth (WAHA's retries)
    bodies = [
        waha.message(jid, "hello again", message_id=f"false_burst_{n}")
        for n, jid in enumerate(jids)
    ]
    posts = bodies + bodies[::4]
    env = {**live_services, "WAHA_WEBHOOK_KEY": waha.KEY, "OUTREACH_FORCE_LOG_CHANNEL": "true"}
    with (
        web_process(env, tmp_path / "web.log") as base,
        worker_process(env, tmp_path / "worker.log"),
    ):
        # When they are all posted at once, 25 at a time
        with ThreadPoolExecutor(25) as pool:
            answers = list(
                pool.map(lambda body: _post(base, body, waha.headers(body, at_ms=_now_ms())), posts)
            )
        # Then every post is answered 200, and exactly one copy of each event was new
        assert [a.status_code for a in answers] == [200] * len(posts)
        assert sum(a.json()["stored"] for a in answers) == len(bodies)

        def all_handled() -> bool:
            events = list(InboundEvent.select())
            return len(events) == len(bodies) and all(e.status == HANDLED for e in events)

        wait_until(all_handled, timeout=60, what="the worker to handle every event")
    # And each event is stored once
    assert InboundEvent.select().count() == len(bodies)
