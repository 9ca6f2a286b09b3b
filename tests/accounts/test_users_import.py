"""`outreach users import`: an account's members in bulk, matched on their external id, on both
databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from producers.cli import main
from storage.models import Account, EngagementState, User, UserProfile
from tests.cli.conftest import assert_refused
from worker import users_import

HEADER = (
    "external_id,name,email,phone,whatsapp_id,group_id,preferred_destination,locale,opt_out,"
    "last_activity"
)


def outreach(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Acme", timezone="Europe/Paris", created_at=clock.now())


def write_csv(tmp_path: Path, *lines: str, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def members() -> dict[str, tuple]:
    """external id -> (name, email, phone, whatsapp, group, destination, locale, opt-out, last)."""
    rows = {}
    for user in User.select().order_by(User.id):
        profile = UserProfile.get(UserProfile.user == user.id)
        state = EngagementState.get_or_none(EngagementState.user == user.id)
        rows[user.external_id] = (
            user.name,
            user.email,
            user.phone,
            profile.whatsapp_jid,
            profile.group_jid,
            profile.preferred_destination,
            profile.locale,
            profile.reengagement_opt_out,
            state.last_activity_at if state else None,
        )
    return rows


def test_members_are_imported_with_profile_and_last_activity_and_a_second_import_updates_them(
    account, tmp_path
):
    # Given a product's export of two members, addresses typed loosely
    path = write_csv(
        tmp_path,
        HEADER,
        "u-1,Alice,Alice@Example.COM,+33 6 12-34.56.78,33612345678@c.us,,individual,fr,no,"
        "2026-02-20T10:00:00+01:00",
        "u-2,Bob,,,,120363041234567890@g.us,group,pt-BR,yes,2026-01-31",
    )
    # When it is imported
    first = outreach("users", "import", "--account", str(account.id), str(path), "--json")
    # Then both are created, with their profile and engagement state, addresses normalised
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["created"] == 2
    assert members() == {
        "u-1": ("Alice", "alice@example.com", "+33612345678", "33612345678@c.us", None,
                "individual", "fr", False, datetime(2026, 2, 20, 9, 0, tzinfo=UTC)),
        "u-2": ("Bob", None, None, None, "120363041234567890@g.us",
                "group", "pt-BR", True, datetime(2026, 1, 31, tzinfo=UTC)),
    }  # fmt: skip
    assert {s.state for s in EngagementState.select()} == {"active"}
    # When the same file, with Bob renamed, is imported again
    path.write_text(path.read_text().replace("u-2,Bob,", "u-2,Robert,"), encoding="utf-8")
    again = outreach("users", "import", "--account", str(account.id), str(path), "--json")
    # Then nobody is added twice: the two are updated
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["created"], report["updated"]) == (0, 2)
    assert User.select().count() == 2
    assert members()["u-2"][0] == "Robert"


def test_bad_rows_are_listed_with_their_line_and_the_good_ones_imported(account, tmp_path):
    # Given a file with one good row and one bad row of each kind
    path = write_csv(
        tmp_path,
        HEADER,
        "u-1,Alice,alice@example.com,,,,,,,2026-02-20",
        "u-1,Alice again,,,,,,,,",
        "u-3,Carol,not-an-email,,,,,,,",
        "u-4,Dan,,12,,,,,,",
        "u-5,Eve,,,,,,,,yesterday",
        "u-6,Frank,,,,,group,,,",
        "u-7,Grace,,,,,,,maybe,",
        ",Nobody,,,,,,,,",
        "u-9,Too,few",
    )
    # When it is imported
    result = outreach("users", "import", "--account", str(account.id), str(path))
    # Then the good row is in, each bad one is named with its line and reason, and exit is 1
    assert result.exit_code == 1
    assert "1 imported (1 new, 0 updated), 8 rejected" in result.stdout
    assert result.stderr.splitlines() == [
        "line 3: same external_id as line 2",
        "line 4: email 'not-an-email' is not an email address",
        "line 5: phone '12' is not a phone number (6 to 15 digits, optional +)",
        "line 6: last_activity 'yesterday' is not an ISO 8601 date",
        "line 7: preferred_destination is group but the row has no group_id",
        "line 8: opt_out 'maybe' is not yes or no",
        "line 9: external_id must be 1 to 128 characters",
        "line 10: expected 10 fields, found 3",
    ]
    assert list(members()) == ["u-1"]


def test_columns_left_out_of_the_file_keep_what_the_members_had(account, tmp_path):
    # Given a member imported with a locale and a last activity
    full = write_csv(tmp_path, HEADER, "u-1,Alice,,,,,,fr,,2026-02-20T10:00:00Z", name="a.csv")
    assert outreach("users", "import", "--account", str(account.id), str(full)).exit_code == 0
    # When a file with only ids, names and an older activity is imported
    slim = write_csv(
        tmp_path, "External ID,Name,Last Activity", "u-1,Alice M,2026-01-01", name="b.csv"
    )
    assert outreach("users", "import", "--account", str(account.id), str(slim)).exit_code == 0
    # Then the name changes, the locale stays, and the last activity never moves backwards
    name, *_, locale, _opt_out, last = members()["u-1"]
    assert (name, locale, last) == ("Alice M", "fr", datetime(2026, 2, 20, 10, 0, tzinfo=UTC))


def test_the_same_external_id_in_two_accounts_is_two_users(account, tmp_path, clock):
    other = Account.create(name="Other", created_at=clock.now())
    path = write_csv(tmp_path, "external_id,name", "u-1,Alice")
    for account_id in (account.id, other.id):
        assert outreach("users", "import", "--account", str(account_id), str(path)).exit_code == 0
    assert sorted(u.account_id for u in User.select()) == sorted([account.id, other.id])


def test_a_file_unreadable_midway_keeps_the_chunks_before_and_says_where_it_stopped(
    account, tmp_path, monkeypatch
):
    # Given chunks of two rows and a file whose fifth data row is not UTF-8
    monkeypatch.setattr(users_import, "IMPORT_CHUNK", 2)
    path = tmp_path / "members.csv"
    good = [f"u-{n},Member {n}".encode() for n in range(1, 5)]
    lines = [b"external_id,name", *good, b"u-5,Mem\xe9ber", b"u-6,Six"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    # When it is imported
    result = outreach("users", "import", "--account", str(account.id), str(path))
    # Then the two full chunks before it are in, and it says where it stopped, exit 1
    assert result.exit_code == 1
    assert "error: line 6: the file is not UTF-8 text; nothing imported after it" in result.stderr
    assert sorted(members()) == ["u-1", "u-2", "u-3", "u-4"]


def test_a_chunk_cut_short_by_an_unreadable_line_is_not_half_written(
    account, tmp_path, monkeypatch
):
    monkeypatch.setattr(users_import, "IMPORT_CHUNK", 2)
    path = tmp_path / "members.csv"
    path.write_bytes(b"external_id,name\nu-1,One\nu-2,Two\nu-3,Three\nu-4,F\xe9our\n")
    result = outreach("users", "import", "--account", str(account.id), str(path))
    assert result.exit_code == 1
    assert "line 5: the file is not UTF-8 text; nothing imported from line 4 on" in result.stderr
    assert sorted(members()) == ["u-1", "u-2"]


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        (["name,email", "Alice,a@example.com"], "the header needs a column external_id"),
        (["external_id", "u-1"], "the header needs a column name"),
        (["u-1,Alice"], "unknown column 'u-1'"),
        (["external_id,name,shoe_size", "u-1,A,42"], "unknown column 'shoe_size'"),
        (["external_id,name,Name", "u-1,A,B"], "column 'Name' appears twice"),
        ([], "is empty (a header row is needed)"),
    ],
)
def test_a_bad_header_is_one_line_and_imports_nothing(account, tmp_path, lines, fragment):
    path = tmp_path / "members.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert_refused(outreach("users", "import", "--account", str(account.id), str(path)), fragment)
    assert User.select().count() == 0


def test_an_unknown_account_or_a_missing_file_is_refused(account, tmp_path):
    path = write_csv(tmp_path, "external_id,name", "u-1,Alice")
    assert_refused(outreach("users", "import", "--account", "99", str(path)), "account 99")
    missing = str(tmp_path / "nope.csv")
    assert_refused(outreach("users", "import", "--account", str(account.id), missing), "nope.csv")
    assert User.select().count() == 0


def test_a_member_the_file_does_not_change_is_not_written_and_a_later_activity_bumps_its_version(
    account, tmp_path, clock
):
    # Given a member imported once
    path = write_csv(tmp_path, HEADER, "u-1,Alice,,,,,,fr,,2026-02-20T10:00:00Z")
    assert outreach("users", "import", "--account", str(account.id), str(path)).exit_code == 0
    state = EngagementState.get()
    written = (state.updated_at, state.version)
    # When the same file is imported a day later
    clock.advance(timedelta(days=1))
    again = outreach("users", "import", "--account", str(account.id), str(path), "--json")
    # Then the member counts as updated but the state row is untouched
    assert json.loads(again.stdout)["updated"] == 1
    state = EngagementState.get()
    assert (state.updated_at, state.version) == written
    # When a file with a later activity comes
    path.write_text(path.read_text().replace("2026-02-20", "2026-03-01"), encoding="utf-8")
    assert outreach("users", "import", "--account", str(account.id), str(path)).exit_code == 0
    # Then the activity moves forward and the version is bumped (a decision taken on the
    # earlier activity no longer applies)
    state = EngagementState.get()
    assert state.last_activity_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert (state.updated_at, state.version) == (clock.now(), written[1] + 1)


def test_a_chunk_whose_write_fails_keeps_the_chunks_before_and_none_after(
    account, tmp_path, monkeypatch
):
    # Given chunks of two rows, and a database that refuses the second chunk's profiles
    monkeypatch.setattr(users_import, "IMPORT_CHUNK", 2)
    path = write_csv(tmp_path, "external_id,name", *(f"u-{n},Member {n}" for n in range(1, 8)))
    real = users_import._Writer._profiles
    calls = []

    def refuse_the_second(self, rows, ids, now):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        real(self, rows, ids, now)

    monkeypatch.setattr(users_import._Writer, "_profiles", refuse_the_second)
    # When it is imported, the error reaches the caller
    with pytest.raises(RuntimeError, match="went away"):
        users_import.import_users(account.id, path)
    # Then the first chunk is in, the failed one is rolled back whole, none after it is written
    assert sorted(members()) == ["u-1", "u-2"]
    assert calls == [2, 2]


def test_a_file_of_known_and_new_members_counts_each_once(account, tmp_path):
    # Given one member already imported
    first = write_csv(tmp_path, "external_id,name", "u-1,Alice", name="a.csv")
    assert outreach("users", "import", "--account", str(account.id), str(first)).exit_code == 0
    # When a file with that member and two new ones is imported
    both = write_csv(tmp_path, "external_id,name", "u-2,Bob", "u-1,Alice", "u-3,Carol")
    result = outreach("users", "import", "--account", str(account.id), str(both), "--json")
    # Then the report tells the known one from the new ones
    report = json.loads(result.stdout)
    assert (report["created"], report["updated"]) == (2, 1)
