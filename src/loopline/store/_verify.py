"""`ArtifactStore.check` and `repair`: read every stored byte back and say what is wrong.

Every loose blob is hashed and compared with its name; every pack index is decoded
against its pack and every blob it lists is read (coalesced reads, as `get_files` does)
and hashed. Leftovers of killed writes are listed with their age (_inventory.py).

Repairs never delete stored content that might still be wanted: abandoned writes are
removed (they were never visible); a corrupt loose blob is moved to `quarantine/`, and a
corrupt packed blob is dropped from its pack's index (the old index goes to
`quarantine/` too), so that both count as missing and the next `put_*` of the same
content stores it again (otherwise `put_*` skips it as stored). A damaged index is left
alone: without it the pack's bytes cannot be told apart.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loopline.errors import NotFound
from loopline.store._backend import Backend, pack_name
from loopline.store._get_files import read_packed
from loopline.store._hashing import hash_bytes, hash_stream
from loopline.store._inventory import ABANDONED_AFTER, Inventory, remove_leftovers, take_inventory
from loopline.store._packs import Location, decode_index, encode_index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreProblem:
    """One thing wrong in the artifact store.

    `kind`: "corrupt blob", "damaged index", "abandoned write" or "stray file";
    `name`: the object, as `blobs/...`, `packs/...`, `tmp/...`; `digest`: the blob it
    concerns, if any; `repairable`: whether `repair` fixes it.
    """

    kind: str
    name: str
    detail: str
    digest: str | None = None
    repairable: bool = False


@dataclass
class StoreCheck:
    """What `ArtifactStore.check` found: problems, and what was read."""

    problems: list[StoreProblem] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # digests stored, loose or packed
    corrupt: set[str] = field(default_factory=set)  # digests with no intact copy
    in_progress: int = 0  # recent leftovers: writes that may still be running
    loose_blobs: int = 0
    packs: int = 0
    bytes_read: int = 0
    corrupt_in_packs: dict[str, list[str]] = field(default_factory=dict)  # pack -> digests


def check(
    backend: Backend, progress: Callable[[int], None], on_total: Callable[[int], None]
) -> StoreCheck:
    """Verify every blob and pack index of the store; see the module docstring."""
    inventory = take_inventory(backend)
    found = StoreCheck(loose_blobs=len(inventory.loose), packs=len(inventory.packs))
    on_total(
        sum(item.size for item in inventory.loose.values())
        + sum(pack.size for pack in inventory.packs.values() if pack.entries is not None)
    )
    _leftovers(inventory, found)
    for item in inventory.strays:
        found.problems.append(StoreProblem("stray file", item.name, "not a blob or pack name"))
    bad: set[str] = set()
    good: set[str] = set()
    for digest, item in sorted(inventory.loose.items()):
        try:
            with backend.open_blob(digest) as file:
                actual = hash_stream(file)
        except NotFound:  # removed since it was listed (gc)
            continue
        progress(item.size)
        found.bytes_read += item.size
        if actual == digest:
            good.add(digest)
            continue
        bad.add(digest)
        detail = f"content hashes to {actual[:16]}...; moved to quarantine/ by --repair"
        found.problems.append(StoreProblem("corrupt blob", item.name, detail, digest, True))
    for pack in sorted(inventory.packs.values(), key=lambda p: p.pack_id):
        _check_pack(backend, pack.pack_id, pack.entries, pack.damage, found, good, bad, progress)
    found.present = good | bad
    found.corrupt = bad - good
    return found


def repair(backend: Backend, found: StoreCheck, *, older_than: float = ABANDONED_AFTER) -> int:
    """Fix what `check` found repairable; how many objects were repaired."""
    cutoff = time.time() - older_than
    leftovers = take_inventory(backend).leftovers
    repaired = remove_leftovers(backend, leftovers, cutoff)
    for problem in found.problems:
        if problem.kind == "corrupt blob" and problem.name.startswith("blobs/"):
            with contextlib.suppress(FileNotFoundError, NotFound):
                backend.move(problem.name, f"quarantine/{problem.name}")
                repaired += 1
    for pack_id, digests in found.corrupt_in_packs.items():
        repaired += _drop_from_index(backend, pack_id, set(digests))
    return repaired


def _leftovers(inventory: Inventory, found: StoreCheck) -> None:
    cutoff = time.time() - ABANDONED_AFTER
    for item in inventory.leftovers:
        if item.mtime > cutoff:
            found.in_progress += 1
            continue
        hours = (time.time() - item.mtime) / 3600
        detail = f"a write abandoned {hours:.1f} h ago ({item.size:,} bytes); --repair removes it"
        found.problems.append(StoreProblem("abandoned write", item.name, detail, None, True))


def _check_pack(
    backend: Backend,
    pack_id: str,
    entries: tuple[tuple[str, int, int], ...] | None,
    damage: str | None,
    found: StoreCheck,
    good: set[str],
    bad: set[str],
    progress: Callable[[int], None],
) -> None:
    index = pack_name(pack_id, "idx")
    if entries is None:
        detail = f"{damage}; its blobs count as missing (storing the data again repairs it)"
        found.problems.append(StoreProblem("damaged index", index, detail))
        return
    located = {digest: Location(pack_id, offset, length) for digest, offset, length in entries}
    try:
        for digest, where, data in read_packed(backend, located):
            progress(len(data))
            found.bytes_read += len(data)
            if len(data) == where.length and hash_bytes(data) == digest:
                good.add(digest)
                continue
            bad.add(digest)
            found.corrupt_in_packs.setdefault(pack_id, []).append(digest)
            what = "truncated" if len(data) != where.length else "content does not match"
            detail = f"at offset {where.offset}: {what}; --repair drops it from the index"
            found.problems.append(
                StoreProblem("corrupt blob", pack_name(pack_id), detail, digest, True)
            )
    except NotFound:  # removed since it was listed (gc)
        return


def _drop_from_index(backend: Backend, pack_id: str, corrupt: set[str]) -> int:
    """Rewrite a pack's index (atomically) without the `corrupt` entries, logged."""
    data = backend.read_indexes([pack_id]).get(pack_id)
    size = backend.list_packs().packs.get(pack_id)
    if data is None or size is None:
        return 0
    entries = decode_index(data, size)
    dropped = [entry for entry in entries if entry[0] in corrupt]
    for digest, offset, length in dropped:
        logger.warning(
            "dropping corrupt blob %s (offset %d, %d bytes) from the index of %s",
            digest,
            offset,
            length,
            backend.pack_location(pack_id),
        )
    if dropped:
        backend.write_index(pack_id, encode_index([e for e in entries if e[0] not in corrupt]))
    return len(dropped)
