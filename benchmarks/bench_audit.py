"""Audit log benchmark: appending events (each in its own transaction, as a registry change
writes one) and verifying the hash chain.

Figures:
- 10,000 `audit.record` calls one after another, on SQLite and on PostgreSQL;
- the same 10,000 from 4 threads at once (the chain's head is a point every writer
  passes through);
- `AuditLog.verify()` over 100,000 events on SQLite (written in transactions of 1,000).

Reference: a plain sqlite3 INSERT + COMMIT of the same row, 10,000 times (WAL, synchronous
NORMAL, as the store runs).

Run: `python benchmarks/bench_audit.py [--store-uri postgresql+psycopg://...]`.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, print_table

APPENDS = 10_000
VERIFIED = 100_000


def _record(store: object, n: int, actor: str = "bench") -> None:
    store.audit.record(  # type: ignore[attr-defined]
        actor=actor,
        action="alias.set",
        object_type="model",
        object_id=f"churn@a{n % 50}",
        before={"version": n},
        after={"version": n + 1},
        reason="benchmark",
    )


def _appends(uri: str, threads: int = 1) -> float:
    """Seconds for APPENDS events written by `threads` writers at once."""
    from loopline.store import MetadataStore

    store = MetadataStore(uri)
    try:
        _record(store, -1)  # warm the connection pool and statement cache
        each = APPENDS // threads

        def write(writer: int) -> None:
            for n in range(each):
                _record(store, n, actor=f"w{writer}")

        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(write, range(threads)))
        return time.perf_counter() - start
    finally:
        store.close()


def _raw_sqlite(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, time TEXT, actor TEXT, "
        "action TEXT, object_type TEXT, object_id TEXT, before_json TEXT, after_json TEXT, "
        "reason TEXT)"
    )
    start = time.perf_counter()
    for n in range(APPENDS):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"{n:032x}",
                "2026-01-01 00:00:00.000000",
                "bench",
                "alias.set",
                "model",
                f"churn@a{n % 50}",
                f'{{"version": {n}}}',
                f'{{"version": {n + 1}}}',
                "benchmark",
            ),
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def _verify(uri: str) -> tuple[float, float]:
    """Seconds to write VERIFIED events (in transactions of 1,000) and to verify them."""
    from loopline.store import MetadataStore
    from loopline.store.audit import record_event

    store = MetadataStore(uri)
    try:
        start = time.perf_counter()
        for first in range(0, VERIFIED, 1_000):
            with store.db.write("bench") as conn:
                for n in range(first, first + 1_000):
                    record_event(
                        conn,
                        actor="bench",
                        action="alias.set",
                        object_type="model",
                        object_id=f"churn@a{n % 50}",
                        after={"version": n},
                    )
        written = time.perf_counter() - start
        verify = getattr(store.audit, "verify", None)
        if verify is None:
            return written, float("nan")  # before hash chaining: nothing to verify
        start = time.perf_counter()
        report = verify()
        seconds = time.perf_counter() - start
        assert report.ok and report.count == VERIFIED, report
        return written, seconds
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-uri", help="a PostgreSQL store URI (an empty schema)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = _raw_sqlite(folder / "raw.db")
        ours = _appends(f"sqlite:///{folder / 'one.db'}")
        rows.append(Row("10,000 appends, SQLite", ours * 1000, raw * 1000, "-"))
        ours = _appends(f"sqlite:///{folder / 'four.db'}", threads=4)
        rows.append(Row("10,000 appends by 4 threads, SQLite", ours * 1000, raw * 1000, "-"))
        if args.store_uri:
            ours = _appends(args.store_uri)
            rows.append(Row("10,000 appends, PostgreSQL", ours * 1000, raw * 1000, "-"))
            ours = _appends(args.store_uri, threads=4)
            rows.append(
                Row("10,000 appends by 4 threads, PostgreSQL", ours * 1000, raw * 1000, "-")
            )
        written, verified = _verify(f"sqlite:///{folder / 'verify.db'}")
        rows.append(
            Row(
                "write 100,000 events (1,000 a transaction), SQLite",
                written * 1000,
                raw * 1000,
                "-",
            )
        )
        rows.append(Row("verify 100,000 events, SQLite", verified * 1000, raw * 1000, "-"))
    print_table("Audit log", rows)


if __name__ == "__main__":
    main()
