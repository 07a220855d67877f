"""Conformance checks of the audit log: events kept as given, newest first, found by
object (exactly or everything under a model), action, actor and time, each chained to the
one before by its hash, and none lost nor the chain forked when writers race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from loopline.errors import InvalidInput
from loopline.store import MetadataStore
from loopline.store.audit import MAX_EVENTS, AuditPage
from loopline.testing._common import Check


def _record(
    store: MetadataStore, object_id: str, action: str = "model.update", **kw: object
) -> str:
    values: dict[str, object] = {"actor": "tester", "object_type": "model", **kw}
    return store.audit.record(action=action, object_id=object_id, **values)  # type: ignore[arg-type]


def check_audit_events_round_trip_newest_first(store: MetadataStore) -> None:
    audit = store.audit
    assert audit.list_events() == []
    started = datetime.now(UTC) - timedelta(seconds=1)
    before = {"version": 1, "tags": {"team": "risk"}, "note": "ünï"}
    first = _record(
        store, "churn@champion", "alias.set", before=before, after={"version": 2}, reason="why"
    )
    second = _record(store, "churn@champion", "alias.delete", before={"version": 2})
    third = _record(store, "churn@champion", "alias.set", actor="bob")
    events = audit.list_events(object_id="churn@champion")
    assert [e.id for e in events] == [third, second, first]
    assert len({first, second, third}) == 3
    oldest = events[-1]
    assert (oldest.actor, oldest.action, oldest.object_type) == ("tester", "alias.set", "model")
    assert (oldest.before, oldest.after, oldest.reason) == (before, {"version": 2}, "why")
    assert (events[1].after, events[0].before, events[0].after) == (None, None, None)
    assert oldest.time.tzinfo is not None and oldest.time >= started
    assert events[0].time >= oldest.time
    assert [e.seq for e in events] == [3, 2, 1]
    assert [e.prev_hash for e in events] == [events[1].hash, oldest.hash, "0" * 64]
    report = audit.verify()
    assert report.ok and (report.count, report.head_hash) == (3, events[0].hash)
    assert report.problems == () and report.problem_count == 0


def check_audit_filters(store: MetadataStore) -> None:
    audit = store.audit
    for object_id in ("churn", "churn/1", "churn@champion", "churner", "churn_x/1", "axb/1"):
        _record(store, object_id)
    _record(store, "a_b/1", "model_version.approve", actor="alice")

    def found(**filters: object) -> list[str]:
        return sorted(e.object_id for e in audit.list_events(**filters))  # type: ignore[arg-type]

    assert found(object_id="churn") == ["churn"]
    assert found(object_prefix="churn") == ["churn", "churn/1", "churn@champion"]
    assert found(object_prefix="a_b") == ["a_b/1"]  # `_` is no wildcard
    assert found(object_prefix="a%") == []
    assert found(action="model_version.approve") == ["a_b/1"]
    assert found(actor="alice") == ["a_b/1"]
    assert found(actor="nobody") == []
    assert len(audit.list_events(limit=3)) == 3
    assert len(audit.list_events()) == 7
    assert found(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(audit.list_events(since=datetime.now(UTC) - timedelta(minutes=1))) == 7


def check_audit_pages_count_and_filter(store: MetadataStore) -> None:
    """The web UI's audit table: pages newest first, the count of all that match, and the
    filters by user, action, object (a model and what is under it) and object type."""
    audit = store.audit
    for index in range(7):
        _record(store, f"churn/{index % 3}", actor=("ana", "ben")[index % 2])
    _record(store, "churn", "deployment.update", object_type="deployment", actor="ana")
    _record(store, "churner", actor="eve")
    everything = audit.events_page(limit=4)
    assert (everything.total, everything.offset, len(everything.events)) == (9, 0, 4)
    assert [e.object_id for e in everything.events] == ["churner", "churn", "churn/0", "churn/2"]
    rest = audit.events_page(offset=4, limit=4)
    assert [e.seq for e in rest.events] == [5, 4, 3, 2] and rest.total == 9
    assert audit.events_page(offset=9).events == [] and audit.events_page(offset=50).total == 9
    by_ana = audit.events_page(actor="ana", limit=3)
    assert by_ana.total == 5 and [e.seq for e in by_ana.events] == [8, 7, 5]
    assert audit.events_page(actor="ana", offset=3).events[-1].seq == 1
    assert audit.events_page(actor="nobody") == AuditPage([], 0, 0)
    assert audit.events_page(action="deployment.update").total == 1
    under = audit.events_page(object_prefix="churn")
    assert under.total == 8 and "churner" not in {e.object_id for e in under.events}
    assert audit.events_page(object_prefix="churn/1").total == 2
    assert audit.events_page(object_prefix="chur").total == 0
    assert audit.events_page(object_type="deployment").events[0].object_id == "churn"
    both = audit.events_page(actor="ben", object_prefix="churn", action="model.update")
    assert both.total == 3 and {e.actor for e in both.events} == {"ben"}
    for bad in ({"offset": -1}, {"limit": 0}, {"limit": MAX_EVENTS + 1}):
        try:
            audit.events_page(**bad)  # type: ignore[arg-type]
        except InvalidInput:
            continue
        raise AssertionError(f"events_page accepted {bad}")


def check_concurrent_audit_writers_lose_nothing(store: MetadataStore) -> None:
    def write(writer: int) -> list[str]:
        return [_record(store, "busy", actor=f"w{writer}", after={"n": n}) for n in range(5)]

    with ThreadPoolExecutor(4) as pool:
        written = [event_id for ids in pool.map(write, range(4)) for event_id in ids]
    events = store.audit.list_events(object_id="busy")
    assert sorted(e.id for e in events) == sorted(written) and len(set(written)) == 20
    for writer in range(4):  # each writer's events, newest first, in the order it wrote them
        mine = [e.after for e in events if e.actor == f"w{writer}"]
        assert mine == [{"n": n} for n in reversed(range(5))]
    report = store.audit.verify()  # one chain: no two events after the same one
    assert report.ok and report.count == 20, report.problems
    assert len({e.prev_hash for e in events}) == 20


CHECKS: list[Check] = [
    check_audit_events_round_trip_newest_first,
    check_audit_filters,
    check_audit_pages_count_and_filter,
    check_concurrent_audit_writers_lose_nothing,
]
