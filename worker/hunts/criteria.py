"""A hunt's criteria: parsed and checked once, then turned into one SQL query over the ads.

Matching happens in the database, never in Python: location as postal-code ranges, sub-types and
brands with IN, a price range, title keywords (case-insensitive), a publication date, and the
exclusion of ads that are already a lead of the account, all in the same query, newest first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from storage.clock import as_utc
from storage.db import database, is_postgres
from storage.errors import InvalidInput
from storage.models.base import RowReader
from storage.models.hunts import Ad, Lead

CRITERIA_KEYS = (
    "postal_codes",
    "departments",
    "sub_types",
    "brands",
    "price_min",
    "price_max",
    "keywords",
    "published_since",
    "published_within_days",
)
# More values than this in one list is a mistake, not a hunt.
MAX_VALUES = 200
MAX_KEYWORD_LENGTH = 100
MAX_WITHIN_DAYS = 3650
# The largest price the ads' price column holds (a 32-bit integer on PostgreSQL).
MAX_PRICE = 2**31 - 1

_POSTAL_PREFIX = re.compile(r"^\d{1,5}$")
_DEPARTMENT = re.compile(r"^(0[1-9]|[1-8]\d|9[0-5]|2[AB]|97[1-6])$")
# Corsica's two departments share the 20xxx postal codes: 2A is 200xx-201xx, 2B 202xx-206xx.
_CORSICA = {"2A": ("200", "201"), "2B": ("202", "203", "204", "205", "206")}

# Publication-date windows searched in turn, newest first (None: no lower bound).
MATCH_WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30), None)

# Which owner contact each channel sends to; `log` and `webhook` take whichever the ad has.
CHANNEL_CONTACT = {"whatsapp": "phone", "email": "email"}


@dataclass(frozen=True)
class Criteria:
    postal_codes: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    sub_types: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: int | None = None
    price_max: int | None = None
    keywords: tuple[str, ...] = ()
    published_since: datetime | None = None
    published_within_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key in ("postal_codes", "departments", "sub_types", "brands", "keywords"):
            if getattr(self, key):
                data[key] = list(getattr(self, key))
        for key in ("price_min", "price_max", "published_within_days"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.published_since is not None:
            data["published_since"] = self.published_since.isoformat()
        return data

    def postal_prefixes(self) -> tuple[str, ...]:
        """Postal-code prefixes from both lists, without those another prefix already covers."""
        prefixes: set[str] = set(self.postal_codes)
        for department in self.departments:
            prefixes.update(_CORSICA.get(department, (department,)))
        kept = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
        return tuple(sorted(kept))

    def published_after(self, now: datetime) -> datetime | None:
        bounds = [b for b in (self.published_since,) if b is not None]
        if self.published_within_days is not None:
            bounds.append(now - timedelta(days=self.published_within_days))
        return max(bounds) if bounds else None


def _string_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"criteria.{key} must be a list of strings")
    cleaned = [v.strip() for v in value]
    if any(not v for v in cleaned):
        raise InvalidInput(f"criteria.{key} has an empty value")
    if len(cleaned) > MAX_VALUES:
        raise InvalidInput(f"criteria.{key} has more than {MAX_VALUES} values")
    return list(dict.fromkeys(cleaned))


def _non_negative_int(data: Mapping[str, Any], key: str, maximum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"criteria.{key} must be a whole number, 0 or more (got {value!r})")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"criteria.{key} must be at most {maximum} (got {value})")
    return value


def _moment(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"criteria.{key} must be an ISO date or date-time")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # overflow: year 1 with an offset east of UTC
        raise InvalidInput(f"criteria.{key}: {value!r} is not an ISO date or date-time") from None


def parse_criteria(data: Any) -> Criteria:
    """Check and normalise criteria from a hunt definition; raises InvalidInput."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidInput("criteria must be an object")
    unknown = sorted(set(data) - set(CRITERIA_KEYS))
    if unknown:
        raise InvalidInput(
            f"criteria: unknown key {unknown[0]!r} (known: {', '.join(CRITERIA_KEYS)})"
        )
    postal_codes = _string_list(data, "postal_codes")
    for code in postal_codes:
        if not _POSTAL_PREFIX.match(code):
            raise InvalidInput(f"criteria.postal_codes: {code!r} is not 1 to 5 digits")
    departments = [d.upper() for d in _string_list(data, "departments")]
    for department in departments:
        if not _DEPARTMENT.match(department):
            raise InvalidInput(f"criteria.departments: {department!r} is not a department code")
    keywords = _string_list(data, "keywords")
    for keyword in keywords:
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise InvalidInput(f"criteria.keywords: {keyword[:20]!r}... is too long")
    price_min = _non_negative_int(data, "price_min", MAX_PRICE)
    price_max = _non_negative_int(data, "price_max", MAX_PRICE)
    if price_min is not None and price_max is not None and price_min > price_max:
        raise InvalidInput(f"criteria: price_min {price_min} is above price_max {price_max}")
    return Criteria(
        postal_codes=tuple(postal_codes),
        departments=tuple(dict.fromkeys(departments)),
        sub_types=tuple(dict.fromkeys(v.lower() for v in _string_list(data, "sub_types"))),
        brands=tuple(dict.fromkeys(v.lower() for v in _string_list(data, "brands"))),
        price_min=price_min,
        price_max=price_max,
        keywords=tuple(keywords),
        published_since=_moment(data, "published_since"),
        published_within_days=_non_negative_int(data, "published_within_days", MAX_WITHIN_DAYS),
    )


