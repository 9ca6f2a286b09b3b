"""Creating a hunt from its JSON definition: everything is checked before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from storage.models.accounts import User
from storage.models.hunts import ACTIVE, ARCHIVED, HUNT_STATUSES, PAUSED, Hunt
from worker.channels import validate_channel
from worker.hunts import credits
from worker.hunts.criteria import Criteria, parse_criteria
from worker.hunts.template import compile_template

DEFINITION_KEYS = (
    "account_id",
    "owner_id",
    "name",
    "status",
    "auto_refresh",
    "daily_pacing_limit",
    "channels",
    "credits",
    "message_template",
    "criteria",
)
MAX_NAME_LENGTH = 200
# The largest limit or credit amount the columns hold (32-bit integers on PostgreSQL).
MAX_AMOUNT = 2**31 - 1
# The largest id a database holds (SQLite's 64-bit integers): SQLite's driver raises on more.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class HuntDefinition:
    owner_id: int
    account_id: int | None
    name: str
    status: str
    auto_refresh: bool
    daily_pacing_limit: int | None
    channels: tuple[str, ...]
    credits: dict[str, int]
    message_template: str
    criteria: Criteria


def _positive_id(data: Mapping[str, Any], key: str, required: bool) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"hunt definition: {key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidInput(f"hunt definition: {key} must be a positive id (got {value!r})")
    return value


def parse_definition(data: Any) -> HuntDefinition:
    """Check a hunt definition (the JSON of `outreach hunt create`); raises InvalidInput."""
    if not isinstance(data, Mapping):
        raise InvalidInput("hunt definition must be a JSON object")
    unknown = sorted(set(data) - set(DEFINITION_KEYS))
    if unknown:
        raise InvalidInput(
            f"hunt definition: unknown key {unknown[0]!r} (known: {', '.join(DEFINITION_KEYS)})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"hunt definition: name must be 1 to {MAX_NAME_LENGTH} characters")
    status = data.get("status", ACTIVE)
    if status not in (ACTIVE, PAUSED):
        raise InvalidInput(f"hunt definition: status must be {ACTIVE!r} or {PAUSED!r}")
    auto_refresh = data.get("auto_refresh", True)
    if not isinstance(auto_refresh, bool):
        raise InvalidInput("hunt definition: auto_refresh must be true or false")
    limit = data.get("daily_pacing_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput(
            f"hunt definition: daily_pacing_limit must be null or a whole number, 0 or more"
            f" (got {limit!r})"
        )
    if limit is not None and limit > MAX_AMOUNT:
        raise InvalidInput(f"hunt definition: daily_pacing_limit must be at most {MAX_AMOUNT}")
    channels = data.get("channels")
    if not isinstance(channels, list) or not channels:
        raise InvalidInput("hunt definition: channels must be a non-empty list")
    for channel in channels:
        if not isinstance(channel, str):
            raise InvalidInput("hunt definition: channels must be channel names")
        validate_channel(channel)
    if len(set(channels)) != len(channels):
        raise InvalidInput("hunt definition: a channel is listed twice")
    allocations = data.get("credits")
    if not isinstance(allocations, Mapping):
        raise InvalidInput(
            'hunt definition: credits must give each channel its credits, e.g. {"whatsapp": 100}'
        )
    if set(allocations) != set(channels):
        missing = sorted(set(channels) - set(allocations))
        extra = sorted(set(allocations) - set(channels))
        detail = f"no credits for {missing[0]!r}" if missing else f"{extra[0]!r} is not a channel"
        raise InvalidInput(f"hunt definition: credits: {detail} of the hunt")
    for channel, amount in allocations.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidInput(
                f"hunt definition: credits for {channel!r} must be a whole number, 0 or more"
            )
        if amount > MAX_AMOUNT:
            raise InvalidInput(
                f"hunt definition: credits for {channel!r} must be at most {MAX_AMOUNT}"
            )
    template = data.get("message_template")
    if not isinstance(template, str):
        raise InvalidInput("hunt definition: message_template is required")
    compile_template(template)
    return HuntDefinition(
        owner_id=_positive_id(data, "owner_id", required=True) or 0,
        account_id=_positive_id(data, "account_id", required=False),
        name=name.strip(),
        status=status,
        auto_refresh=auto_refresh,
        daily_pacing_limit=limit,
        channels=tuple(channels),
        credits=dict(allocations),
        message_template=template,
        criteria=parse_criteria(data.get("criteria")),
    )


def create_hunt(data: Any) -> Hunt:
    """Create a hunt and its channel credits from a definition; nothing is written on bad input."""
    definition = parse_definition(data)
    owner = User.select(User.id, User.account).where(User.id == definition.owner_id).tuples()
    found = cast(tuple[int, int] | None, owner.first())
    if found is None:
        raise NotFound(f"user {definition.owner_id} does not exist")
    owner_id, account_id = found
    if definition.account_id is not None and account_id != definition.account_id:
        raise PermissionDenied(
            f"user {owner_id} is not a member of account {definition.account_id}"
        )
    now = clock.now()
    with write_transaction():
        hunt = Hunt.create(
            account=account_id,
            owner=owner_id,
            name=definition.name,
            status=definition.status,
            auto_refresh=definition.auto_refresh,
            daily_pacing_limit=definition.daily_pacing_limit,
            channels=list(definition.channels),
            message_template=definition.message_template,
            criteria=definition.criteria.to_json(),
            created_at=now,
            updated_at=now,
        )
        credits.allocate(hunt.id, definition.credits)
    return hunt


def set_status(hunt_id: int, status: str) -> Hunt:
    """Pause, resume or archive a hunt (an archived hunt stays archived)."""
    if status not in HUNT_STATUSES:
        raise InvalidInput(f"unknown hunt status {status!r} (expected {', '.join(HUNT_STATUSES)})")
    with write_transaction():
        hunt = Hunt.get_or_none(Hunt.id == hunt_id)
        if hunt is None:
            raise NotFound(f"hunt {hunt_id} does not exist")
        if hunt.status == ARCHIVED and status != ARCHIVED:
            raise InvalidState(f"hunt {hunt_id} is archived; it cannot be {status} again")
        Hunt.update(status=status, updated_at=clock.now()).where(Hunt.id == hunt_id).execute()
    return Hunt.get_by_id(hunt_id)
