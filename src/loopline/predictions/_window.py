"""Time windows over the log: `since`/`until` checked and made UTC, and the text of a
`--since` option ("30m", "2d", an ISO timestamp) read as a moment."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput
from loopline.predictions._parquet import utc

if TYPE_CHECKING:
    from loopline.project import Stores

_SINCE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The moment `text` names: a duration back from `now` ("90s", "30m", "1h", "2d",
    "1w") or an ISO 8601 timestamp (naive means UTC). Raises InvalidInput otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(
            f"not a time: {text!r}", hint="use e.g. 30m, 1h, 2d or 2026-01-31T12:00Z"
        )
    if _SINCE.fullmatch(text) is not None:
        now = utc(now) if now is not None else datetime.now(UTC)
        try:
            return now - parse_duration(text)
        except OverflowError:
            raise InvalidInput(f"{text!r} reaches back too far") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"not a duration or an ISO timestamp: {text!r}",
            hint="use e.g. 90s, 30m, 1h, 2d, 1w or 2026-01-31T12:00:00Z",
        ) from None
    return utc(moment)


def parse_duration(text: str) -> timedelta:
    """The length `text` names, in `parse_since`'s duration syntax: a number and one of
    s, m, h, d, w ("90s", "1.5h", "2d"). Raises InvalidInput for anything else (an ISO
    timestamp included) and for a length too large to represent."""
    match = _SINCE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"not a duration: {text!r}", hint="use a number and a unit: 90s, 30m, 1h, 2d or 1w"
        )
    amount, unit = float(match.group(1)), match.group(2).lower()
    try:
        return timedelta(seconds=amount * _UNITS[unit])
    except OverflowError:
        raise InvalidInput(f"the duration {text!r} is too long") from None


def window(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, got {value!r}")
    since = None if since is None else utc(since)
    until = None if until is None else utc(until)
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            f"the window ends ({until.isoformat()}) before it starts ({since.isoformat()})"
        )
    return since, until


def resolve_stores(stores: Stores | None) -> Stores:
    """`stores`, or the current project's when None."""
    if stores is not None:
        return stores
    from loopline.project import stores as current

    return current()
