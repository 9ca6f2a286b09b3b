"""The operator commands: hunt create / run / status, ads import (embedded mode: no Redis)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from producers.cli import main
from storage.models import Ad, Hunt, OutboxMessage
from tests.hunts.conftest import definition
from tests.hunts.test_importing import ad_json


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_create_run_and_status(db, clock, owner, tmp_path):
    # Given ads imported from a file and a hunt created from its JSON definition
    ads = tmp_path / "ads.jsonl"
    ads.write_text("\n".join(json.dumps(ad_json(n)) for n in range(4)) + "\n")
    imported = invoke("ads", "import", str(ads))
    assert imported.exit_code == 0, imported.output
    assert "4 ads imported, 0 invalid lines skipped" in imported.stdout
    spec = tmp_path / "hunt.json"
    spec.write_text(
        json.dumps(definition(owner, channels=["log"], credits={"log": 10}, daily_pacing_limit=3))
    )
    created = invoke("hunt", "create", str(spec), "--json")
    assert created.exit_code == 0, created.output
    hunt_id = json.loads(created.stdout)["id"]
    # When an operator runs it (embedded: the command does the work itself)
    ran = invoke("hunt", "run", str(hunt_id))
    assert ran.exit_code == 0, ran.output
    # Then 3 messages went out, and the status says so
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == 3
    status = invoke("hunt", "status", str(hunt_id), "--json")
    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert data["today"] == {
        "day": "2026-03-02",
        "contacted": 3,
        "limit": 3,
        "remaining": 0,
        "by_channel": {"log": 3},
    }
    assert data["credits"]["log"] == {"allocated": 10, "reserved": 0, "consumed": 3, "available": 7}
    assert data["leads"] == {"nouveau": 0, "contacte": 3, "repondu": 0}
    assert data["last_scan_at"] == "2026-03-02T09:00:00+00:00"
    # And the human-readable status names the same figures
    text = invoke("hunt", "status", str(hunt_id))
    assert "today (2026-03-02): 3 contacted, limit 3" in text.stdout


def test_import_reports_invalid_lines_on_stderr(db, clock, tmp_path):
    ads = tmp_path / "ads.jsonl"
    ads.write_text(json.dumps(ad_json(1)) + "\n{broken\n")
    result = invoke("ads", "import", str(ads))
    # The good line is in; the exit status says one was left out
    assert result.exit_code == 1
    assert Ad.select().count() == 1
    assert "line 2: not valid JSON" in result.stderr
    assert "1 ads imported, 1 invalid lines skipped" in result.stdout
    # Strict: nothing imported, one line of error, exit status 2
    Ad.delete().execute()
    strict = invoke("ads", "import", str(ads), "--strict")
    assert strict.exit_code == 2
    assert strict.stderr.startswith("error: 1 invalid line(s), nothing imported")
    assert Ad.select().count() == 0
    # And --json reports the same, with the same exit status
    as_json = invoke("ads", "import", str(ads), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["invalid"] == 1


def test_bad_input_is_one_line_and_exit_2(db, clock, owner, tmp_path):
    spec = tmp_path / "hunt.json"
    spec.write_text(json.dumps(definition(owner, message_template="Hi {nickname}")))
    result = invoke("hunt", "create", str(spec))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: message template: unknown placeholder {nickname} (known: title, price, city,"
        " postal_code, category, sub_type, brand, owner_name, url, source, published_at)"
    ]
    assert Hunt.select().count() == 0
    spec.write_text("{ not json")
    assert invoke("hunt", "create", str(spec)).exit_code == 2
    assert invoke("hunt", "status", "999").stderr == "error: hunt 999 does not exist\n"
    assert invoke("hunt", "run", "999").exit_code == 2
