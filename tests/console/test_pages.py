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
    tenant: Tenant, key: str, status: str, source: str, age: timedelta = timedelta()
) -> None:
    at = clock.now() - age
    OutboxMessage.create(
        idempotency_key=key, channel="log", recipient="x@example.com", body="hi", source=source,
        status=status, account_id=tenant.account.id, created_at=at,
        finished_at=at if status == "sent" else None,
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


def test_the_overview_counts_this_accounts_outbox_of_today_only(tenants, clock):
    a, b = tenants
    outbox(a, "a1", "sent", "campaign")
    outbox(a, "a2", "sent", "hunt")
    outbox(a, "a3", "failed", "campaign")
    outbox(a, "a-old", "sent", "campaign", age=timedelta(days=2))
    outbox(b, "b1", "sent", "campaign")
    data = panels.overview(Account.get_by_id(a.account.id), clock.now())
    assert data["outbox"]["sent"] == 2
    assert data["outbox"]["failed"] == 1
    assert data["sends"] == {"campaign": 1, "hunt": 1}
    assert {s["name"] for s in data["schedules"]} >= {"engagement", "hunts", "campaigns"}


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
