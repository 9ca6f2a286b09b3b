"""`outreach suppress add|remove|list`: an operator's block, and its refusals."""

from __future__ import annotations

import json

import pytest

from storage.models import Account, Suppression
from tests.cli.conftest import assert_refused, outreach


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Garage", created_at=clock.now())


def test_an_operator_suppresses_lists_and_lifts_an_address(account):
    # When an operator suppresses a number written with spaces
    added = outreach(
        "suppress", "add", "--account", str(account.id), "--channel", "whatsapp",
        "--address", "+33 6 12 34 56 78", "--by", "alice", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {
        "account": account.id,
        "address": "33612345678",
        "added": True,
    }
    # Then it is listed in its normal form, with who asked
    listed = json.loads(outreach("suppress", "list", "--account", str(account.id), "--json").stdout)
    assert [(r["address"], r["reason"], r["source"]) for r in listed] == [
        ("33612345678", "operator", "command by alice")
    ]
    # And a message sent by hand to the same number is suppressed
    sent = outreach("outbox", "send", "--key", "k", "--channel", "log", "--to", "0033612345678",
                    "--body", "hi", "--json")  # fmt: skip
    assert json.loads(sent.stdout)["status"] == "suppressed"
    # When it is lifted, it is gone
    removed = outreach("suppress", "remove", "--account", str(account.id), "--address",
                       "33612345678@c.us")  # fmt: skip
    assert removed.exit_code == 0, removed.output
    assert Suppression.select().count() == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "--account", "999", "--channel", "email", "--address", "a@b.c"], "account 999"),
        (["add", "--account", "1", "--channel", "fax", "--address", "a@b.c"], "unknown channel"),
        (["add", "--account", "1", "--channel", "email", "--address", "a@b.c", "--reason", "x"],
         "unknown reason"),
        (["remove", "--account", "1", "--address", "a@b.c"], "is not suppressed"),
        (["list", "--account", "0"], "not an id"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_changes_nothing(account, args, fragment):
    assert account.id == 1
    assert_refused(outreach("suppress", *args), fragment)
    assert Suppression.select().count() == 0
