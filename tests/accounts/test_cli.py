"""Accounts and users from the command line, on both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from producers.cli import main
from storage.models import Account, User
from tests.cli.conftest import assert_refused
from worker.addresses import normalise_email, normalise_phone


def outreach(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_an_account_and_its_user_are_created_and_listed(db, clock):
    # Given an account created in Paris's time zone
    created = outreach(
        "account", "create", "--name", "Acme", "--timezone", "Europe/Paris", "--json"
    )
    assert created.exit_code == 0, created.output
    account = json.loads(created.stdout)
    assert account["timezone"] == "Europe/Paris"
    # When a user is created in it with an email and a phone typed loosely
    made = outreach(
        "user", "create", "--account", str(account["id"]), "--name", "Alice",
        "--email", " Alice@Example.COM ", "--phone", "+33 6 12-34.56.78", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    # Then both are listed, the addresses normalised as contacts' are
    listed = json.loads(outreach("user", "list", "--account", str(account["id"]), "--json").stdout)
    assert [(u["name"], u["email"], u["phone"]) for u in listed] == [
        ("Alice", "alice@example.com", "+33612345678")
    ]
    accounts = json.loads(outreach("account", "list", "--json").stdout)
    assert [a["name"] for a in accounts] == ["Acme"]


def test_an_account_without_a_zone_counts_its_days_in_utc(db, clock):
    assert outreach("account", "create", "--name", "Plain").exit_code == 0
    assert Account.get(Account.name == "Plain").timezone == "UTC"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("account", "create", "--name", "X", "--timezone", "Mars/Base"), "unknown time zone"),
        (("account", "create", "--name", "  "), "account name must be"),
        (("user", "create", "--account", "99", "--name", "B"), "account 99 does not exist"),
        (("user", "list", "--account", "99"), "account 99 does not exist"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(db, clock, args, fragment):
    assert_refused(outreach(*args), fragment)
    assert Account.select().count() == 0


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [("--phone", "12", "is not a phone number"), ("--email", "not-an-address", "not an email")],
)
def test_a_user_with_a_bad_address_is_refused(db, clock, option, value, fragment):
    account_id = json.loads(outreach("account", "create", "--name", "A", "--json").stdout)["id"]
    result = outreach("user", "create", "--account", str(account_id), "--name", "B", option, value)
    assert_refused(result, fragment)
    assert User.select().count() == 0


def test_one_normalisation_for_every_kind_of_address():
    assert normalise_phone(" (06) 12 34 56 78 ") == "0612345678"
    assert normalise_phone("") is None
    assert normalise_email(" Bob@Example.ORG") == "bob@example.org"
    assert normalise_email(None) is None
