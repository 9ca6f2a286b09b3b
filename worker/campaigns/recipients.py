"""Recipients: one row per contact of the list, made once when the campaign starts.

Made by ``INSERT ... SELECT`` in keyset pages of contact ids, each page its own transaction, so a
list of a million contacts never passes through this process and a crash resumes where it
stopped. Only contacts up to the id fixed at the start are included: contacts added to the list
afterwards are not part of the campaign.
"""

from __future__ import annotations

from peewee import Value, fn

from storage import clock
from storage.db import write_transaction
from storage.errors import NotFound
from storage.models.campaigns import (
    PENDING,
    Campaign,
    CampaignRecipient,
    Contact,
)
from worker.logging import get_logger

log = get_logger("outreach.campaigns.recipients")

# Contacts per INSERT ... SELECT (and per transaction): large enough to amortise the round trip,
# small enough that a page never holds locks for long.
MATERIALISE_PAGE = 20_000


def last_contact_id(contact_list_id: int) -> int:
    """The highest contact id of the list now (0 for an empty list): the campaign's snapshot."""
    value = (
        Contact.select(fn.MAX(Contact.id)).where(Contact.contact_list == contact_list_id).scalar()
    )
    return int(value or 0)


def _page_end(contact_list_id: int, after: int, upto: int) -> int:
    """The last contact id of the page that starts after `after` (at most `upto`)."""
    end = (
        Contact.select(Contact.id)
        .where(
            (Contact.contact_list == contact_list_id) & (Contact.id > after) & (Contact.id <= upto)
        )
        .order_by(Contact.id)
        .offset(MATERIALISE_PAGE - 1)
        .limit(1)
        .scalar()
    )
    return int(end) if end is not None else upto


def materialise(campaign_id: int) -> int:
    """Make the campaign's recipient rows if they are not made yet; returns how many there are.

    Safe to run twice and concurrently (unique campaign + contact; rows already there are left
    as they are), and resumable: it carries on after the highest contact already included.
    """
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    if campaign.recipients_ready_at is not None:
        return int(campaign.recipients_total or 0)
    list_id = campaign.contact_list_id
    upto = campaign.contacts_upto_id
    if upto is None:
        # A campaign started before its snapshot was recorded: fix it now, once.
        with write_transaction():
            Campaign.update(contacts_upto_id=last_contact_id(list_id)).where(
                (Campaign.id == campaign_id) & Campaign.contacts_upto_id.is_null()
            ).execute()
        upto = Campaign.select(Campaign.contacts_upto_id).where(Campaign.id == campaign_id).scalar()
    after = int(
        CampaignRecipient.select(fn.MAX(CampaignRecipient.contact))
        .where(CampaignRecipient.campaign == campaign_id)
        .scalar()
        or 0
    )
    while after < upto:
        with write_transaction():
            end = _page_end(list_id, after, upto)
            contacts = (
                Contact.select(Value(campaign_id), Contact.id, Value(PENDING))
                .where(
                    (Contact.contact_list == list_id) & (Contact.id > after) & (Contact.id <= end)
                )
                .order_by(Contact.id)
            )
            (
                CampaignRecipient.insert_from(
                    contacts,
                    fields=[
                        CampaignRecipient.campaign,
                        CampaignRecipient.contact,
                        CampaignRecipient.status,
                    ],
                )
                .on_conflict_ignore()
                .as_rowcount()  # no RETURNING of every new id
                .execute()
            )
        after = end
    with write_transaction():
        total = CampaignRecipient.select().where(CampaignRecipient.campaign == campaign_id).count()
        Campaign.update(recipients_ready_at=clock.now(), recipients_total=total).where(
            (Campaign.id == campaign_id) & Campaign.recipients_ready_at.is_null()
        ).execute()
    log.info("campaign.recipients_ready", campaign_id=campaign_id, recipients=total)
    return total
