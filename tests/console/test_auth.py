"""The console's gate: login, session, CSRF, confirmation and ownership, each refused with
nothing changed (Starlette's test client against the real app, on both databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.operators import set_password
from storage import clock
from storage.models import Campaign, OutboxMessage
from storage.settings import Settings
from tests.console.conftest import PASSWORD, Console, console_client

PAGES = [
    "/console/",
    "/console/campaigns",
    "/console/hunts",
    "/console/engagement",
    "/console/review",
]


def status_of(campaign: Campaign) -> str:
    return Campaign.get_by_id(campaign.id).status


def test_without_a_session_every_page_sends_to_the_login(tenants, console):
    a, _ = tenants
    for path in [*PAGES, f"/console/campaigns/{a.campaign.id}"]:
        response = console.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"


def test_an_action_without_a_session_changes_nothing(tenants, console):
    # Given an anonymous visitor holding a valid CSRF token of their own session
    a, _ = tenants
    console.get("/console/login")
    # When they post a pause with the confirmation ticked
    response = console.post(f"/console/campaigns/{a.campaign.id}/pause", {"confirm": "yes"})
    # Then they are sent to the login and the campaign still runs
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert status_of(a.campaign) == "running"


def test_a_wrong_password_or_unknown_email_opens_no_session(tenants, console):
    a, _ = tenants
    assert console.login(a.email, PASSWORD + "x").status_code == 401
    assert console.login("nobody@example.com").status_code == 401
    assert console.get("/console/").status_code == 303


def test_the_right_password_opens_a_session_on_the_operators_account(tenants, console):
    a, b = tenants
    response = console.login(a.email.upper())
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    overview = console.get("/console/")
    assert overview.status_code == 200
    assert "Acme" in overview.text
    listed = console.get("/console/campaigns").text
    assert a.campaign.name in listed
    assert b.campaign.name not in listed


def test_the_session_cookie_is_signed_httponly_and_lax(tenants, console):
    a, _ = tenants
    cookie = console.login(a.email).headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # http://localhost: a browser would drop a Secure cookie


def test_the_cookie_is_secure_behind_https(tenants):
    a, _ = tenants
    https = Settings(public_url="https://console.example.com")
    browser = Console(console_client(https))
    browser.client.base_url = "https://testserver"
    cookie = browser.login(a.email).headers["set-cookie"].lower()
    assert "; secure" in cookie


def test_a_forged_cookie_is_no_session(tenants, console):
    a, _ = tenants
    console.login(a.email)
    value = console.client.cookies["outreach_console"]
    console.client.cookies.clear()
    console.client.cookies.set(
        "outreach_console", value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    )
    assert console.get("/console/").status_code == 303


def test_another_accounts_campaign_is_not_found_and_not_touched(tenants, console):
    # Given the operator of Acme logged in
    a, b = tenants
    console.login(a.email)
    console.get("/console/")
    # When they open Globex's campaign, or post any move on it
    assert console.get(f"/console/campaigns/{b.campaign.id}").status_code == 404
    for move in ("pause", "cancel", "run-now", "resume"):
        response = console.post(f"/console/campaigns/{b.campaign.id}/{move}", {"confirm": "yes"})
        assert response.status_code == 404, move
    # Then it is still running, as it was
    assert status_of(b.campaign) == "running"
    # And an id that exists nowhere is the same 404
    assert console.get("/console/campaigns/999999").status_code == 404


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_form_without_the_csrf_token_is_refused(tenants, console, token):
    a, _ = tenants
    console.login(a.email)
    console.get(f"/console/campaigns/{a.campaign.id}")
    data = {"confirm": "yes"} if token is None else {"confirm": "yes", "csrf_token": token}
    response = console.post(f"/console/campaigns/{a.campaign.id}/pause", data, csrf=False)
    assert response.status_code == 403
    assert status_of(a.campaign) == "running"


def test_the_login_form_needs_its_csrf_token_too(tenants, console):
    a, _ = tenants
    console.get("/console/login")
    response = console.post("/console/login", {"email": a.email, "password": PASSWORD}, csrf=False)
    assert response.status_code == 403
    assert console.get("/console/").status_code == 303


def test_an_action_needs_its_confirmation_box(tenants, console):
    a, _ = tenants
    console.login(a.email)
    console.get(f"/console/campaigns/{a.campaign.id}")
    response = console.post(f"/console/campaigns/{a.campaign.id}/pause", {})
    assert response.status_code == 400
    assert "confirmation" in response.text
    assert status_of(a.campaign) == "running"


def test_pause_and_resume_go_through_the_lifecycle(tenants, console):
    a, _ = tenants
    console.login(a.email)
    console.get(f"/console/campaigns/{a.campaign.id}")
    paused = console.post(f"/console/campaigns/{a.campaign.id}/pause", {"confirm": "yes"})
    assert paused.status_code == 303
    assert status_of(a.campaign) == "paused"
    assert "campaign pause: now paused" in console.get(paused.headers["location"]).text
    # The same checks as the CLI: pausing a paused campaign is refused with the reason
    again = console.post(f"/console/campaigns/{a.campaign.id}/pause", {"confirm": "yes"})
    assert again.status_code == 409
    assert "paused" in again.text
    console.post(f"/console/campaigns/{a.campaign.id}/resume", {"confirm": "yes"})
    assert status_of(a.campaign) == "running"


def test_logins_are_throttled_per_email_and_client(tenants, console, clock):
    a, b = tenants
    for _ in range(5):
        assert console.login(a.email, "wrong password!").status_code == 401
    # The sixth try is refused before the password is even checked, right or not
    assert console.login(a.email).status_code == 429
    assert console.get("/console/").status_code == 303
    # Another email from the same client is not blocked
    assert console.login(b.email).status_code == 303
    # A minute later the operator may try again
    clock.advance(timedelta(minutes=1))
    assert console.login(a.email).status_code == 303


def test_a_new_password_ends_the_sessions_opened_before(tenants, console):
    a, _ = tenants
    console.login(a.email)
    assert console.get("/console/").status_code == 200
    set_password(a.operator.id, "another password 2")
    assert console.get("/console/").status_code == 303


def test_logout_ends_the_session(tenants, console):
    a, _ = tenants
    console.login(a.email)
    console.get("/console/")
    assert console.post("/console/logout", {}).status_code == 303
    assert console.get("/console/").status_code == 303


def _unknown_row(account_id: int, key: str) -> OutboxMessage:
    return OutboxMessage.create(
        idempotency_key=key, channel="log", recipient="x@example.com", body="hi",
        source="campaign", status="unknown", account_id=account_id, created_at=clock.now(),
    )  # fmt: skip


def test_an_unknown_outbox_row_of_another_account_is_not_found(tenants, console):
    a, b = tenants
    mine = _unknown_row(a.account.id, "a-1")
    theirs = _unknown_row(b.account.id, "b-1")
    console.login(a.email)
    review = console.get("/console/review").text
    assert f"resolve-{mine.id}" in review
    assert f"resolve-{theirs.id}" not in review
    form = {"action": "mark-sent", "reason": "seen on the phone", "confirm": "yes"}
    assert console.post(f"/console/review/outbox/{theirs.id}", form).status_code == 404
    assert OutboxMessage.get_by_id(theirs.id).status == "unknown"
    # Their own row is resolved, with who did it kept in the row
    assert console.post(f"/console/review/outbox/{mine.id}", form).status_code == 303
    row = OutboxMessage.get_by_id(mine.id)
    assert row.status == "sent"
    assert f"operator {a.operator.id}" in row.last_error


def test_run_now_starts_a_draft_only_for_its_owner_as_the_cli_does(tenants, console):
    from producers.operators import add_operator
    from storage.models import User
    from worker.campaigns.create import CampaignSpec, create_campaign

    # Given a draft campaign of Acme's operator, and a second operator of Acme
    a, _ = tenants
    spec = {
        "owner_id": a.operator.id, "name": "Draft", "channel": "log",
        "contact_list": "Acme customers", "template": "Hi {Name}",
    }  # fmt: skip
    draft = create_campaign(CampaignSpec.from_mapping(spec))
    colleague = User.get_by_id(
        add_operator(a.account.id, "colleague@acme.example.com", PASSWORD)["id"]
    )
    # When the colleague runs it now, it is refused (seed 003: only the owner), unchanged
    console.login("colleague@acme.example.com")
    console.get(f"/console/campaigns/{draft.id}")
    refused = console.post(f"/console/campaigns/{draft.id}/run-now", {"confirm": "yes"})
    assert refused.status_code == 403
    assert f"user {colleague.id} does not own campaign {draft.id}" in refused.text
    assert status_of(draft) == "draft"
    # When the owner does, it runs
    console.client.cookies.clear()
    console.login(a.email)
    console.get(f"/console/campaigns/{draft.id}")
    assert (
        console.post(f"/console/campaigns/{draft.id}/run-now", {"confirm": "yes"}).status_code
        == 303
    )
    assert status_of(draft) == "running"
