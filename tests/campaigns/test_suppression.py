"""A campaign's suppressed contacts are skipped, with the reason, and count toward completion."""

from __future__ import annotations

from storage.models import CampaignRecipient
from tests.campaigns.helpers import deliver_queued, recipients_by_status, reload
from worker.campaigns.batches import claim_batch, run_batch
from worker.campaigns.control import run_manually
from worker.consent.suppression import suppress


def test_a_suppressed_contact_is_skipped_and_the_campaign_still_completes(
    db, clock, stub_broker, owner, make_list, make_campaign
):
    # Given a list of three, one of whom wrote STOP from the second contact's number
    contact_list = make_list(3)
    suppress(owner.account_id, "whatsapp", "33610000002@c.us", "opt_out", "test")
    campaign = make_campaign(contact_list, channel="log", daily_send_limit=5)
    # When the campaign runs and its messages are delivered
    run_manually(campaign.id, owner.id)
    claim_batch(campaign.id, 1, clock.now())
    run_batch(campaign.id, 1)
    deliver_queued()
    # Then two are sent, the suppressed one is skipped with the reason, and it is complete
    assert recipients_by_status(campaign) == {"sent": 2, "skipped": 1}
    skipped = CampaignRecipient.get(CampaignRecipient.status == "skipped")
    assert "suppressed" in skipped.error
    assert reload(campaign).status == "completed"


def test_a_contact_suppressed_after_the_batch_queued_it_is_skipped_at_delivery(
    db, clock, stub_broker, owner, make_list, make_campaign
):
    contact_list = make_list(2)
    campaign = make_campaign(contact_list, channel="log", daily_send_limit=5)
    run_manually(campaign.id, owner.id)
    claim_batch(campaign.id, 1, clock.now())
    run_batch(campaign.id, 1)
    # The first contact writes STOP before the delivery runs
    suppress(owner.account_id, "whatsapp", "+33610000001", "opt_out", "test")
    deliver_queued()
    assert recipients_by_status(campaign) == {"sent": 1, "skipped": 1}
    assert reload(campaign).status == "completed"
