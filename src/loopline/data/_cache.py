"""The stat cache: files whose size, mtime and inode are unchanged since the last add are
not read or hashed again (as git's index and DVC's state do).

It lives in the project's local state folder (`.loopline/cache/stat.db`, a SQLite file)
and is only an accelerator: deleting it costs one re-hash, never correctness, because
an entry is trusted only when size, mtime (ns) and inode all match, and the caller
checks that the blobs it names are still stored.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from loopline.store import Blob, StoredFile

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stat_cache ("
    " path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, stored TEXT)"
)


class StatCache:
    def __init__(self, state_dir: Path) -> None:
        folder = state_dir / "cache"
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "stat.db", timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def lookup(self, files: Sequence[tuple[str, os.stat_result]]) -> dict[str, StoredFile]:
        """The cached content id of each file whose stat still matches."""
        found: dict[str, StoredFile] = {}
        wanted = dict(files)
        if not wanted:
            return found
        # Only the rows in the range of paths asked about (the primary key is ordered).
        low, high = min(wanted), max(wanted)
        rows: Iterable[tuple[str, int, int, int, str]] = self._db.execute(
            "SELECT path, size, mtime_ns, inode, stored FROM stat_cache WHERE path BETWEEN ? AND ?",
            (low, high),
        )
        for key, size, mtime_ns, inode, stored in rows:
            st = wanted.get(key)
            if st is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == (
                size,
                mtime_ns,
                inode,
            ):
                found[key] = _decode(stored)
        return found

    def update(self, entries: Sequence[tuple[str, os.stat_result, StoredFile]]) -> None:
        rows = [
            (path, st.st_size, st.st_mtime_ns, st.st_ino, _encode(stored))
            for path, st, stored in entries
        ]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


def _encode(stored: StoredFile) -> str:
    return json.dumps([stored.hash, stored.size, [[c.hash, c.size] for c in stored.chunks]])


def _decode(text: str) -> StoredFile:
    digest, size, chunks = json.loads(text)
    return StoredFile(digest, size, tuple(Blob(h, s) for h, s in chunks))
