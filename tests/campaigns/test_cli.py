"""The operator commands, in embedded mode (no Redis: the command does the work itself)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from producers.cli import main
from storage.models import Campaign, Contact, OutboxMessage
from tests.conftest import T0


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_import_create_run_and_status(db, clock, owner, tmp_path):
    # Given contacts imported from a CSV file with one bad row
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "phone,first_name\n" + "".join(f"061111111{n},Name{n}\n" for n in range(7)) + "12,Bad\n"
    )
    imported = invoke("contacts", "import", "spring", str(csv_file))
    assert imported.exit_code == 1  # some rows were skipped
    assert "7 imported, 1 rejected" in imported.stdout
    assert "line 9: phone '12' is not a phone number" in imported.stderr
    # And a campaign created from options
    created = invoke(
        "campaign", "create", "--owner", str(owner.id), "--name", "Spring",
        "--list", "spring", "--channel", "log", "--template", "Hi {Name}!",
        "--limit", "5", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id = json.loads(created.stdout)["id"]
    assert json.loads(created.stdout)["status"] == "draft"
    # When its owner runs it by hand
    ran = invoke("campaign", "run", str(campaign_id), "--as-user", str(owner.id))
    assert ran.exit_code == 0, ran.output
    # Then the first batch went out, and the status says so
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == 5
    assert "running; sent 5, failed 0, remaining 2" in ran.stdout
    status = json.loads(invoke("campaign", "status", str(campaign_id), "--json").stdout)
    assert status["status"] == "running"
    assert (status["sent"], status["failed"], status["remaining"]) == (5, 0, 2)
    assert status["next_batch_at"] == "2026-03-03T09:00:00+00:00"
    assert status["batches"] == [
        {
            "number": 1,
            "scheduled_at": "2026-03-02T09:00:00+00:00",
            "started_at": "2026-03-02T09:00:00+00:00",
            "finished_at": "2026-03-02T09:00:00+00:00",
            "selected": 5,
            "sent": 5,
            "failed": 0,
            "remaining": 2,
        }
    ]
    # And the tick on the next day sends the rest and completes it
    clock.set(T0.replace(day=3))
    ticked = invoke("campaign", "tick", "--json")
    assert ticked.exit_code == 0, ticked.output
    assert json.loads(ticked.stdout)["enqueued"] == 1
    text = invoke("campaign", "status", str(campaign_id)).stdout
    assert "completed; sent 7, failed 0, remaining 0" in text


def test_create_from_a_json_file(db, clock, owner, make_list, tmp_path):
    make_list(2, name="vip")
    spec = tmp_path / "campaign.json"
    spec.write_text(
        json.dumps(
            {
                "owner_id": owner.id,
                "name": "VIP",
                "contact_list": "vip",
                "channel": "whatsapp",
                "template": "Bonjour {name}",
                "media_url": "https://cdn.example.com/a.png",
                "media_type": "image/png",
                "daily_send_limit": 50,
                "default_name_value": "cher client",
                "start_at": "2026-03-03T09:00:00Z",
            }
        )
    )
    created = invoke("campaign", "create", "--file", str(spec))
    assert created.exit_code == 0, created.output
    campaign = Campaign.get()
    assert created.stdout.strip() == f"campaign {campaign.id} created: VIP (scheduled)"
    assert (campaign.channel, campaign.daily_send_limit) == ("whatsapp", 50)
    assert campaign.media.location == "https://cdn.example.com/a.png"


def test_refusals_are_one_line_and_exit_2(db, clock, owner, stranger, make_list, tmp_path):
    make_list(1)
    bad_template = invoke(
        "campaign", "create", "--owner", str(owner.id), "--name", "x", "--list", "customers",
        "--channel", "log", "--template", "Hi {Surname}",
    )  # fmt: skip
    assert bad_template.exit_code == 2
    assert bad_template.stderr == (
        "error: template has an unknown placeholder {Surname} (only {Name} is supported)\n"
    )
    assert Campaign.select().count() == 0
    invoke(
        "campaign", "create", "--owner", str(owner.id), "--name", "x", "--list", "customers",
        "--channel", "log", "--template", "Hi",
    )  # fmt: skip
    campaign_id = str(Campaign.get().id)
    not_owner = invoke("campaign", "run", campaign_id, "--as-user", str(stranger.id))
    assert not_owner.exit_code == 2
    assert not_owner.stderr == f"error: user {stranger.id} does not own campaign {campaign_id}\n"
    assert invoke("campaign", "resume", campaign_id).stderr == (
        f"error: cannot resume campaign {campaign_id}: it is draft\n"
    )
    assert invoke("campaign", "status", "999").stderr == "error: campaign 999 does not exist\n"
    ahead = invoke("campaign", "tick", "--at", "2026-03-03T09:00:00Z")
    assert ahead.stderr == "error: --at is in the future: batches never run ahead of time\n"
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    assert invoke("campaign", "create", "--file", str(broken)).exit_code == 2
    assert Campaign.get().status == "draft"


def test_pause_resume_cancel(db, clock, owner, make_list, make_campaign):
    # A campaign scheduled for tomorrow: resuming it leaves it waiting for its first batch
    campaign = make_campaign(make_list(3), start_at=T0.replace(day=3).isoformat())
    cid = str(campaign.id)
    assert invoke("campaign", "pause", cid).stdout.strip() == f"campaign {cid}: paused"
    resumed = invoke("campaign", "resume", cid, "--as-user", str(owner.id))
    assert resumed.exit_code == 0, resumed.output
    assert f"campaign {cid} (Spring offer): scheduled" in resumed.stdout
    assert invoke("campaign", "cancel", cid).stdout.strip() == f"campaign {cid}: cancelled"
    assert Contact.select().count() == 3
    assert OutboxMessage.select().count() == 0
