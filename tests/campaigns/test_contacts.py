"""CSV import into contact lists, and recipients made from a list once, streamed and in order."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput
from storage.models import Campaign, CampaignRecipient, Contact, ContactList
from tests.conftest import T0
from worker.campaigns import recipients
from worker.campaigns.contacts import BadRow, import_contacts
from worker.campaigns.recipients import materialise


def write(tmp_path, text: str, name: str = "contacts.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_good_rows_are_imported_and_bad_rows_reported_with_their_line_numbers(db, clock, tmp_path):
    # Given a file with good rows and rows that are bad in different ways
    path = write(
        tmp_path,
        "Phone,Email,First Name\n"
        "+33 6 12 34 56 78,lea@example.com,Léa\n"  # 2: good (spaces dropped)
        "not-a-phone,,Bob\n"  # 3: bad phone
        ",,Carl\n"  # 4: neither phone nor email
        "\n"  # 5: blank, skipped
        "0612345679,DAN@Example.com,  Dan \n"  # 6: good (email lower-cased, name trimmed)
        "+33612345678,other@example.com,Eve\n"  # 7: same phone as line 2
        "0699999999,broken@,Fay\n"  # 8: bad email
        '0688888888,gus@example.com,"Gus\nthe second"\n'  # 9-10: good, quoted line break
        "0677777777,too,many,fields\n",  # 11: wrong number of fields
    )
    # When it is imported
    report = import_contacts("spring", path)
    # Then the good rows are in the list, normalised, and the bad ones listed by line
    assert report.imported == 3
    assert [(b.line, b.reason.split(" ")[0]) for b in report.bad_rows] == [
        (3, "phone"),
        (4, "no"),
        (7, "same"),
        (8, "email"),
        (11, "expected"),
    ]
    assert report.bad_rows[2] == BadRow(7, "same phone as line 2")
    stored = [(c.phone, c.email, c.first_name) for c in Contact.select().order_by(Contact.id)]
    assert stored == [
        ("+33612345678", "lea@example.com", "Léa"),
        ("0612345679", "dan@example.com", "Dan"),
        ("0688888888", "gus@example.com", "Gus\nthe second"),
    ]


def test_importing_the_same_file_again_adds_nobody_twice(db, clock, tmp_path):
    path = write(tmp_path, "phone,first_name\n0611111111,Ann\n0622222222,Ben\n")
    assert import_contacts("spring", path).imported == 2
    again = import_contacts("spring", path)
    assert again.imported == 0
    assert {b.reason for b in again.bad_rows} == {
        "a contact with this phone is already in the list"
    }
    # Another list may hold the same people
    assert import_contacts("autumn", path).imported == 2
    assert Contact.select().count() == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("phone,emial\n0611111111,a@b.co\n", "unknown column 'emial'"),
        ("first_name\nAnn\n", "needs a phone or an email column"),
        ("phone,Phone\n1,2\n", "appears twice"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_and_writes_nothing(
    db, clock, tmp_path, content, message
):
    with pytest.raises(InvalidInput, match=message):
        import_contacts("spring", write(tmp_path, content))
    assert ContactList.select().count() == 0
    assert Contact.select().count() == 0


def test_a_file_that_breaks_half_way_leaves_nothing_half_written(db, clock, tmp_path, monkeypatch):
    # Given a file whose first rows are fine and whose end is not UTF-8, imported in small chunks
    from worker.campaigns import contacts

    monkeypatch.setattr(contacts, "IMPORT_CHUNK", 2)
    good = "".join(f"06{n:08d},Name{n}\n" for n in range(10)).encode()
    path = write(tmp_path, b"phone,first_name\n" + good + b"0699999999,\xff\xfe\n")
    # When it is imported
    with pytest.raises(InvalidInput, match="line 12: the file is not UTF-8"):
        import_contacts("spring", path)
    # Then neither the list nor any of the rows already inserted remain
    assert ContactList.select().count() == 0
    assert Contact.select().count() == 0


def test_a_missing_file_is_refused(db, clock, tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        import_contacts("spring", tmp_path / "nope.csv")


# --- recipients ------------------------------------------------------------------------------


def started(campaign: Campaign) -> Campaign:
    Campaign.update(
        status="running",
        started_at=T0,
        contacts_upto_id=recipients.last_contact_id(campaign.contact_list_id),
    ).where(Campaign.id == campaign.id).execute()
    return Campaign.get_by_id(campaign.id)


def recipient_contacts(campaign: Campaign) -> list[int]:
    return [
        r.contact_id
        for r in CampaignRecipient.select()
        .where(CampaignRecipient.campaign == campaign.id)
        .order_by(CampaignRecipient.id)
    ]


def test_recipients_are_made_once_in_contact_order_a_page_at_a_time(
    db, clock, make_list, make_campaign, monkeypatch
):
    # Given two lists whose contacts interleave, and pages of 3
    monkeypatch.setattr(recipients, "MATERIALISE_PAGE", 3)
    ours = make_list(4, name="ours")
    make_list(3, name="theirs", start=100)
    make_list(4, name="ours", start=5)
    campaign = started(make_campaign(ours))
    # When its recipients are made, twice
    assert materialise(campaign.id) == 8
    assert materialise(campaign.id) == 8
    # Then there is one pending row per contact of its own list, in contact order
    expected = [
        c.id for c in Contact.select().where(Contact.contact_list == ours.id).order_by(Contact.id)
    ]
    assert recipient_contacts(campaign) == expected
    assert {r.status for r in CampaignRecipient.select()} == {"pending"}
    assert Campaign.get_by_id(campaign.id).recipients_ready_at == T0


def test_making_recipients_resumes_after_a_crash_part_way(
    db, clock, make_list, make_campaign, monkeypatch
):
    # Given a materialisation that died after its first page of 3 committed
    monkeypatch.setattr(recipients, "MATERIALISE_PAGE", 3)
    contact_list = make_list(10)
    campaign = started(make_campaign(contact_list))
    real_page_end = recipients._page_end
    calls = {"n": 0}

    def dies_on_the_second_page(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real_page_end(*args)

    monkeypatch.setattr(recipients, "_page_end", dies_on_the_second_page)
    with pytest.raises(RuntimeError):
        materialise(campaign.id)
    assert CampaignRecipient.select().count() == 3
    assert Campaign.get_by_id(campaign.id).recipients_ready_at is None
    # When it runs again
    monkeypatch.setattr(recipients, "_page_end", real_page_end)
    assert materialise(campaign.id) == 10
    # Then every contact is there once
    assert len(set(recipient_contacts(campaign))) == 10
