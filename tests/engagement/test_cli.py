"""`outreach engagement ...`: the cron entry point, the report and recording activity."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from producers.cli import main
from storage.models.engagement import ACTIVE, GOODBYE_SENT
from tests.engagement.conftest import state_of


def outreach(*args: str):
    return CliRunner().invoke(main, ["engagement", *args])


def split_output(stdout: str) -> tuple[int, dict]:
    """`run-daily --wait` prints the run id on its first line, then the JobResult."""
    first, _, rest = stdout.partition("\n")
    return int(first), json.loads(rest)


def test_run_daily_wait_does_the_work_in_process_and_exits_0(make_user):
    # Given an inactive user, and no Redis (embedded mode)
    user_id = make_user(inactive_for=timedelta(days=14))
    # When the cron entry point runs with --wait
    result = outreach("run-daily", "--wait", "--timeout", "30")
    # Then it exits 0 and prints the run id and the JobResult
    assert result.exit_code == 0, result.output
    run_id, job = split_output(result.stdout)
    assert job["run_id"] == run_id
    assert (job["processed"], job["succeeded"], job["failed"], job["finished"]) == (1, 1, 0, True)
    assert state_of(user_id).state == GOODBYE_SENT


def test_run_daily_without_wait_prints_only_the_run_id(make_user):
    make_user(inactive_for=timedelta(days=14))
    result = outreach("run-daily")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().isdigit()
    assert "1 users enqueued" in result.stderr


def test_run_daily_wait_exits_1_when_a_user_failed(make_user):
    make_user(inactive_for=timedelta(days=14))
    make_user(inactive_for=timedelta(days=14), whatsapp_jid=None, phone=None)
    result = outreach("run-daily", "--wait")
    assert result.exit_code == 1
    _, job = split_output(result.stdout)
    assert (job["succeeded"], job["failed"], len(job["errors"])) == (1, 1, 1)


def test_a_negative_timeout_is_refused(db):
    result = outreach("run-daily", "--wait", "--timeout", "-1")
    assert result.exit_code == 2
    assert "-1" in result.output


def test_report_prints_the_same_result_for_any_run(make_user):
    make_user(inactive_for=timedelta(days=14))
    run_id, job = split_output(outreach("run-daily", "--wait").stdout)
    # When the report of that run is asked for, as JSON and as a table
    as_json = outreach("report", str(run_id), "--json")
    as_table = outreach("report", str(run_id))
    # Then it is the same JobResult
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == job
    assert as_table.exit_code == 0
    assert f"engagement run {run_id}: finished" in as_table.stdout
    assert "inactivity_14d" in as_table.stdout


def test_report_of_an_unknown_run_is_one_line_and_exit_2(db):
    result = outreach("report", "424242")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: engagement run 424242 does not exist"


def test_activity_brings_a_user_back(make_user, clock):
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    result = outreach("activity", str(user_id))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith(f"user {user_id}: goodbye_sent -> active")
    assert state_of(user_id).state == ACTIVE


def test_activity_of_an_unknown_user_is_one_line_and_exit_2(db):
    result = outreach("activity", "999")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: user 999 does not exist"
