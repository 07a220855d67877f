"""The audit log's hash chain on SQLite and PostgreSQL: every event is chained by the
documented hash, concurrent writers never fork it, and `verify` finds an edited, deleted,
reordered or forged event that raw SQL left behind (and says what it cannot find)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import pytest
from sqlalchemy import text

from loopline.errors import InvalidInput
from loopline.store import MetadataStore
from loopline.store._engine import write_transaction
from loopline.store.audit import record_event

GENESIS = "0" * 64


def _record(store: MetadataStore, n: int, **kw: Any) -> str:
    values: dict[str, Any] = {
        "actor": "tester",
        "action": "alias.set",
        "object_type": "model",
        "object_id": f"churn@a{n}",
        "after": {"version": n},
        **kw,
    }
    return store.audit.record(**values)


def _sql(store: MetadataStore, statement: str, **params: Any) -> list[Any]:
    """Raw SQL straight at the database, as someone with write access would."""
    with store.db.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def _rows(store: MetadataStore) -> list[dict[str, Any]]:
    with store.db.read() as conn:
        found = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings()
        return [dict(row) for row in found]


def _documented_hash(row: dict[str, Any]) -> str:
    """The hash as store/_audit_chain.py documents it, written again independently."""
    moment = row["time"]
    if isinstance(moment, str):  # SQLite hands back the stored text
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fields = {key: row[key] for key in ("seq", "id", "actor", "action", "object_type")}
    fields |= {key: row[key] for key in ("object_id", "before_json", "after_json", "reason")}
    fields |= {"prev_hash": row["prev_hash"]}
    fields["time"] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return blake3.blake3(b"loopline-audit-v1\n" + body.encode()).hexdigest()


def _kinds(store: MetadataStore, **kw: Any) -> list[tuple[int | None, str]]:
    report = store.audit.verify(**kw)
    assert report.problem_count == len(report.problems) or "max_problems" in kw
    return [(p.seq, p.kind) for p in report.problems]


def test_every_event_is_chained_to_the_one_before_by_the_documented_hash(
    store: MetadataStore,
) -> None:
    assert store.audit.verify().ok and store.audit.verify().head_hash == GENESIS
    _record(store, 1, before={"note": 'ünï \u2028 "q"'}, reason="why")
    with store.db.write("two events in one change") as conn:
        record_event(conn, actor="bob", action="a.one", object_type="model", object_id="x")
        record_event(conn, actor="bob", action="a.two", object_type="model", object_id="x")
    _record(store, 4, actor="carol")
    rows = _rows(store)
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    assert [row["action"] for row in rows] == ["alias.set", "a.one", "a.two", "alias.set"]
    previous = GENESIS
    for row in rows:
        assert row["prev_hash"] == previous and row["hash"] == _documented_hash(row)
        previous = row["hash"]
    report = store.audit.verify()
    assert report.ok and report.count == 4 and report.problems == ()
    assert (report.head_seq, report.head_hash) == (4, previous)
    assert _sql(store, "SELECT seq, hash FROM audit_head") == [(4, previous)]
    newest = store.audit.list_events(limit=1)[0]
    assert (newest.seq, newest.hash, newest.prev_hash) == (4, previous, rows[2]["hash"])


EDITS = [
    ("actor", "mallory"),
    ("action", "alias.delete"),
    ("object_id", "churn@other"),
    ("before_json", '{"version": 0}'),
    ("after_json", None),
    ("reason", "nothing to see"),
    ("id", "f" * 32),
]


def test_an_edited_field_is_reported_at_its_event_and_nowhere_else(store: MetadataStore) -> None:
    for n in range(5):
        _record(store, n, reason="first")
    original = _rows(store)[2]
    for column, value in EDITS:
        _sql(store, f"UPDATE audit_events SET {column} = :value WHERE seq = 3", value=value)
        report = store.audit.verify()
        assert not report.ok and report.count == 5, column
        assert [(p.seq, p.kind) for p in report.problems] == [(3, "edited")], column
        assert report.problems[0].message.startswith("event #3 (")
        assert "was edited: its fields do not match its hash" in report.problems[0].message
        restore = original[column]
        _sql(store, f"UPDATE audit_events SET {column} = :value WHERE seq = 3", value=restore)
        assert store.audit.verify().ok, column


def test_an_edited_time_is_an_edited_event(store: MetadataStore) -> None:
    for n in range(3):
        _record(store, n)
    _sql(store, "UPDATE audit_events SET time = :t WHERE seq = 2", t="2020-01-01 00:00:00.000000")
    assert _kinds(store) == [(2, "edited")]


def test_a_deleted_event_is_a_gap_and_deleted_last_events_miss_from_the_head(
    store: MetadataStore,
) -> None:
    for n in range(6):
        _record(store, n)
    _sql(store, "DELETE FROM audit_events WHERE seq IN (3, 4)")
    report = store.audit.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "missing")]
    assert report.problems[0].message == "events #3..#4 are missing: deleted"
    _sql(store, "DELETE FROM audit_events WHERE seq = 6")
    report = store.audit.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "missing"), (None, "missing")]
    assert report.problems[1].message == "event #6 is missing from the end: deleted"
    _sql(store, "DELETE FROM audit_events WHERE seq = 1")
    assert _kinds(store)[0] == (1, "missing")


def test_reordered_events_are_reported_where_they_were_written(store: MetadataStore) -> None:
    for n in range(5):
        _record(store, n)
    for old, new in ((2, 100), (4, 2), (100, 4)):  # swap the positions of #2 and #4
        _sql(store, "UPDATE audit_events SET seq = :new WHERE seq = :old", old=old, new=new)
    report = store.audit.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "reordered"), (4, "reordered")]
    assert "was moved: it was written as #4" in report.problems[0].message
    assert "was moved: it was written as #2" in report.problems[1].message


def test_a_forged_hash_is_found_by_the_next_events_link(store: MetadataStore) -> None:
    for n in range(5):
        _record(store, n)
    row = _rows(store)[2]
    forged = {**row, "actor": "mallory"}
    _sql(
        store,
        "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 3",
        h=_documented_hash(forged),
    )
    report = store.audit.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "forged")]
    assert report.problems[0].message.startswith("event #3 has a forged hash: event #4 was")


def test_a_chain_rewritten_after_an_edit_is_caught_only_by_an_expected_head(
    store: MetadataStore,
) -> None:
    """The documented limit: hashes carry no secret, so a full rewrite verifies, unless
    the head was kept elsewhere."""
    for n in range(3):
        _record(store, n)
    kept = store.audit.verify().head_hash  # recorded outside the database
    for n in range(3, 5):
        _record(store, n)
    grown = store.audit.verify(expect_head=kept)
    assert grown.ok and grown.expected_head_seq == 3 and grown.head_seq == 5
    assert store.audit.verify(expect_head=kept.upper()).ok
    previous = GENESIS
    for row in _rows(store):  # rewrite from #2 on: edit it, re-hash every event, move the head
        row["prev_hash"] = previous
        if row["seq"] == 2:
            row["actor"] = "mallory"
        previous = _documented_hash(row)
        _sql(
            store,
            "UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s",
            a=row["actor"],
            p=row["prev_hash"],
            h=previous,
            s=row["seq"],
        )
    _sql(store, "UPDATE audit_head SET hash = :h", h=previous)
    assert store.audit.verify().ok  # undetectable without the kept head
    report = store.audit.verify(expect_head=kept)
    assert [(p.seq, p.kind) for p in report.problems] == [(None, "expected-head")]
    assert "is in no event: the history up to it was rewritten" in report.problems[0].message


def test_problems_are_capped_but_all_counted(store: MetadataStore) -> None:
    for n in range(12):
        _record(store, n)
    _sql(store, "UPDATE audit_events SET reason = 'x' WHERE seq > 2")
    report = store.audit.verify(max_problems=4)
    assert report.problem_count == 10
    assert [(p.seq, p.kind) for p in report.problems] == [(n, "edited") for n in (3, 4, 5, 6)]


def test_the_head_record_deleted_or_bypassed_is_reported(store: MetadataStore) -> None:
    for n in range(3):
        _record(store, n)
    row = _rows(store)[-1]
    extra = {**row, "seq": 4, "id": "e" * 32, "prev_hash": row["hash"]}
    extra["hash"] = _documented_hash(extra)
    columns = ", ".join(extra)
    _sql(
        store,
        f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in extra)})",
        **extra,
    )
    report = store.audit.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(None, "head")]
    assert "event #4 is after the recorded head (#3)" in report.problems[0].message
    _sql(store, "DELETE FROM audit_events WHERE seq = 4")
    _sql(store, "DELETE FROM audit_head")
    assert _kinds(store) == [(None, "head")]
    _record(store, 9)  # the registry keeps working: the head is rebuilt from the last event
    report = store.audit.verify()
    assert report.ok and report.count == 4


def test_a_rolled_back_change_leaves_no_event_and_the_head_unmoved(store: MetadataStore) -> None:
    _record(store, 1)
    head = store.audit.verify().head_hash

    def failing_change() -> None:
        with store.db.write("failing change") as conn:
            record_event(conn, actor="a", action="x", object_type="model", object_id="m")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    report = store.audit.verify()
    assert report.ok and (report.count, report.head_hash) == (1, head)


def test_an_event_recorded_outside_a_store_write_is_chained_at_once(store: MetadataStore) -> None:
    _record(store, 1)
    with write_transaction(store.db.engine) as conn:
        record_event(conn, actor="a", action="x", object_type="model", object_id="m")
        record_event(conn, actor="a", action="y", object_type="model", object_id="m")
    report = store.audit.verify()
    assert report.ok and report.count == 3


def test_concurrent_writers_of_events_and_registry_changes_never_fork_the_chain(
    store: MetadataStore,
) -> None:
    start = threading.Barrier(6)
    manifest: dict[str, Any] = {"files": []}

    def events(writer: int) -> int:
        start.wait()
        for n in range(15):
            _record(store, n, actor=f"w{writer}")
        return 15

    def versions(writer: int) -> int:
        start.wait()
        for n in range(4):
            store.models.create_version(
                f"m{writer % 2}",
                flavor="sklearn",
                package_hash=f"{writer}{n}".ljust(64, "0"),
                size_bytes=1,
                signature={},
                manifest=manifest,
                created_by=f"v{writer}",
            )
        return 4  # one event each, plus the model's creation (counted below)

    jobs: list[Callable[[int], int]] = [events] * 4 + [versions] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        written = sum(pool.map(lambda job: job[1](job[0]), enumerate(jobs)))
    models = {e.object_id for e in store.audit.list_events(action="model.create", limit=100)}
    total = written + len(models)
    report = store.audit.verify()
    assert report.ok and report.count == total == 60 + 8 + 2, report.problems
    rows = _rows(store)
    assert [row["seq"] for row in rows] == list(range(1, total + 1))
    assert len({row["prev_hash"] for row in rows}) == total  # no two share a predecessor


def test_bad_verify_arguments_are_invalid_input(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")  # checked before any query
    bad: list[dict[str, Any]] = [
        {"expect_head": "abc"},
        {"expect_head": "g" * 64},
        {"expect_head": "0" * 63 + "\x00"},
        {"expect_head": "../" + "0" * 61},
        {"expect_head": 12},
        {"max_problems": 0},
        {"max_problems": -1},
        {"max_problems": True},
        {"max_problems": 2.5},
        {"max_problems": float("nan")},
    ]
    for kw in bad:
        with pytest.raises(InvalidInput):
            store.audit.verify(**kw)
    store.close()


@pytest.mark.empty_store  # the migration itself is under test
def test_the_migration_chains_existing_events_in_their_order(store_uri: str) -> None:
    """A store from before the chain (revision 0009) with events, one of them out of
    time order and with gaps in `seq` as PostgreSQL's sequence leaves them."""
    from alembic import command
    from alembic.config import Config

    from loopline.store._engine import create_store_engine
    from loopline.store._migrate import MIGRATIONS

    engine = create_store_engine(store_uri)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
        for seq, actor in ((1, "ann"), (2, "ben"), (5, "cy"), (9, "dee")):
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, id, time, actor, action, object_type, "
                    "object_id, before_json, after_json, reason) VALUES (:seq, :id, :time, "
                    ":actor, 'alias.set', 'model', 'churn@champion', NULL, :after, NULL)"
                ),
                {
                    "seq": seq,
                    "id": f"{seq:032x}",
                    "time": f"2026-01-{10 - seq:02d} 12:00:{seq:02d}.123456+00:00",
                    "actor": actor,
                    "after": json.dumps({"version": seq}),
                },
            )
    engine.dispose()
    store = MetadataStore(store_uri)  # migrates to head
    try:
        report = store.audit.verify()
        assert report.ok and report.count == 4 and report.head_seq == 4
        rows = _rows(store)
        assert [(r["seq"], r["actor"]) for r in rows] == [
            (1, "ann"),
            (2, "ben"),
            (3, "cy"),
            (4, "dee"),
        ]
        assert all(r["hash"] == _documented_hash(r) for r in rows)
        _record(store, 5, actor="eve")
        report = store.audit.verify()
        assert report.ok and report.count == 5
        assert [e.actor for e in store.audit.list_events()] == ["eve", "dee", "cy", "ben", "ann"]
    finally:
        store.close()


def test_writers_racing_on_an_emptied_store_put_back_one_head(store: MetadataStore) -> None:
    """A store emptied by deleting every table's rows has no head row: that is an empty
    chain, and the first writers, however many at once, restore one head between them."""
    _record(store, 0)
    _sql(store, "DELETE FROM audit_events")
    _sql(store, "DELETE FROM audit_head")
    assert store.audit.verify().ok
    start = threading.Barrier(6)

    def write(writer: int) -> None:
        start.wait()
        for n in range(5):
            _record(store, n, actor=f"w{writer}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(6)))
    report = store.audit.verify()
    assert report.ok and report.count == 30, report.problems
    assert _sql(store, "SELECT seq FROM audit_head") == [(30,)]
