"""The plain rules of what comes in: signatures, event identities, what a text means."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from storage.errors import InvalidInput
from storage.settings import Settings
from tests.inbound import waha
from worker.inbound import replies
from worker.inbound.events import waha_identity
from worker.inbound.signature import BadSignature, sign, verify

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW_MS = str(int(NOW.timestamp() * 1000))


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def test_a_body_signed_with_the_key_just_now_is_accepted():
    verify(b"{}", "k", sign(b"{}", "k"), NOW_MS, NOW)


@pytest.mark.parametrize(
    ("signature", "timestamp", "algorithm", "reason"),
    [
        (None, NOW_MS, "sha512", "unsigned"),
        (sign(b"{}", "other"), NOW_MS, "sha512", "wrong signature"),
        (sign(b"{}", "k")[:-1] + "0", NOW_MS, "sha512", "wrong signature"),
        ("é" * 128, NOW_MS, "sha512", "wrong signature"),
        (sign(b"{}", "k"), None, "sha512", "timestamp"),
        (
            sign(b"{}", "k"),
            _ms(NOW - timedelta(minutes=6)),
            None,
            "stale",
        ),
        (
            sign(b"{}", "k"),
            _ms(NOW + timedelta(minutes=5)),
            None,
            "stale",
        ),
        (sign(b"{}", "k"), NOW_MS, "sha1", "algorithm"),
    ],
)
def test_unsigned_wrongly_signed_and_stale_requests_are_refused(
    signature, timestamp, algorithm, reason
):
    with pytest.raises(BadSignature, match=reason):
        verify(b"{}", "k", signature, timestamp, NOW, algorithm)


def test_a_message_is_itself_by_its_message_id_and_an_ack_by_message_and_level():
    import json

    one = json.loads(waha.message(waha.MEMBER_JID, "hi", message_id="m-1"))
    again = {**one, "id": "evt_other"}  # WAHA's retry of it, or its `message.any` twin
    assert waha_identity(one) == waha_identity(again)
    read = json.loads(waha.ack("m-1", 3))
    delivered = json.loads(waha.ack("m-1", 2))
    assert waha_identity(read) != waha_identity(delivered)
    with pytest.raises(InvalidInput):
        waha_identity({"payload": {}})
    with pytest.raises(InvalidInput):
        waha_identity({"event": "session.status"})


@pytest.mark.parametrize("text", ["STOP", " stop. ", "Arrêt", "ARRET!", "parar", "Sair"])
def test_stop_words_of_every_locale(text):
    assert replies.is_stop(text)


@pytest.mark.parametrize("text", ["stop by tomorrow?", "1", "ok", ""])
def test_other_words_are_not_a_stop(text):
    assert not replies.is_stop(text)


@pytest.mark.parametrize(
    ("text", "locale", "answer"),
    [
        ("1", "fr", "come-back"),
        ("2", "pt-BR", "remind-later"),
        ("Plus tard", "fr", "remind-later"),
        ("depois", "pt-BR", "remind-later"),
        ("3", "en", "stop"),
        ("maybe", "en", None),
    ],
)
def test_goodbye_answers_by_number_or_word(text, locale, answer):
    assert replies.goodbye_answer(text, locale) == answer


def test_without_a_webhook_key_the_waha_route_does_not_exist():
    from producers.web.app import create_app

    async def post() -> int:
        transport = httpx.ASGITransport(app=create_app(Settings()))
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            return (await client.post("/inbound/waha", content=b"{}")).status_code

    assert asyncio.run(post()) == 404


def test_the_webhook_answers_past_the_console_middleware_and_only_to_post(sqlite_db):
    from producers.web.app import create_app

    app = create_app(Settings(waha_webhook_key=waha.KEY))
    body = waha.message(waha.MEMBER_JID, "hello")

    async def requests() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            return (
                await client.post("/inbound/waha", content=body, headers=waha.headers(body)),
                await client.get("/inbound/waha"),
                await client.get("/console/login"),
            )

    posted, got, login = asyncio.run(requests())
    # The webhook stores the event, sets no session cookie, and refuses other methods
    assert (posted.status_code, posted.json()) == (200, {"stored": True})
    assert "set-cookie" not in posted.headers
    assert got.status_code == 405
    # And the console's pages still go through the session middleware
    assert login.status_code == 200
    assert "set-cookie" in login.headers


def test_an_event_id_holding_a_nul_character_is_bad_input():
    event = {"event": "message", "payload": {"id": "false_1\x00", "from": waha.MEMBER_JID}}
    with pytest.raises(InvalidInput, match="NUL"):
        waha_identity(event)