def _next_prefix(prefix: str) -> str | None:
    """The smallest digit string of the same length above `prefix` ("75" -> "76", "99" -> None)."""
    width = len(prefix)
    following = int(prefix) + 1
    return None if following >= 10**width else str(following).zfill(width)


def _quoted(field: Any) -> str:
    return f'"{field.column_name}"'


_AD_TABLE = f'"{Ad._meta.table_name}"'
_AD_FIELDS = tuple(Ad._meta.sorted_fields)
_read_ad = RowReader(Ad, _AD_FIELDS)
_AD_COLUMNS = ", ".join(f"a.{_quoted(f)}" for f in _AD_FIELDS)
_LEAD_TABLE = f'"{Lead._meta.table_name}"'


def _ors(conditions: Sequence[str]) -> str:
    return conditions[0] if len(conditions) == 1 else "(" + " OR ".join(conditions) + ")"


class Matching:
    """The matching query as SQL text and parameters (``sql()``); iterating it runs it.

    Written out rather than built with peewee: a run issues one to four of these, and turning
    such a query into SQL cost peewee more CPU than the rest of a contact's work.
    """

    def __init__(self, text: str, params: list[Any]) -> None:
        self.text = text
        self.params = params

    def sql(self) -> tuple[str, list[Any]]:
        return self.text, self.params

    def __iter__(self) -> Iterator[Ad]:
        cursor = database.execute_sql(self.text, self.params)
        for values in cursor.fetchall():
            yield _read_ad(values)


