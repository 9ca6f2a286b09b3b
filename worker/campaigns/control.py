"""What an owner or an operator does to a campaign: run it by hand, pause, resume, cancel.

Each move is checked (the campaign exists, the user owns it, the lifecycle allows it) before
anything changes, then made with a conditional update on the status that was checked: a refused
or lost race changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidState, NotFound, PermissionDenied
from storage.models.accounts import User
from storage.models.campaigns import RUNNING, Campaign
from worker.campaigns import recipients
from worker.campaigns.lifecycle import Move, target
from worker.logging import get_logger

log = get_logger("outreach.campaigns.control")


def get_campaign(campaign_id: int) -> Campaign:
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def check_owner(campaign: Campaign, user_id: int | None) -> None:
    """None is the operator acting for everyone; a user must own the campaign."""
    if user_id is None:
        return
    if User.get_or_none(User.id == user_id) is None:
        raise NotFound(f"user {user_id} does not exist")
    if campaign.owner_id != user_id:
        raise PermissionDenied(f"user {user_id} does not own campaign {campaign.id}")


def _move(campaign: Campaign, new_status: str, **values: Any) -> Campaign:
    """Set the new status only if nobody changed the campaign's status since it was read."""
    moved = (
        Campaign.update(status=new_status, updated_at=clock.now(), **values)
        .where((Campaign.id == campaign.id) & (Campaign.status == campaign.status))
        .execute()
    )
    if not moved:
        raise InvalidState(f"campaign {campaign.id} changed meanwhile; look at it and try again")
    log.info(
        "campaign.status", campaign_id=campaign.id, old=campaign.status, new=new_status, **values
    )
    return Campaign.get_by_id(campaign.id)


def run_manually(campaign_id: int, user_id: int) -> Campaign:
    """Seed 003's runManually: the owner starts a draft or scheduled campaign, first batch now.

    The contacts it includes are fixed here: those in the list right now.
    """
    with write_transaction():
        campaign = get_campaign(campaign_id)
        check_owner(campaign, user_id)
        new_status = target(Move.RUN, campaign.status, what=f"campaign {campaign_id}")
        now = clock.now()
        return _move(
            campaign,
            new_status,
            started_at=now,
            next_batch_at=now,
            contacts_upto_id=recipients.last_contact_id(campaign.contact_list_id),
        )


def pause(campaign_id: int, user_id: int | None = None) -> Campaign:
    """No further batch starts; a batch already under way stops after its current chunk."""
    with write_transaction():
        campaign = get_campaign(campaign_id)
        check_owner(campaign, user_id)
        return _move(campaign, target(Move.PAUSE, campaign.status, what=f"campaign {campaign_id}"))


def resume(campaign_id: int, user_id: int | None = None) -> Campaign:
    """Back to where it was; a batch that came due while paused is due now."""
    with write_transaction():
        campaign = get_campaign(campaign_id)
        check_owner(campaign, user_id)
        new_status = target(
            Move.RESUME,
            campaign.status,
            started=campaign.started_at is not None,
            what=f"campaign {campaign_id}",
        )
        now = clock.now()
        next_at: datetime | None = campaign.next_batch_at
        if new_status == RUNNING and (next_at is None or next_at < now):
            next_at = now
        return _move(campaign, new_status, next_batch_at=next_at)


def cancel(campaign_id: int, user_id: int | None = None) -> Campaign:
    """Ends it: no further batch. Messages already queued still go and are recorded."""
    with write_transaction():
        campaign = get_campaign(campaign_id)
        check_owner(campaign, user_id)
        new_status = target(Move.CANCEL, campaign.status, what=f"campaign {campaign_id}")
        return _move(campaign, new_status, next_batch_at=None, completed_at=clock.now())
