"""Hostile text that is valid input: SQL-looking and format-looking names, list names, templates
and hunt criteria are stored and sent verbatim, and harm nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from producers.cli import main
from storage.db import database
from storage.models import Account, Campaign, Contact, ContactList, Hunt, OutboxMessage, User
from tests.faults.bad_input.cases import SQL_LOOKING

pytestmark = [pytest.mark.postgres]


# --- hostile text that is valid input: stored and sent verbatim, harmlessly ----------------------


def test_sql_looking_and_format_looking_text_is_stored_and_sent_verbatim(db, clock, tmp_path):
    # Given contacts whose names look like SQL and like format strings, in a list named like SQL
    list_name = "Robert'); DROP TABLE contact_list;--"
    names = [SQL_LOOKING, "{0.__class__}", "{Name}", "%s%s%s", "\\1 $1"]
    csv = "phone,first_name\n" + "".join(
        f'+3361000000{n},"{name}"\n' for n, name in enumerate(names)
    )
    (tmp_path / "contacts.csv").write_text(csv)
    runner = CliRunner()
    owner = User.create(
        account=Account.create(name="Bakery", created_at=clock.now()),
        name="Alice",
        created_at=clock.now(),
    )
    tables = set(database.get_tables())
    imported = runner.invoke(
        main, ["contacts", "import", list_name, str(tmp_path / "contacts.csv")]
    )
    assert imported.exit_code == 0, imported.output
    # And a campaign and a hunt whose own text looks like SQL
    template = "Hi {Name}; '; DELETE FROM outbox_message; --"
    created = runner.invoke(
        main,
        [
            "campaign", "create", "--owner", str(owner.id), "--name", "x'; DROP TABLE campaign;--",
            "--list", list_name, "--channel", "log", "--template", template,
            "--limit", "10", "--json",
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id = json.loads(created.stdout)["id"]
    hunt_file = tmp_path / "hunt.json"
    hunt_file.write_text(
        json.dumps(
            {
                "owner_id": owner.id,
                "name": "'; DROP TABLE hunt; --",
                "channels": ["log"],
                "credits": {"log": 1},
                "message_template": "{{0.__class__}} {title}",
                "criteria": {"keywords": ["' OR 1=1 --"]},
            }
        )
    )
    assert runner.invoke(main, ["hunt", "create", str(hunt_file)]).exit_code == 0
    # When the campaign runs (embedded mode: this process sends through the log channel)
    ran = runner.invoke(main, ["campaign", "run", str(campaign_id), "--as-user", str(owner.id)])
    assert ran.exit_code == 0, ran.output
    # Then every table is still there, and the text went in and out exactly as written
    assert set(database.get_tables()) == tables
    assert ContactList.get().name == list_name
    assert sorted(c.first_name for c in Contact.select()) == sorted(names)
    assert Campaign.get_by_id(campaign_id).name == "x'; DROP TABLE campaign;--"
    bodies = sorted(row.body for row in OutboxMessage.select())
    tail = "; '; DELETE FROM outbox_message; --"
    assert bodies == sorted(f"Hi {name}{tail}" for name in names)
    assert {row.status for row in OutboxMessage.select()} == {"sent"}
    hunt = Hunt.get()
    assert (hunt.name, hunt.criteria) == ("'; DROP TABLE hunt; --", {"keywords": ["' OR 1=1 --"]})
