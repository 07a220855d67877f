"""The audit chain's hash, as documented in store/_audit_chain.py: a second, independent
implementation agrees with it on any event, and a change to any hashed field changes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import blake3
from hypothesis import given
from hypothesis import strategies as st

from loopline.store._audit_chain import GENESIS, HASHED, canonical_time, event_hash

texts = st.text(max_size=40)
optional_texts = st.none() | texts
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
hashes = st.just(GENESIS) | st.text("0123456789abcdef", min_size=64, max_size=64)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.integers(1, 2**62),
    "id": st.text("0123456789abcdef", min_size=32, max_size=32),
    "time": times,
    "actor": texts,
    "action": texts,
    "object_type": texts,
    "object_id": texts,
    "before_json": optional_texts,
    "after_json": optional_texts,
    "reason": optional_texts,
    "prev_hash": hashes,
}
events = st.fixed_dictionaries(FIELDS)


def _documented(event: dict[str, Any]) -> str:
    fields = dict(event)
    fields["time"] = event["time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return blake3.blake3(b"loopline-audit-v1\n" + body.encode()).hexdigest()


@given(events)
def test_the_hash_is_the_documented_one(event: dict[str, Any]) -> None:
    assert event_hash(event) == _documented(event)
    assert event_hash({**event, "hash": "ignored", "extra": 1}) == event_hash(event)


@given(events, st.sampled_from(HASHED), st.data())
def test_changing_any_hashed_field_changes_the_hash(
    event: dict[str, Any], field: str, data: st.DataObject
) -> None:
    changed = dict(event)
    changed[field] = data.draw(FIELDS[field].filter(lambda value: value != event[field]))
    if field == "time" and canonical_time(changed["time"]) == canonical_time(event["time"]):
        return
    assert event_hash(changed) != event_hash(event)


def test_a_time_is_hashed_as_the_same_instant_in_utc_whatever_its_zone() -> None:
    moment = datetime(2026, 12, 7, 13, 0, 0, 5, tzinfo=UTC)
    elsewhere = moment.astimezone(timezone(timedelta(hours=-5)))
    assert canonical_time(elsewhere) == canonical_time(moment) == "2026-12-07T13:00:00.000005Z"
    assert canonical_time(moment.replace(tzinfo=None)) == canonical_time(moment)