def _like(param: str, keyword: str, params: list[Any]) -> str:
    """A case-insensitive `contains`, as peewee writes it: ILIKE on PostgreSQL; LIKE on SQLite
    (ASCII case-insensitive), with % and _ escaped."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params.append(f"%{escaped}%")
    operator = "ILIKE" if is_postgres() else "LIKE"
    if escaped == keyword:
        return f"a.{_quoted(Ad.title)} {operator} {param}"
    params.append("\\")
    return f"a.{_quoted(Ad.title)} {operator} {param} ESCAPE {param}"


def matching_query(
    criteria: Criteria,
    *,
    account_id: int,
    now: datetime,
    channels: Sequence[str],
    limit: int,
    after: tuple[datetime, int] | None = None,
    published_from: datetime | None = None,
) -> Matching:
    """Ads matching `criteria` that are not yet a lead of the account, newest first.

    `after` is the (published_at, id) of the last ad of the previous page (keyset pagination);
    `published_from` an extra lower bound on the publication time (see :func:`find_matches`).
    """
    p = str(database.obj.param)
    params: list[Any] = []
    where: list[str] = []
    postal = f"a.{_quoted(Ad.postal_code)}"
    # A postal-code prefix as a range: what `LIKE '75%'` means for digit-only codes, in a form a
    # plain b-tree serves on both backends (PostgreSQL will not use one for LIKE outside the C
    # collation, SQLite only with a case-insensitive one).
    ranges: list[str] = []
    for prefix in criteria.postal_prefixes():
        upper = _next_prefix(prefix)
        params.append(prefix)
        if upper is None:
            ranges.append(f"{postal} >= {p}")
        else:
            params.append(upper)
            ranges.append(f"({postal} >= {p} AND {postal} < {p})")
    if ranges:
        where.append(_ors(ranges))
    for field, values in ((Ad.sub_type, criteria.sub_types), (Ad.brand, criteria.brands)):
        if values:
            params += values
            where.append(f"a.{_quoted(field)} IN ({', '.join([p] * len(values))})")
    if criteria.price_min is not None:
        params.append(criteria.price_min)
        where.append(f"a.{_quoted(Ad.price)} >= {p}")
    if criteria.price_max is not None:
        params.append(criteria.price_max)
        where.append(f"a.{_quoted(Ad.price)} <= {p}")
    if criteria.keywords:
        where.append(_ors([_like(p, k, params) for k in criteria.keywords]))
    published = f"a.{_quoted(Ad.published_at)}"
    bounds = [b for b in (criteria.published_after(now), published_from) if b is not None]
    if bounds:
        params.append(Ad.published_at.db_value(max(bounds)))
        where.append(f"{published} >= {p}")
    contact = _contact(channels)
    if contact:
        where.append(_ors(contact))
    params.append(account_id)
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {_LEAD_TABLE} AS l WHERE l.{_quoted(Lead.account)} = {p} "
        f"AND l.{_quoted(Lead.ad)} = a.{_quoted(Ad.id)})"
    )
    if after is not None:
        params += [Ad.published_at.db_value(after[0]), after[1]]
        where.append(f"({published}, a.{_quoted(Ad.id)}) < ({p}, {p})")
    params.append(limit)
    text = (
        f"SELECT {_AD_COLUMNS} FROM {_AD_TABLE} AS a WHERE {' AND '.join(where)} "
        f"ORDER BY {published} DESC, a.{_quoted(Ad.id)} DESC LIMIT {p}"
    )
    return Matching(text, params)


def _contact(channels: Iterable[str]) -> list[str]:
    """Ads with a contact at least one of the channels can use (empty: every ad qualifies)."""
    conditions: list[str] = []
    for channel in channels:
        kind = CHANNEL_CONTACT.get(channel)
        if kind is None:
            return []
        field = Ad.owner_phone if kind == "phone" else Ad.owner_email
        conditions.append(f"a.{_quoted(field)} IS NOT NULL")
    return conditions


def find_matches(
    criteria: Criteria,
    *,
    account_id: int,
    now: datetime,
    channels: Sequence[str],
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> list[Ad]:
    """Up to `limit` new matching ads, newest first, searched a time window at a time.

    "The newest few that match" over a million ads: the database cannot walk a date index
    backwards without risking a scan of most of the table when the criteria are narrow, and
    without one it fetches every ad of the location when they are broad. Bounding the
    publication date (last day, then 7 days, 30, then all) lets each query use the location indexes
    with the date as an index condition, and a typical run stops after the first window.
    Fewer than `limit` ads means there are no more.
    """
    since = criteria.published_after(now)
    found: list[Ad] = []
    cursor = after
    for span in MATCH_WINDOWS:
        lower = None if span is None else now - span
        if lower is not None and cursor is not None and cursor[0] < lower:
            continue  # the previous page already went past this window
        if since is not None and (lower is None or lower <= since):
            lower = None  # the hunt's own bound is the tighter one: this is the last window
        rows = list(
            matching_query(
                criteria,
                account_id=account_id,
                now=now,
                channels=channels,
                limit=limit - len(found),
                after=cursor,
                published_from=lower,
            )
        )
        found.extend(rows)
        if rows:
            cursor = (rows[-1].published_at, rows[-1].id)
        if len(found) >= limit or lower is None:
            break
    return found


def recipient_for(ad: Ad, channel: str) -> str | None:
    """The ad owner's address on `channel`, or None when the ad has none for it."""
    kind = CHANNEL_CONTACT.get(channel)
    if kind == "phone":
        return ad.owner_phone or None
    if kind == "email":
        return ad.owner_email or None
    return ad.owner_phone or ad.owner_email or None


def template_values(ad: Ad) -> dict[str, object]:
    return {
        "title": ad.title,
        "price": ad.price,
        "city": ad.city,
        "postal_code": ad.postal_code,
        "category": ad.category,
        "sub_type": ad.sub_type,
        "brand": ad.brand,
        "owner_name": ad.owner_name,
        "url": ad.url,
        "source": ad.source,
        "published_at": as_utc(ad.published_at).date().isoformat() if ad.published_at else None,
    }
