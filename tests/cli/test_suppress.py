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


# --- outreach suppress import ------------------------------------------------------------


def write(tmp_path, text: str, name: str = "blocked.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def suppressed() -> dict[str, tuple[str, str]]:
    return {s.address: (s.channel, s.reason) for s in Suppression.select()}


def test_an_import_suppresses_the_good_rows_and_lists_the_bad_ones(account, tmp_path):
    # Given an address already suppressed, and a file of good and bad rows
    outreach("suppress", "add", "--account", str(account.id), "--channel", "email",
             "--address", "old@example.com", "--reason", "bounce")  # fmt: skip
    path = write(
        tmp_path,
        "Address,Reason,channel\n"
        "+33 6 12 34 56 78,,\n"
        "Lea@Example.com,unsubscribe,\n"
        "not a number,,\n"
        "33699999999@c.us,complaint,whatsapp\n"
        "\n"
        "old@example.com,opt_out,\n"
        "x@example.com,maybe,\n"
        "y@example.com,,fax\n",
    )
    # When it is imported
    result = outreach("suppress", "import", "--account", str(account.id), str(path), "--json")
    # Then the good rows are in, each bad one named by its line, and the exit status says so
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["imported"], report["already"]) == (3, 1)
    assert [(r["line"], r["reason"].split(" ")[0]) for r in report["rejected"]] == [
        (4, "phone"),
        (8, "unknown"),
        (9, "unknown"),
    ]
    assert "unknown channel" in report["rejected"][2]["reason"]
    assert suppressed() == {
        "33612345678": ("whatsapp", "operator"),
        "lea@example.com": ("email", "unsubscribe"),
        "33699999999": ("whatsapp", "complaint"),
        # A suppression keeps its first reason
        "old@example.com": ("email", "bounce"),
    }
    # And a campaign or hunt message to an imported address is suppressed at its claim
    sent = outreach("outbox", "send", "--key", "k", "--channel", "log", "--to", "0033612345678",
                    "--body", "hi", "--json")  # fmt: skip
    assert json.loads(sent.stdout)["status"] == "suppressed"


def test_an_import_of_good_rows_only_exits_zero_and_again_changes_nothing(account, tmp_path):
    path = write(tmp_path, "address\n" + "".join(f"+3361234{n:04d}\n" for n in range(1200)))
    first = outreach("suppress", "import", "--account", str(account.id), str(path),
                     "--reason", "bounce")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert "1200 suppressed, 0 already suppressed, 0 rejected" in first.stdout
    again = outreach("suppress", "import", "--account", str(account.id), str(path), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already"] == 1200
    assert Suppression.select().where(Suppression.reason == "bounce").count() == 1200


@pytest.mark.parametrize(
    ("text", "args", "fragment"),
    [
        ("reason,channel\nbounce,email\n", [], "needs an address column"),
        ("address,colour\na@b.co,red\n", [], "unknown column 'colour'"),
        ("", [], "is empty"),
        ("address\na@b.co\n", ["--reason", "whim"], "unknown reason"),
        ("address\na@b.co\n\xff\n", [], None),
    ],
)
def test_a_file_that_cannot_be_imported_is_one_line_and_changes_nothing(
    account, tmp_path, text, args, fragment
):
    path = write(tmp_path, text)
    if fragment is None:  # not UTF-8, after a good row: the good row is not kept either
        path.write_bytes(b"address\na@b.co\n\xff\n")
        fragment = "line 3: the file is not UTF-8"
    result = outreach("suppress", "import", "--account", str(account.id), str(path), *args)
    assert_refused(result, fragment)
    assert Suppression.select().count() == 0


def test_an_unknown_account_or_a_missing_file_is_refused(account, tmp_path):
    path = write(tmp_path, "address\na@b.co\n")
    assert_refused(outreach("suppress", "import", "--account", "999", str(path)), "account 999")
    missing = str(tmp_path / "nope.csv")
    assert_refused(outreach("suppress", "import", "--account", "1", missing), "no such file")
    assert Suppression.select().count() == 0
