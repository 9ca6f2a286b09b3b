"""Operators from the command line: added with a password, logged in with it, refused otherwise."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from producers.cli import main
from producers.operators import authenticate, session_stamp
from storage.models import User
from tests.cli.conftest import assert_refused
from worker.accounts import create_account

PASSWORD = "correct horse battery"


def outreach(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def add(account_id: int, email: str, password: str = PASSWORD) -> Result:
    return outreach(
        "operator", "add", "--account", str(account_id), "--email", email,
        "--password-stdin", "--json", stdin=password + "\n",
    )  # fmt: skip


def test_an_operator_is_added_and_logs_in_with_that_password_only(db, clock):
    # Given an account
    account = create_account("Acme")
    # When an operator is added with a password read from stdin
    added = add(account["id"], " Ops@Example.com ")
    assert added.exit_code == 0, added.output
    operator = json.loads(added.stdout)
    # Then the user exists with a hash, not the password
    user = User.get_by_id(operator["id"])
    assert user.email == "ops@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    # And that email and password authenticate, any other does not
    assert authenticate("OPS@example.com", PASSWORD).id == user.id
    assert authenticate("ops@example.com", PASSWORD + "x") is None
    assert authenticate("nobody@example.com", PASSWORD) is None


def test_an_existing_user_with_the_email_becomes_the_operator(db, clock):
    account = create_account("Acme")
    made = outreach(
        "user", "create", "--account", str(account["id"]), "--name", "Ann",
        "--email", "ann@example.com", "--json",
    )  # fmt: skip
    ann = json.loads(made.stdout)
    assert add(account["id"], "ann@example.com").exit_code == 0
    assert User.select().count() == 1
    assert authenticate("ann@example.com", PASSWORD).id == ann["id"]


def test_passwd_changes_the_password_and_the_session_stamp(db, clock):
    account = create_account("Acme")
    user_id = json.loads(add(account["id"], "ops@example.com").stdout)["id"]
    before = session_stamp(User.get_by_id(user_id))
    changed = outreach(
        "operator", "passwd", str(user_id), "--password-stdin", stdin="new pass 12345\n"
    )
    assert changed.exit_code == 0, changed.output
    assert authenticate("ops@example.com", PASSWORD) is None
    assert authenticate("ops@example.com", "new pass 12345").id == user_id
    assert session_stamp(User.get_by_id(user_id)) != before


def test_the_password_is_asked_twice_on_a_terminal(db, clock):
    account = create_account("Acme")
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    result = outreach(
        "operator", "add", "--account", str(account["id"]), "--email", "t@example.com", stdin=typed
    )
    assert result.exit_code == 0, result.output
    assert authenticate("t@example.com", PASSWORD) is not None


def test_bad_operator_input_is_refused_and_changes_nothing(db, clock):
    account = create_account("Acme")
    other = create_account("Other")
    assert add(account["id"], "ops@example.com").exit_code == 0
    stamp = User.get(User.email == "ops@example.com").password_hash
    assert_refused(add(account["id"], "short@example.com", "short"), "at least 12")
    assert_refused(add(account["id"], "not-an-email"), "not an email")
    assert_refused(add(999, "x@example.com"), "999")
    assert_refused(add(other["id"], "ops@example.com"), "another account")
    assert_refused(add(account["id"], "ops@example.com"), "already an operator")
    assert_refused(outreach("operator", "passwd", "999", "--password-stdin", stdin=PASSWORD), "999")
    assert_refused(outreach("operator", "passwd", "1", "--password-stdin", stdin="\n"), "stdin")
    # Nothing changed: one user, the same hash
    assert User.select().count() == 1
    assert User.get(User.email == "ops@example.com").password_hash == stamp
