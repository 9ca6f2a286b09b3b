"""Creating a campaign: every input checked before anything is written, then one transaction.

The template is checked here, when the campaign is created, so a bad placeholder is refused
now and never found at send time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from storage import clock
from storage.clock import as_utc
from storage.db import write_transaction
from storage.errors import InvalidInput, NotFound, PermissionDenied
from storage.models.accounts import User
from storage.models.campaigns import (
    DEFAULT_DAILY_SEND_LIMIT,
    DEFAULT_NAME_VALUE,
    DRAFT,
    Campaign,
    ContactList,
    MediaItem,
    MessageTemplate,
)
from worker.campaigns.batches import validate_daily_send_limit
from worker.campaigns.lifecycle import Move, target
from worker.campaigns.personalisation import has_name_placeholder, validate_template
from worker.channels import validate_channel

# type/subtype, as in a Content-Type header.
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$", re.IGNORECASE)
MAX_NAME_LENGTH = 200
# The largest id a database holds (SQLite's 64-bit integers): SQLite's driver raises on more.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign is made of, as an operator gives it (options or a JSON file)."""

    owner_id: int
    name: str
    channel: str
    contact_list: str | int  # a list's name, or its id
    template: str | None = None  # the template's text...
    template_id: int | None = None  # ...or an existing template of the owner
    media_url: str | None = None  # a URL or a storage path...
    media_type: str | None = None  # ...and its MIME type
    media_id: int | None = None  # or an existing media item of the owner
    daily_send_limit: int = DEFAULT_DAILY_SEND_LIMIT
    default_name_value: str = DEFAULT_NAME_VALUE
    start_at: datetime | None = None  # scheduled for then; none leaves a draft

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CampaignSpec:
        """A spec from parsed JSON: unknown keys and wrong types are refused by name."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a campaign must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown campaign field(s): {', '.join(unknown)}")
        for required in ("owner_id", "name", "channel", "contact_list"):
            if data.get(required) in (None, ""):
                raise InvalidInput(f"campaign field {required!r} is required")
        values = dict(data)
        for key in ("owner_id", "template_id", "media_id", "daily_send_limit"):
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput(f"campaign field {key!r} must be a whole number")
        for key in ("owner_id", "template_id", "media_id", "contact_list"):
            value = values.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and not 0 < value <= MAX_ID:
                raise InvalidInput(f"campaign field {key!r} is not an id (a whole number from 1)")
        for key in ("name", "channel", "template", "media_url", "media_type"):
            value = values.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"campaign field {key!r} must be text")
        if not isinstance(values["contact_list"], str | int) or isinstance(
            values["contact_list"], bool
        ):
            raise InvalidInput("campaign field 'contact_list' must be a list name or id")
        if "default_name_value" in values and not isinstance(values["default_name_value"], str):
            raise InvalidInput("campaign field 'default_name_value' must be text")
        if values.get("start_at") is not None:
            values["start_at"] = parse_time(values["start_at"], "start_at")
        return cls(**values)


def parse_time(value: object, what: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    if isinstance(value, datetime):
        return as_utc(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO 8601 time")
    try:
        return as_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):  # overflow: year 1 with an offset east of UTC
        raise InvalidInput(f"{what}: {value!r} is not an ISO 8601 time") from None


def _text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    return value


def _contact_list(ref: str | int) -> ContactList:
    if isinstance(ref, int):
        found = ContactList.get_or_none(ContactList.id == ref)
    else:
        found = ContactList.get_or_none(ContactList.name == ref.strip())
    if found is None:
        raise NotFound(f"contact list {ref!r} does not exist")
    return found


_Owned = TypeVar("_Owned", MessageTemplate, MediaItem)


def _owned(model: type[_Owned], item_id: int, owner_id: int, what: str) -> _Owned:
    item: _Owned | None = model.get_or_none(model.id == item_id)
    if item is None:
        raise NotFound(f"{what} {item_id} does not exist")
    if item.owner_id != owner_id:
        raise PermissionDenied(f"{what} {item_id} belongs to another user")
    return item


def create_campaign(spec: CampaignSpec) -> Campaign:
    """Check everything, then write the template, media and campaign together (or nothing)."""
    owner = User.get_or_none(User.id == spec.owner_id)
    if owner is None:
        raise NotFound(f"user {spec.owner_id} does not exist")
    name = _text(spec.name, "campaign name")
    channel = validate_channel(spec.channel)
    contact_list = _contact_list(spec.contact_list)
    limit = validate_daily_send_limit(spec.daily_send_limit)

    if (spec.template is None) == (spec.template_id is None):
        raise InvalidInput("give the template's text or a template id (one of them)")
    template: MessageTemplate | None = None
    body = spec.template
    if spec.template_id is not None:
        template = _owned(MessageTemplate, spec.template_id, owner.id, "template")
        body = template.body
    assert body is not None
    validate_template(body)

    default_name = (spec.default_name_value or "").strip()
    if not default_name and has_name_placeholder(body):
        raise InvalidInput("default_name_value is empty but the template uses {Name}")
    if len(default_name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"default_name_value is longer than {MAX_NAME_LENGTH} characters")

    media: MediaItem | None = None
    if spec.media_id is not None:
        if spec.media_url or spec.media_type:
            raise InvalidInput("give a media id or a media URL and type, not both")
        media = _owned(MediaItem, spec.media_id, owner.id, "media item")
    elif spec.media_url or spec.media_type:
        if not (spec.media_url or "").strip():
            raise InvalidInput("media needs a URL or storage path")
        if not _MIME_TYPE.match((spec.media_type or "").strip()):
            raise InvalidInput(f"media type {spec.media_type!r} is not a MIME type like image/jpeg")

    now = clock.now()
    status = DRAFT
    if spec.start_at is not None:
        status = target(Move.SCHEDULE, DRAFT)
    with write_transaction():
        if template is None:
            template = MessageTemplate.create(owner=owner, name=name, body=body, created_at=now)
        if media is None and spec.media_url:
            media = MediaItem.create(
                owner=owner,
                location=spec.media_url.strip(),
                mime_type=(spec.media_type or "").strip().lower(),
                created_at=now,
            )
        campaign: Campaign = Campaign.create(
            owner=owner,
            name=name,
            channel=channel,
            template=template,
            media=media,
            contact_list=contact_list,
            daily_send_limit=limit,
            default_name_value=default_name,
            status=status,
            next_batch_at=spec.start_at,
            created_at=now,
            updated_at=now,
        )
    return campaign
