"""Creating a campaign: every bad input is refused with one clear line, and nothing is written."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput, NotFound, PermissionDenied
from storage.models import Campaign, MediaItem, MessageTemplate
from tests.conftest import T0
from worker.campaigns.create import CampaignSpec, create_campaign


def nothing_written() -> bool:
    return (
        Campaign.select().count() == 0
        and MessageTemplate.select().count() == 0
        and MediaItem.select().count() == 0
    )


def test_a_campaign_is_a_draft_with_seed_defaults(db, clock, owner, make_list, make_campaign):
    campaign = make_campaign(make_list(2), daily_send_limit=5)
    stored = Campaign.get_by_id(campaign.id)
    assert stored.status == "draft"
    assert stored.daily_send_limit == 5
    assert stored.default_name_value == "there"
    assert stored.next_batch_at is None
    assert stored.current_batch_number == 0
    assert stored.owner_id == owner.id
    assert MessageTemplate.get_by_id(stored.template_id).body.startswith("Hello {Name}")


def test_a_start_time_schedules_it(db, clock, make_list, make_campaign):
    campaign = make_campaign(make_list(1), start_at="2026-03-03T09:00:00+01:00")
    assert campaign.status == "scheduled"
    assert Campaign.get_by_id(campaign.id).next_batch_at.isoformat() == "2026-03-03T08:00:00+00:00"


def test_the_default_limit_is_five(db, clock, owner, make_list):
    spec = CampaignSpec.from_mapping(
        {
            "owner_id": owner.id,
            "name": "x",
            "channel": "log",
            "contact_list": make_list(1).name,
            "template": "hi",
        }
    )
    assert create_campaign(spec).daily_send_limit == 5


def test_an_existing_template_and_media_of_the_owner_can_be_reused(
    db, clock, owner, make_list, make_campaign
):
    template = MessageTemplate.create(owner=owner, name="t", body="Hey {name}", created_at=T0)
    media = MediaItem.create(
        owner=owner, location="media/a.png", mime_type="image/png", created_at=T0
    )
    campaign = make_campaign(
        make_list(1), template=None, template_id=template.id, media_id=media.id
    )
    assert campaign.template_id == template.id and campaign.media_id == media.id


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"template": "Hi {FirstName}"}, InvalidInput, "unknown placeholder {FirstName}"),
        ({"template": "Hi {Name} {city}"}, InvalidInput, "unknown placeholder {city}"),
        ({"template": ""}, InvalidInput, "template is empty"),
        ({"daily_send_limit": -1}, InvalidInput, "daily_send_limit must be between"),
        ({"daily_send_limit": 0}, InvalidInput, "daily_send_limit must be between"),
        ({"channel": "sms"}, InvalidInput, "unknown channel 'sms'"),
        ({"contact_list": "nope"}, NotFound, "contact list 'nope' does not exist"),
        ({"owner_id": 999}, NotFound, "user 999 does not exist"),
        ({"name": "  "}, InvalidInput, "campaign name is empty"),
        ({"default_name_value": " "}, InvalidInput, "default_name_value is empty"),
        ({"media_url": "https://x/a.jpg", "media_type": "jpeg"}, InvalidInput, "not a MIME type"),
        ({"media_type": "image/png"}, InvalidInput, "media needs a URL"),
        ({"template_id": 999}, InvalidInput, "one of them"),
        ({"template": None, "template_id": 999}, NotFound, "template 999 does not exist"),
        ({"start_at": "tomorrow"}, InvalidInput, "not an ISO 8601 time"),
        ({"colour": "blue"}, InvalidInput, "unknown campaign field"),
        ({"daily_send_limit": "5"}, InvalidInput, "must be a whole number"),
    ],
)
def test_bad_input_is_refused_at_creation_and_writes_nothing(
    db, clock, make_list, make_campaign, fields, error, message
):
    contact_list = make_list(1)
    with pytest.raises(error, match=message.replace("{", r"\{").replace("}", r"\}")):
        make_campaign(contact_list, **fields)
    assert nothing_written()


def test_another_users_template_is_refused(db, clock, stranger, make_list, make_campaign):
    theirs = MessageTemplate.create(owner=stranger, name="t", body="Hi", created_at=T0)
    with pytest.raises(PermissionDenied, match=f"template {theirs.id} belongs to another user"):
        make_campaign(make_list(1), template=None, template_id=theirs.id)
    assert Campaign.select().count() == 0
