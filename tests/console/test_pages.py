"""What each page shows: this account's figures, read in grouped queries, never another's."""

from __future__ import annotations

from datetime import timedelta

from producers.web import panels
from storage import clock
from storage.models import (
    Account,
    Ad,
    EngagementOutcome,
    EngagementRun,
    Hunt,
    HuntChannelCredit,
    HuntPacing,
    Lead,
    OutboxMessage,
    Sender,
)
from tests.console.conftest import Tenant
from worker.hunts.pacing import local_day

PAGES = [
    "/console/",
    "/console/campaigns",
    "/console/hunts",
    "/console/engagement",
    "/console/review",
]


def outbox(
    tenant: Tenant,
    key: str,
    status: str,
    source: str,
    age: timedelta = timedelta(),
    sender: str | None = None,
) -> None:
    at = clock.now() - age
    OutboxMessage.create(
        idempotency_key=key, channel="log", recipient="x@example.com", body="hi", source=source,
        status=status, account_id=tenant.account.id, created_at=at, sender=sender,
        finished_at=at if status in ("sent", "failed", "suppressed") else None,
    )  # fmt: skip


def sender(name: str, account: Account | None = None, paused_for: timedelta | None = None) -> None:
    until = clock.now() + paused_for if paused_for is not None else None
    Sender.create(
        name=name, channel=name.partition(":")[0], account_id=account.id if account else None,
        paused_until=until, pause_reason=f"{name} held" if until else None,
        created_at=clock.now(),
    )  # fmt: skip


def hunt(tenant: Tenant, name: str, contacted: int, limit: int) -> Hunt:
    now = clock.now()
    made = Hunt.create(
        account=tenant.account, owner=tenant.operator, name=name, daily_pacing_limit=limit,
        channels=["email"], message_template="Hello", criteria={}, created_at=now, updated_at=now,
        last_scan_at=now,
    )  # fmt: skip
    day = local_day(tenant.account.timezone, now)
    HuntPacing.create(hunt=made, day=day, channel="*", count=contacted)
    HuntPacing.create(hunt=made, day=day - timedelta(days=1), channel="*", count=99)
    HuntChannelCredit.create(hunt=made, channel="email", allocated=50, reserved=2, consumed=7)
    for n, stage in enumerate(["nouveau", "contacte", "contacte", "repondu"]):
        ad = Ad.create(
            source="test", external_id=f"{name}-{n}", title="Bike", postal_code="75001",
            url="https://ads.example.org/1", published_at=now, imported_at=now, updated_at=now,
        )  # fmt: skip
        Lead.create(
            account=tenant.account, hunt=made, ad=ad, stage=stage, created_at=now, updated_at=now
        )
    return made


def test_the_overview_counts_this_accounts_open_rows_and_rows_finished_today(tenants, clock):
    # Given rows of account A finished today, one finished two days ago, one still queued from
    # two days ago, and a row of account B
    a, b = tenants
    outbox(a, "a1", "sent", "campaign")
    outbox(a, "a2", "sent", "hunt")
    outbox(a, "a3", "failed", "campaign")
    outbox(a, "a-old", "sent", "campaign", age=timedelta(days=2))
    outbox(a, "a-waiting", "queued", "campaign", age=timedelta(days=2))
    outbox(b, "b1", "sent", "campaign")
    # When A's operator reads the overview
    data = panels.overview(Account.get_by_id(a.account.id), clock.now())
    # Then it counts A's rows finished today and its open row, whatever its age
    assert data["outbox"] == {
        "queued": 1, "sending": 0, "sent": 2, "failed": 1, "unknown": 0, "suppressed": 0,
    }  # fmt: skip
    assert data["sends"] == {"campaign": 1, "hunt": 1}
    assert {s["name"] for s in data["schedules"]} >= {"engagement", "hunts", "campaigns"}


