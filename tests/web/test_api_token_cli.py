"""`outreach api-token create|list|revoke` on both databases."""

from __future__ import annotations

import json

import pytest

from producers.api_tokens import authenticate
from storage.models import ApiToken
from tests.cli.conftest import assert_refused, outreach


def test_a_token_is_printed_once_listed_without_its_secret_and_revoked(db, clock, account):
    # When a token is created
    made = outreach("api-token", "create", "--account", str(account.id), "--name", "cron")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    # Then it authenticates, and the listing never shows it
    row = authenticate(token)
    assert row is not None and row.name == "cron"
    listed = outreach("api-token", "list", "--json")
    assert token not in listed.stdout
    assert [(t["id"], t["name"], t["revoked_at"]) for t in json.loads(listed.stdout)] == [
        (row.token_id, "cron", None)
    ]
    # When it is revoked by the id the listing shows
    revoked = outreach("api-token", "revoke", row.token_id)
    assert revoked.exit_code == 0, revoked.output
    # Then it no longer authenticates
    assert authenticate(token) is None
    assert ApiToken.get_by_id(row.id).revoked_at == clock.now()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("create", "--account", "99", "--name", "cron"), "account 99 does not exist"),
        (("create", "--account", "{account}", "--name", "  "), "token name must be"),
        (("create", "--account", "{account}", "--name", "taken"), "already has a token"),
        (("revoke", "0123456789ab"), "no API token 0123456789ab"),
        (("list", "--account", "99"), "account 99 does not exist"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(db, clock, account, args, fragment):
    outreach("api-token", "create", "--account", str(account.id), "--name", "taken")
    before = [(t.token_id, t.hash, t.revoked_at) for t in ApiToken.select()]
    filled = [a.replace("{account}", str(account.id)) for a in args]
    assert_refused(outreach("api-token", *filled), fragment)
    assert [(t.token_id, t.hash, t.revoked_at) for t in ApiToken.select()] == before


def test_revoking_twice_is_refused(db, clock, account):
    outreach("api-token", "create", "--account", str(account.id), "--name", "cron")
    token_id = ApiToken.get().token_id
    assert outreach("api-token", "revoke", token_id).exit_code == 0
    assert_refused(outreach("api-token", "revoke", token_id), "already revoked")
