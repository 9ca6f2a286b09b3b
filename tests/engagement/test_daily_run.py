"""The daily run (seed 004, Task 7): who is moved, who gets a goodbye, and never twice."""

from __future__ import annotations

from datetime import timedelta

from producers.engagement import run_daily
from storage.models import EngagementOutcome, EngagementTransition, OutboxMessage
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER
from tests.engagement.conftest import JID, log_lines, state_of
from worker.engagement.process import goodbye_key


def goodbyes() -> list[OutboxMessage]:
    return list(OutboxMessage.select().where(OutboxMessage.source == "engagement"))


def test_13_days_inactive_is_left_alone(make_user, daily_run):
    user_id = make_user(inactive_for=timedelta(days=13))
    result = daily_run()
    assert state_of(user_id).state == ACTIVE
    assert goodbyes() == []
    assert result["processed"] == 0 and result["finished"]


def test_14_days_inactive_gets_goodbye_sent_and_one_goodbye(make_user, daily_run, clock):
    # Given a user last active exactly 14 days ago
    user_id = make_user(inactive_for=timedelta(days=14), name="Ana")
    # When the daily job runs
    result = daily_run()
    # Then the user is goodbye_sent, expiring in 48 h, and the transition names the run
    state = state_of(user_id)
    assert state.state == GOODBYE_SENT
    assert state.goodbye_expires_at == clock.now() + timedelta(hours=48)
    [audit] = EngagementTransition.select()
    assert audit.run_id == result["run_id"]
    # And one goodbye was queued with the seed's key, to the user's WhatsApp id, and sent
    [goodbye] = goodbyes()
    assert goodbye.idempotency_key == f"{user_id}:goodbye_sent:2026-03-02"
    assert (goodbye.channel, goodbye.recipient, goodbye.status) == ("log", JID, "sent")
    assert goodbye.body.startswith("Hi Ana, we haven't seen you for 14 days")
    assert result["succeeded"] == 1 and result["failed"] == 0 and result["finished"]


def test_running_again_the_same_day_sends_no_second_goodbye(make_user, daily_run):
    user_id = make_user(inactive_for=timedelta(days=14))
    daily_run()
    # When the job runs a second time the same day
    second = daily_run()
    # Then nothing more happened
    assert len(goodbyes()) == 1
    assert EngagementTransition.select().where(EngagementTransition.user == user_id).count() == 1
    assert second["processed"] == 0


def test_the_next_day_a_still_inactive_user_is_not_transitioned_again(make_user, daily_run, clock):
    user_id = make_user(inactive_for=timedelta(days=14))
    daily_run()
    # When the next day's job runs and the user still did nothing (15 days inactive)
    clock.advance(timedelta(days=1))
    result = daily_run()
    # Then no second transition and no second goodbye
    assert state_of(user_id).state == GOODBYE_SENT
    assert EngagementTransition.select().count() == 1
    assert len(goodbyes()) == 1
    assert result["processed"] == 0


def test_a_goodbye_already_claimed_today_is_not_queued_twice(make_user, daily_run, clock):
    # Given a user whose goodbye key for today is already claimed (processed earlier today,
    # then put back to active with its old activity date by an operator)
    user_id = make_user(inactive_for=timedelta(days=15))
    daily_run()
    state = state_of(user_id)
    state.state, state.goodbye_expires_at = ACTIVE, None
    state.save()
    # When the job runs again
    result = daily_run()
    # Then the transition happens again but the outbox key stops a second goodbye
    assert state_of(user_id).state == GOODBYE_SENT
    assert len(goodbyes()) == 1
    assert goodbyes()[0].idempotency_key == goodbye_key(user_id, clock.now())
    assert result["succeeded"] == 1


def test_an_opted_out_user_is_skipped(make_user, daily_run):
    # Given an inactive user who opted out of re-engagement
    user_id = make_user(inactive_for=timedelta(days=30), opted_out=True)
    result = daily_run()
    # Then no transition, no message, and the run counts them as skipped
    assert state_of(user_id).state == ACTIVE
    assert goodbyes() == []
    assert EngagementTransition.select().count() == 0
    assert (result["processed"], result["skipped"], result["succeeded"]) == (1, 1, 0)
    assert result["enqueued"] == 0 and result["finished"]


def test_47_hours_after_the_goodbye_nothing_happens(make_user, daily_run, clock):
    user_id = make_user(inactive_for=timedelta(days=14))
    daily_run()
    clock.advance(timedelta(hours=47))
    daily_run()
    assert state_of(user_id).state == GOODBYE_SENT