def test_the_overview_shows_the_paused_senders_this_account_uses_only(tenants, clock):
    # Given A's own sender paused, a shared default sender paused with A's rows waiting on it,
    # B's own sender paused, a shared sender paused holding only B's rows, and A's other sender
    # whose pause has ended
    a, b = tenants
    sender("whatsapp:acme", a.account, paused_for=timedelta(hours=2))
    sender("whatsapp:default", paused_for=timedelta(hours=1))
    sender("whatsapp:globex", b.account, paused_for=timedelta(hours=3))
    sender("email:shared", paused_for=timedelta(hours=4))
    sender("email:acme", a.account, paused_for=timedelta(hours=-1))
    outbox(a, "a-wait-1", "queued", "campaign", sender="whatsapp:default")
    outbox(a, "a-wait-2", "sending", "hunt", sender="whatsapp:default")
    outbox(a, "a-done", "sent", "hunt", sender="email:shared")
    outbox(b, "b-wait", "queued", "campaign", sender="whatsapp:default")
    outbox(b, "b-wait-2", "queued", "campaign", sender="email:shared")
    # When A's operator reads the overview
    data = panels.overview(Account.get_by_id(a.account.id), clock.now())
    # Then A sees the shared sender holding its two rows (not B's), and its own paused sender,
    # soonest to end first; nothing of B's
    assert [(s["name"], s["waiting"], s["reason"]) for s in data["senders"]] == [
        ("whatsapp:default", 2, "whatsapp:default held"),
        ("whatsapp:acme", 0, "whatsapp:acme held"),
    ]
    assert data["senders"][0]["paused_until"] == clock.now() + timedelta(hours=1)


def test_the_overview_page_names_the_paused_sender_and_why(tenants, console, clock):
    # Given A's own sender paused by a WAHA 463
    a, b = tenants
    sender("whatsapp:acme", a.account, paused_for=timedelta(hours=2))
    sender("whatsapp:globex", b.account, paused_for=timedelta(hours=2))
    # When A's operator opens the overview
    console.login(a.email)
    page = console.get("/console/").text
    # Then the panel names it and its reason, and not B's
    assert "whatsapp:acme held" in page
    assert "whatsapp:globex" not in page


def test_hunts_show_todays_contacts_credits_and_leads_of_this_account(tenants, clock):
    a, b = tenants
    hunt(a, "Bikes in Paris", contacted=3, limit=10)
    hunt(b, "Globex cars", contacted=8, limit=8)
    rows = panels.hunts(Account.get_by_id(a.account.id), clock.now())
    assert [r["hunt"].name for r in rows] == ["Bikes in Paris"]
    row = rows[0]
    assert row["contacted_today"] == 3
    assert [(c.channel, c.consumed, c.reserved, c.allocated) for c in row["credits"]] == [
        ("email", 7, 2, 50)
    ]
    assert row["stages"] == {"nouveau": 1, "contacte": 2, "repondu": 1}


def test_engagement_runs_count_this_accounts_users_only(tenants, clock):
    a, b = tenants
    run = EngagementRun.create(fire_time=clock.now(), started_at=clock.now())
    for user, outcome, detail in [
        (a.operator.id, "succeeded", None),
        (a.operator.id, "failed", "WAHA said 500"),
        (b.operator.id, "failed", "Globex's own error"),
    ]:
        EngagementOutcome.create(
            run=run, user_id=user, check_type=f"check-{outcome}-{detail}", outcome=outcome,
            detail=detail, recorded_at=clock.now(),
        )  # fmt: skip
    data = panels.engagement(a.account.id)
    assert data["runs"][0]["outcomes"] == {"succeeded": 1, "failed": 1, "skipped": 0}
    assert [e.detail for e in data["errors"]] == ["WAHA said 500"]


def test_every_page_renders_for_its_operator_without_the_other_accounts_names(
    tenants, console, clock
):
    a, b = tenants
    hunt(a, "Bikes in Paris", contacted=3, limit=10)
    hunt(b, "Globex cars", contacted=8, limit=8)
    console.login(a.email)
    for path in PAGES:
        response = console.get(path)
        assert response.status_code == 200, path
        assert "Globex" not in response.text, path
        # Every console answer refuses framing and caching
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
    assert "Bikes in Paris" in console.get("/console/hunts").text
    assert "3 / 10" in console.get("/console/hunts").text


def test_redis_down_is_a_clear_503_not_a_traceback(tenants, console):
    from dramatiq.brokers.redis import RedisBroker

    from worker.broker import use_broker

    a, _ = tenants
    console.login(a.email)
    down = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=1)
    use_broker(down)
    try:
        for path in ("/console/", "/console/review"):
            response = console.get(path)
            assert response.status_code == 503, path
            assert "Redis is unavailable" in response.text
    finally:
        down.close()
