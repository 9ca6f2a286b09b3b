"""The JSON API under /api/: bearer tokens, ownership, state, and one enqueue per fire."""

from __future__ import annotations

import pytest

from producers.api_tokens import create_token, revoke_token
from storage.models import ApiToken, Campaign, CampaignBatch, HuntRun, ScheduleLastFire
from tests.web.conftest import bearer, other_last_character, queued


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer otk_000000000000_nothing"},
        {"Authorization": "Bearer not-a-token-at-all"},
    ],
    ids=["missing", "empty", "not-bearer", "unknown-id", "malformed"],
)
def test_a_request_without_a_valid_token_is_refused_and_changes_nothing(
    client, token, owner, make_campaign, headers
):
    # Given a draft campaign of the token's account
    campaign = make_campaign(owner)
    # When it is run, and the cron routes called, without a valid token
    answers = [
        client.post(f"/api/campaigns/{campaign.id}/run", headers=headers),
        client.get(f"/api/campaigns/{campaign.id}", headers=headers),
        client.post("/api/cron/hunts", headers=headers),
        client.post("/api/cron/process-campaigns", headers=headers),
    ]
    # Then each is a 401 that says which scheme to use
    assert [a.status_code for a in answers] == [401] * 4
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)
    # And nothing moved: the campaign is still a draft, no fire was recorded
    assert Campaign.get_by_id(campaign.id).status == "draft"
    assert ScheduleLastFire.select().count() == 0


def test_a_token_that_differs_in_its_last_character_is_refused(client, token, owner, make_campaign):
    campaign = make_campaign(owner)
    # Given the real token's id with a secret that is one character off
    near_miss = other_last_character(token)
    answer = client.post(f"/api/campaigns/{campaign.id}/run", headers=bearer(near_miss))
    # Then it is refused, the same as no token, and the real token still works
    assert answer.status_code == 401
    assert Campaign.get_by_id(campaign.id).status == "draft"
    assert client.get(f"/api/campaigns/{campaign.id}", headers=bearer(token)).status_code == 200


def test_a_revoked_token_is_refused(client, token, owner, make_campaign):
    campaign = make_campaign(owner)
    revoke_token(ApiToken.get().token_id)
    assert client.get(f"/api/campaigns/{campaign.id}", headers=bearer(token)).status_code == 401


def test_the_owner_accounts_token_runs_its_campaign_and_the_first_batch_is_enqueued(
    client, token, owner, make_campaign, stub_broker
):
    # Given a draft campaign of the token's account
    campaign = make_campaign(owner, contacts=3)
    # When the API runs it
    answer = client.post(f"/api/campaigns/{campaign.id}/run", headers=bearer(token))
    # Then it is running, its first batch claimed and enqueued
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["status"], body["enqueued_batch"]) == ("running", 1)
    assert Campaign.get_by_id(campaign.id).status == "running"
    assert queued(stub_broker, "campaign") == [(campaign.id, 1)]
    # And its status reads back through the API, as the CLI's --json shows it
    status = client.get(f"/api/campaigns/{campaign.id}", headers=bearer(token)).json()
    assert (status["id"], status["status"], status["daily_send_limit"]) == (
        campaign.id,
        "running",
        2,
    )


def test_another_accounts_campaign_is_not_found_and_not_touched(
    client, token, other_owner, make_campaign, stub_broker
):
    # Given a campaign of another account
    theirs = make_campaign(other_owner)
    # When this account's token runs it, or reads it
    run = client.post(f"/api/campaigns/{theirs.id}/run", headers=bearer(token))
    read = client.get(f"/api/campaigns/{theirs.id}", headers=bearer(token))
    # Then both are 404, worded as for a campaign that does not exist
    assert (run.status_code, read.status_code) == (404, 404)
    assert run.json() == {"error": f"campaign {theirs.id} not found"}
    missing = client.get("/api/campaigns/987654", headers=bearer(token))
    assert missing.json() == {"error": "campaign 987654 not found"}
    # And nothing changed
    assert Campaign.get_by_id(theirs.id).status == "draft"
    assert CampaignBatch.select().count() == 0
    assert queued(stub_broker, "campaign") == []


def test_an_id_beyond_any_column_is_not_found(client, token):
    answer = client.get(f"/api/campaigns/{2**70}", headers=bearer(token))
    assert answer.status_code == 404


