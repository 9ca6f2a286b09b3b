"""`outreach demo`: four simulated days of the whole system on the embedded default.

Given the sample data (three hunts with daily limits, a campaign of 17 contacts at 5 a day,
members in every engagement state) and the real schedules fired by the real scheduler on a
simulated clock, the demo must tell, and its database must show, that every rule held.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.cli.conftest import assert_refused, outreach
from tests.demo.conftest import UNREACHABLE, DemoRun
from worker.senders import SPACING_GUARD, Pacing

# --- what the demo reports (the JSON of the real process) --------------------------------------


def test_the_campaign_goes_out_in_batches_of_five_then_completes(subprocess_run: DemoRun):
    assert subprocess_run.exit_code == 0, subprocess_run.stderr
    report = subprocess_run.report
    assert report is not None
    campaign = report["summary"]["campaign"]
    assert campaign["batch_sizes"] == [5, 5, 5, 2]
    assert campaign["status"] == "completed"
    assert campaign["sent"] == campaign["contacts"] == 17
    # One batch a day, 24 h apart, and the completion on the day of the last one.
    batches_by_day = [[b["size"] for b in day["campaign"]["batches"]] for day in report["days"]]
    assert batches_by_day == [[5], [5], [5], [2]]
    assert [day["campaign"]["completed_at"] is not None for day in report["days"]] == [
        False,
        False,
        False,
        True,
    ]


def test_hunts_reach_their_daily_limits_and_never_pass_them(subprocess_run: DemoRun):
    report = subprocess_run.report
    assert report is not None
    hunts = report["summary"]["hunts"]
    assert len(hunts) == 3
    for hunt in hunts:
        assert hunt["within_limit"]
        assert max(hunt["contacted_by_day"]) <= hunt["limit"]
        # Enough matching ads on the first day: every hunt stops at its limit.
        assert hunt["contacted_by_day"][0] == hunt["limit"]
    for day in report["days"]:
        for hunt in day["hunts"]:
            # What the report counts is what the pacing counter says.
            assert hunt["contacted"] == hunt["pacing_count"]
    # The third hunt has 12 WhatsApp credits: it stops when they run out, not at its limit.
    by_credits = hunts[2]
    assert by_credits["contacted"] == 12
    assert by_credits["credits_left"] == {"whatsapp": 0}
    assert report["days"][3]["hunts"][2]["stopped_by"] == "out of credits"


def test_engagement_moves_every_member_as_the_rules_say(subprocess_run: DemoRun):
    report = subprocess_run.report
    assert report is not None
    days = [day["engagement"] for day in report["days"]]

    def per_day(key: str) -> list[int]:
        return [day["transitions"].get(key, 0) for day in days]

    # 3 members inactive for 20 days get their goodbye on day 1, 2 inactive for 13 on day 2.
    assert [day["goodbyes_sent"] for day in days] == [3, 2, 0, 0]
    assert per_day("active -> goodbye_sent (inactivity_14d)") == [3, 2, 0, 0]
    # Dormant when the 48 h ran out: 2 at the start, 1 on day 2, then the demo's own goodbyes
    # but for the member who answered "remind me later" on day 2.
    assert per_day("goodbye_sent -> dormant (goodbye_timeout)") == [2, 1, 2, 2]
    assert per_day("remind_later -> dormant (reminder_due)") == [1, 0, 0, 1]
    # The 2 opted-out members are skipped every day and never move.
    assert [day["skipped_opted_out"] for day in days] == [2, 2, 2, 2]
    assert report["summary"]["engagement"]["states"] == {
        "active": 6,
        "dormant": 10,
        "remind_later": 1,
    }


def test_every_message_is_sent_once_and_every_fire_succeeds(subprocess_run: DemoRun):
    report = subprocess_run.report
    assert report is not None
    summary = report["summary"]
    assert summary["problems"] == []
    assert summary["failed_fires"] == 0
    assert summary["outbox"]["duplicate_keys"] == 0
    assert summary["ads_contacted_twice"] == 0
    assert summary["outbox"]["by_status"] == {"sent": summary["outbox"]["total"]}
    assert summary["log_channel_sends"] == summary["outbox"]["total"]
    # The real schedules fired at their real pace: four daily runs, a tick every 5 minutes.
    assert summary["fires"] == {
        "campaigns": 4 * 288,
        "engagement": 4,
        "hunts": 4,
        "outbox-relay": 4 * 1440,
    }


def test_the_report_says_where_the_files_are_and_what_it_ignored(subprocess_run: DemoRun):
    report = subprocess_run.report
    assert report is not None
    assert Path(report["database"]) == subprocess_run.database
    assert subprocess_run.database.is_file()
    assert Path(report["log_file"]) == subprocess_run.log_file
    assert subprocess_run.log_file.is_file()
    assert report["ignored_environment"] == ["REDIS_URL", "DATABASE_URL"]
    # Nothing was written where the command was started.
    assert subprocess_run.after["workdir"] == []
    # The worker's JSON lines went to the log file, not to the output.
    assert '"event"' not in subprocess_run.stderr


# --- what the demo prints (in this process) ------------------------------------------------------


def test_the_demo_prints_each_day_and_a_summary(in_process_run: DemoRun):
    assert in_process_run.exit_code == 0, in_process_run.stdout + in_process_run.stderr
    out = in_process_run.stdout
    for day in ("Day 1, Monday 02 March 2026", "Day 2,", "Day 3,", "Day 4, Thursday"):
        assert day in out
    assert "batch 1 at 09:00: 5 queued, 5 sent" in out
    assert "batch 4 at 09:00: 2 queued, 2 sent" in out
    assert "completed at 09:00" in out
    assert "batches 5, 5, 5, 2, 17 of 17 sent, completed" in out
    assert "REDIS_URL and DATABASE_URL from your environment are ignored" in out
    assert f"sqlite3 {in_process_run.database} " in out
    # No JSON log line reached the output.
    assert '"event"' not in out
    assert in_process_run.stderr == ""


def test_the_default_database_is_a_new_file_in_a_fresh_temporary_directory(
    in_process_run: DemoRun,
):
    assert in_process_run.database.is_file()
    assert in_process_run.database.parent.name.startswith("outreach-demo-")
    assert in_process_run.log_file.parent == in_process_run.database.parent


def test_the_calling_process_is_left_as_it_was(in_process_run: DemoRun):
    # The environment it hid, and the broker it replaced, are back.
    assert in_process_run.after["environment"] == UNREACHABLE
    assert in_process_run.after["broker_is_the_same"]


# --- what both runs left in their database --------------------------------------------------------


def test_no_hunt_contacted_more_than_its_limit_on_any_day(demo_run: DemoRun):
    over = demo_run.query(
        "SELECT c.hunt_id, c.day, count(*), h.daily_pacing_limit FROM contacted_ad c"
        " JOIN hunt h ON h.id = c.hunt_id GROUP BY c.hunt_id, c.day"
        " HAVING count(*) > h.daily_pacing_limit"
    )
    assert over == []
    assert demo_run.query("SELECT count(*) FROM contacted_ad") == [(39,)]


def test_no_ad_was_contacted_twice_by_an_account(demo_run: DemoRun):
    twice = demo_run.query(
        "SELECT h.account_id, c.ad_id FROM contacted_ad c JOIN hunt h ON h.id = c.hunt_id"
        " GROUP BY h.account_id, c.ad_id HAVING count(*) > 1"
    )
    assert twice == []


def test_each_outbox_key_once_and_each_message_sent_once(demo_run: DemoRun):
    assert (
        demo_run.query(
            "SELECT idempotency_key FROM outbox_message GROUP BY idempotency_key"
            " HAVING count(*) > 1"
        )
        == []
    )
    keys = [key for (key,) in demo_run.query("SELECT idempotency_key FROM outbox_message")]
    assert demo_run.query("SELECT DISTINCT status FROM outbox_message") == [("sent",)]
    # Every send of the log channel is one JSON line: each key exactly once.
    sends = demo_run.sends()
    assert sorted(sends) == sorted(keys)
    # campaign, goodbyes, hunts, a stop's confirmation, the paced batch
    assert len(keys) == 17 + 5 + 39 + 1 + 5


def test_the_campaign_batches_are_in_the_file(demo_run: DemoRun):
    batches = demo_run.query(
        "SELECT number, selected, started_at FROM campaign_batch ORDER BY number"
    )
    assert [(number, size) for number, size, _ in batches] == [(1, 5), (2, 5), (3, 5), (4, 2)]
    # Stored like every other timestamp (naive UTC), so that SQL comparisons hold.
    assert [started for _, _, started in batches] == [
        "2026-03-02 09:00:00",
        "2026-03-03 09:00:00",
        "2026-03-04 09:00:00",
        "2026-03-05 09:00:00",
    ]
    assert demo_run.query("SELECT status FROM campaign") == [("completed",)]


def test_opted_out_members_got_no_goodbye_and_kept_their_state(demo_run: DemoRun):
    opted_out = demo_run.query(
        "SELECT s.user_id, s.state FROM engagement_state s JOIN user_profile p"
        " ON p.user_id = s.user_id WHERE p.reengagement_opt_out"
    )
    assert len(opted_out) == 2
    assert {state for _, state in opted_out} == {"active"}
    ids = [user_id for user_id, _ in opted_out]
    marks = ", ".join("?" for _ in ids)
    assert (
        demo_run.query(f"SELECT * FROM engagement_transition WHERE user_id IN ({marks})", *ids)
        == []
    )
    goodbyes = demo_run.query(
        "SELECT idempotency_key FROM outbox_message WHERE source = 'engagement'"
    )
    assert not any(key.startswith(tuple(f"{i}:" for i in ids)) for (key,) in goodbyes)


# --- bad input -----------------------------------------------------------------------------------


def test_an_existing_database_file_is_refused_and_left_alone(tmp_path: Path):
    existing = tmp_path / "mine.sqlite3"
    existing.write_bytes(b"precious")
    result = outreach("demo", "--database", str(existing))
    assert_refused(result, "already exists", str(existing))
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.sqlite3"]


def test_a_database_in_a_missing_directory_is_refused(tmp_path: Path):
    missing = tmp_path / "nowhere" / "demo.sqlite3"
    result = outreach("demo", "--database", str(missing))
    assert_refused(result, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_day_two_replies_are_heard_a_goodbye_answer_and_an_owners_stop(subprocess_run: DemoRun):
    report = subprocess_run.report
    assert report is not None
    # Given day 1's goodbyes and hunt messages, on day 2 a member answers "2", an owner "STOP"
    replies = [day["replies"] for day in report["days"]]
    assert [len(r) for r in replies] == [0, 2, 0, 0]
    member, owner = replies[1]
    # Then the member is reminded later instead of going dormant
    assert member["outcome"] == "goodbye answer remind-later"
    assert (
        report["days"][1]["engagement"]["transitions"].get(
            "goodbye_sent -> remind_later (remind_later)"
        )
        == 1
    )
    # And the owner's address is suppressed, with one confirmation sent and nothing else after
    assert owner["outcome"] == "stop"
    consent = report["summary"]["consent"]
    # (the owner, and the phones of the two members who had opted out, heard by the sweep)
    assert consent["suppressed_addresses"] == 3
    assert consent["stop_confirmations"] == 1
    assert report["summary"]["outbox"]["by_source"]["consent"] == 1


def test_the_paced_batch_goes_at_the_opening_then_30_to_60_s_apart(subprocess_run: DemoRun):
    # Given the paced WhatsApp batch queued a minute before its account's hours open
    report = subprocess_run.report
    assert report is not None
    paced = report["paced_batch"]
    zone = ZoneInfo(paced["timezone"])
    sent = [datetime.fromisoformat(at).astimezone(zone) for at in paced["sent_at"]]
    # Then the first went at the opening, each next one 30 to 60 s after, none twice
    assert datetime.fromisoformat(paced["queued_at"]).astimezone(zone).strftime("%H:%M") == "08:59"
    assert sent[0].strftime("%H:%M:%S") == "09:00:00"
    gaps = [(b - a).total_seconds() for a, b in pairwise(sent)]
    # (a slot also adds the guard and the slack: worker.senders)
    extra = (SPACING_GUARD + Pacing(30, 60, None).slack).total_seconds()
    assert len(gaps) == 4 and all(30 <= gap <= 60 + extra for gap in gaps), gaps
    keys = subprocess_run.sends()
    assert sorted(k for k in keys if k.startswith("paced-demo:")) == [
        f"paced-demo:{n}" for n in range(5)
    ]


def test_the_demo_prints_each_paced_send_time(in_process_run: DemoRun):
    out = in_process_run.stdout
    assert "Paced WhatsApp batch, Friday 06 March 2026" in out
    [line] = [line for line in out.splitlines() if line.strip().startswith("sent at")]
    assert line.split()[2].rstrip(",") == "09:00:00"
    assert line.count("(+") == 4