def test_48_hours_after_the_goodbye_the_user_is_dormant_and_gets_no_message(
    make_user, daily_run, clock
):
    user_id = make_user(inactive_for=timedelta(days=14))
    daily_run()
    clock.advance(timedelta(hours=48))
    result = daily_run()
    assert state_of(user_id).state == DORMANT
    assert len(goodbyes()) == 1  # only the goodbye itself
    assert result["by_check"]["goodbye_timeout"]["succeeded"] == 1


def test_a_due_reminder_makes_the_user_dormant_without_a_message(make_user, daily_run, clock):
    due = make_user(state=REMIND_LATER, remind_at=clock.now() - timedelta(minutes=1))
    not_yet = make_user(state=REMIND_LATER, remind_at=clock.now() + timedelta(hours=1))
    result = daily_run()
    assert state_of(due).state == DORMANT
    assert state_of(not_yet).state == REMIND_LATER
    assert goodbyes() == []
    assert result["by_check"] == {"reminder_due": {"succeeded": 1, "failed": 0, "skipped": 0}}


def test_a_goodbye_in_french_to_a_group(make_user, daily_run):
    user_id = make_user(
        inactive_for=timedelta(days=20),
        locale="fr",
        destination="group",
        group_jid="120363025@g.us",
    )
    daily_run()
    [goodbye] = goodbyes()
    assert goodbye.recipient == "120363025@g.us"
    assert goodbye.body.startswith("Bonjour Ana, cela fait 20 jours")
    assert state_of(user_id).state == GOODBYE_SENT


def test_without_a_whatsapp_id_the_goodbye_goes_to_the_phone(make_user, daily_run):
    make_user(inactive_for=timedelta(days=20), whatsapp_jid=None, phone="+5511987654321")
    daily_run()
    assert goodbyes()[0].recipient == "+5511987654321"


def test_the_three_checks_in_one_run_with_counts(make_user, daily_run, clock):
    # Given users due for each check, one opted out, and one not due at all
    make_user(inactive_for=timedelta(days=14))
    make_user(inactive_for=timedelta(days=40), locale="pt-BR")
    make_user(inactive_for=timedelta(days=20), opted_out=True)
    make_user(inactive_for=timedelta(days=2))
    make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now() - timedelta(hours=1))
    make_user(state=REMIND_LATER, remind_at=clock.now())
    # When the daily job runs
    result = daily_run()
    # Then the JobResult adds up what every worker recorded
    assert result["finished"] and result["pending"] == 0
    assert (result["processed"], result["succeeded"], result["failed"], result["skipped"]) == (
        5,
        4,
        0,
        1,
    )
    assert result["errors"] == [] and result["enqueued"] == 4
    assert result["by_check"]["inactivity_14d"] == {"succeeded": 2, "failed": 0, "skipped": 1}
    assert len(goodbyes()) == 2


def test_a_user_who_came_back_after_the_sweep_is_skipped(make_user, clock, log_channel):
    # Given a run whose sweep found an inactive user
    from producers.embedded import drain
    from worker.engagement.runs import job_result
    from worker.engagement.users import record_activity

    user_id = make_user(inactive_for=timedelta(days=20))
    started = run_daily(clock.now())
    # When the user comes back before a worker takes the message
    record_activity(user_id)
    drain()
    # Then the worker reads the user again and leaves them alone
    assert state_of(user_id).state == ACTIVE
    assert goodbyes() == []
    result = job_result(started["run_id"])
    assert (result["skipped"], result["succeeded"], result["finished"]) == (1, 0, True)
    [outcome] = EngagementOutcome.select()
    assert outcome.detail == "no longer due (state active)"


def test_the_run_logs_its_start_and_its_end_with_the_counts(make_user, daily_run, log_stream):
    make_user(inactive_for=timedelta(days=14))
    make_user(inactive_for=timedelta(days=14), opted_out=True)
    result = daily_run()
    [started] = log_lines(log_stream, "engagement.run.started")
    [finished] = log_lines(log_stream, "engagement.run.finished")
    assert started["run_id"] == finished["run_id"] == result["run_id"]
    assert {k: finished[k] for k in ("processed", "succeeded", "failed", "skipped")} == {
        "processed": 2,
        "succeeded": 1,
        "failed": 0,
        "skipped": 1,
    }
    assert "duration_ms" in finished


def test_a_run_with_nobody_due_is_finished_at_once(db, clock):
    from worker.engagement.runs import job_result

    started = run_daily(clock.now())
    result = job_result(started["run_id"])
    assert result["finished"] and result["processed"] == 0 and result["enqueued"] == 0