def test_running_a_campaign_in_the_wrong_state_is_a_409_with_the_reason(
    client, token, owner, make_campaign, stub_broker
):
    campaign = make_campaign(owner)
    run = client.post(f"/api/campaigns/{campaign.id}/run", headers=bearer(token))
    assert run.status_code == 202
    # When it is run a second time
    again = client.post(f"/api/campaigns/{campaign.id}/run", headers=bearer(token))
    # Then it is refused with the lifecycle's reason, and its batch was enqueued once
    assert again.status_code == 409
    assert "running" in again.json()["error"]
    assert len(queued(stub_broker, "campaign")) == 1
    assert CampaignBatch.select().count() == 1


def test_two_calls_for_the_same_hunts_fire_enqueue_once(
    client, token, owner, make_hunt, stub_broker, clock
):
    # Given an active hunt, and the clock past today's 08:00 in Paris (07:00 UTC)
    hunt = make_hunt(owner)
    # When the cron route is called twice
    first = client.post("/api/cron/hunts", headers=bearer(token))
    second = client.post("/api/cron/hunts", headers=bearer(token))
    # Then the first fires today's 08:00 sweep, the second finds it fired
    assert first.status_code == second.status_code == 200
    assert first.json()["fired"] is True
    assert first.json()["wall_time"] == "2026-03-02T08:00:00"
    assert first.json()["result"]["enqueued"] == 1
    assert second.json()["fired"] is False
    assert second.json()["reason"] == "already fired"
    assert second.json()["fire_time"] == first.json()["fire_time"]
    # And one message was enqueued for one run of the hunt
    assert [args[0] for args in queued(stub_broker, "hunt")] == [hunt.id]
    assert HuntRun.select().count() == 1
    # And the fire is recorded as the scheduler records its own, by whom
    row = ScheduleLastFire.get_by_id("hunts")
    assert row.fired_by.startswith(f"api:account-{owner.account_id}:")
    assert row.result is not None


def test_the_campaign_tick_fires_once_per_period(
    client, token, owner, make_campaign, stub_broker, clock
):
    from datetime import timedelta

    # Given a campaign whose first batch is due
    campaign = make_campaign(owner, start_at=clock.now().isoformat())
    # When the tick route is called twice in the same five minutes
    first = client.post("/api/cron/process-campaigns", headers=bearer(token)).json()
    clock.advance(timedelta(minutes=2))
    second = client.post("/api/cron/process-campaigns", headers=bearer(token)).json()
    # Then one fire, one batch
    assert (first["fired"], first["result"]["enqueued"]) == (True, 1)
    assert (second["fired"], second["fire_time"]) == (False, first["fire_time"])
    assert queued(stub_broker, "campaign") == [(campaign.id, 1)]
    # And the next period is a new fire (with nothing more due: nothing enqueued)
    clock.advance(timedelta(minutes=4))
    third = client.post("/api/cron/process-campaigns", headers=bearer(token)).json()
    assert third["fired"] is True and third["fire_time"] > first["fire_time"]
    assert len(queued(stub_broker, "campaign")) == 1


def test_a_token_is_stored_only_as_its_hash_and_its_use_is_recorded(client, account, clock):
    created = create_token(account.id, "crm")
    row = ApiToken.get(ApiToken.name == "crm")
    # The row holds the public id and a hash, never the token
    assert created["token"].startswith(f"otk_{row.token_id}_")
    assert created["token"] not in (row.hash, row.token_id)
    assert row.last_used_at is None
    client.get("/api/campaigns/1", headers=bearer(created["token"]))
    assert ApiToken.get_by_id(row.id).last_used_at == clock.now()


def test_the_hunts_route_before_todays_time_is_a_409_naming_the_next_fire(
    client, token, owner, make_hunt, stub_broker, clock
):
    from datetime import UTC, datetime

    make_hunt(owner)
    # Given 07:30 in Paris: today's 08:00 sweep is not due, yesterday's is past catching up
    clock.set(datetime(2026, 3, 2, 6, 30, tzinfo=UTC))
    answer = client.post("/api/cron/hunts", headers=bearer(token))
    assert answer.status_code == 409
    assert "the next is at 2026-03-02T08:00:00 Europe/Paris" in answer.json()["error"]
    assert queued(stub_broker, "hunt") == []
    assert HuntRun.select().count() == 0
