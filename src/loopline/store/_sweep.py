"""`ArtifactStore.collect_garbage`: free the blobs nothing references, safely beside writers.

The order is what makes it safe:

1. List the store (loose blobs, packs, leftovers), noting the time `started`.
2. Only then ask the caller which digests are referenced (the mark). A blob stored
   after the listing is not a candidate at all; one stored before it and referenced
   before the mark is live.
3. Free only what is unreferenced and was last written (or touched) before
   `started - grace`. Writers touch content they reuse instead of storing again
   (_packs.py, the back-ends, `ArtifactStore.missing`), so an old blob that a writer
   has just decided to build on counts as fresh. Each removal checks the time again just
   before it happens, so a touch between the listing and the removal is seen too.

The grace period must exceed the longest stretch between "blob stored" and "the row
that references it committed" of any writer (a `data add` of a large folder: hashing,
storing and profiling it). The default, an hour, is also the age past which a write is
taken as abandoned (_inventory.py).

Packs: a pack none of whose blobs is live is removed (index first, so readers stop
seeing it, then the pack). A pack whose unreferenced bytes exceed `repack_above` of its
size has its live blobs copied (verified) into new packs, then is removed. A blob
stored in several packs is live in one of them only (packs kept as they are first), so
duplicates left by concurrent writers go away. A pack with a damaged index is never
touched: nobody can tell which of its bytes are live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loopline.errors import CorruptedData
from loopline.store._backend import Backend, pack_name
from loopline.store._get_files import read_packed
from loopline.store._hashing import hash_bytes
from loopline.store._inventory import (
    ABANDONED_AFTER,
    Inventory,
    Pack,
    remove_leftovers,
    take_inventory,
)
from loopline.store._packs import PACK_HEADER, PACK_TARGET, Location, PackIndex, encode_index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What `collect_garbage` freed (or, in a dry run, would free)."""

    blobs_freed: int  # stored copies removed: unreferenced blobs, extra copies of live ones
    packs_removed: int  # packs removed whole
    packs_repacked: int  # packs whose live blobs were copied into new packs
    packs_written: int
    bytes_freed: int  # net: removed minus written
    kept_recent: int  # unreferenced blobs kept because they are within the grace period
    kept_recent_bytes: int
    leftovers_removed: int  # abandoned writes removed
    live_blobs: int  # referenced blobs found in the store


@dataclass
class _Plan:
    loose: list[tuple[str, int]]  # (object name, size) to remove
    whole: list[Pack]  # packs to remove
    repack: list[tuple[Pack, list[tuple[str, int, int]]]]  # pack, the live entries to keep
    freed_blobs: int = 0
    kept_recent: int = 0
    kept_recent_bytes: int = 0
    live: int = 0


def collect_garbage(
    backend: Backend,
    index: PackIndex,
    referenced: Callable[[], set[str]],
    *,
    grace: float,
    dry_run: bool,
    repack_above: float,
    progress: Callable[[int], None],
) -> SweepResult:
    """Free what `referenced()` leaves out; see the module docstring."""
    started = time.time()
    inventory = take_inventory(backend)
    live = referenced()
    cutoff = started - grace
    plan = _plan(inventory, live, cutoff, repack_above)
    abandoned = min(cutoff, started - ABANDONED_AFTER)
    stale = [item for item in inventory.leftovers if item.mtime <= abandoned]
    freed = sum(size for _, size in plan.loose)
    freed += sum(pack.size + pack.index_size for pack in plan.whole)
    freed += sum(pack.size + pack.index_size for pack, _ in plan.repack)
    kept = sum(length for _, entries in plan.repack for _, _, length in entries)
    written = -(-kept // PACK_TARGET) if kept else 0
    if dry_run:
        return _result(plan, len(plan.repack), written, freed - kept, len(stale))
    freed = plan.freed_blobs = 0  # from here on: what was really removed
    for name, size in plan.loose:
        if backend.remove(name, not_after=cutoff):
            freed += size
            plan.freed_blobs += 1
    for pack in plan.whole:
        if removed := _remove_pack(backend, pack, cutoff):
            freed += removed
            plan.freed_blobs += len(pack.entries or ())
    kept_entries = {pack.pack_id: len(keep) for pack, keep in plan.repack}
    repacked, written, copied = _repack(backend, plan.repack, progress)
    for pack in repacked:
        if removed := _remove_pack(backend, pack, cutoff):
            freed += removed
            plan.freed_blobs += len(pack.entries or ()) - kept_entries[pack.pack_id]
    removed_leftovers = remove_leftovers(backend, stale, abandoned)
    index.refresh()
    return _result(plan, len(repacked), written, freed - copied, removed_leftovers)


def _plan(inventory: Inventory, live: set[str], cutoff: float, repack_above: float) -> _Plan:
    plan = _Plan([], [], [])
    for digest, item in sorted(inventory.loose.items()):
        if digest in live:
            plan.live += 1
        elif item.mtime > cutoff:
            plan.kept_recent += 1
            plan.kept_recent_bytes += item.size
        else:
            plan.loose.append((item.name, item.size))
            plan.freed_blobs += 1
    # Packs kept as they are (recent, damaged) own their live blobs first, then the others
    # in a fixed order: a live blob is kept in exactly one pack.
    readable = [pack for pack in inventory.packs.values() if pack.entries is not None]
    readable.sort(key=lambda pack: (pack.mtime <= cutoff, pack.pack_id))
    owned: set[str] = set()
    for pack in readable:
        assert pack.entries is not None
        keep = [entry for entry in pack.entries if entry[0] in live and entry[0] not in owned]
        owned.update(digest for digest, _, _ in keep)
        dead = [entry for entry in pack.entries if entry[0] not in live]
        if pack.mtime > cutoff:
            plan.kept_recent += len(dead)
            plan.kept_recent_bytes += sum(length for _, _, length in dead)
            continue
        live_bytes = sum(length for _, _, length in keep)
        if not keep:
            plan.whole.append(pack)
        elif pack.size - live_bytes > repack_above * pack.size:
            plan.repack.append((pack, keep))
        else:
            continue  # mostly live: its garbage stays until more of it is
        plan.freed_blobs += len(pack.entries) - len(keep)  # duplicates go too
    plan.live += len(owned)
    return plan


def _result(plan: _Plan, repacked: int, written: int, freed: int, leftovers: int) -> SweepResult:
    return SweepResult(
        blobs_freed=plan.freed_blobs,
        packs_removed=len(plan.whole),
        packs_repacked=repacked,
        packs_written=written,
        bytes_freed=max(freed, 0),
        kept_recent=plan.kept_recent,
        kept_recent_bytes=plan.kept_recent_bytes,
        leftovers_removed=leftovers,
        live_blobs=plan.live,
    )


def _remove_pack(backend: Backend, pack: Pack, cutoff: float) -> int:
    """Remove a pack, index first; not if a writer touched it since the listing."""
    if not backend.remove(pack_name(pack.pack_id, "idx"), not_after=cutoff):
        logger.info("kept pack %s: a writer used it meanwhile", pack.pack_id)
        return 0
    backend.remove(pack_name(pack.pack_id))
    return pack.size + pack.index_size


def _repack(
    backend: Backend,
    work: list[tuple[Pack, list[tuple[str, int, int]]]],
    progress: Callable[[int], None],
) -> tuple[list[Pack], int, int]:
    """Copy the live blobs of `work` into new packs; (packs copied, packs written, bytes).

    Each blob is verified as it is read: a corrupt one stops gc before anything of its
    pack is removed (run `loopline fsck`).
    """
    done: list[Pack] = []
    written = copied = 0
    batch: list[tuple[Pack, list[tuple[str, int, int]]]] = []
    size = 0
    for number, (pack, keep) in enumerate(work):
        batch.append((pack, keep))
        size += sum(length for _, _, length in keep)
        if size >= PACK_TARGET or number == len(work) - 1:
            copied += _write_pack(backend, batch, progress)
            written += 1
            done.extend(source for source, _ in batch)
            batch, size = [], 0
    return done, written, copied


def _write_pack(
    backend: Backend,
    batch: Iterable[tuple[Pack, list[tuple[str, int, int]]]],
    progress: Callable[[int], None],
) -> int:
    """One new pack holding the given live blobs, verified; its size."""
    sink = backend.new_pack()
    entries: list[tuple[str, int, int]] = []
    offset = len(PACK_HEADER)
    try:
        sink.write([PACK_HEADER])
        for pack, keep in batch:
            located = {d: Location(pack.pack_id, start, length) for d, start, length in keep}
            for digest, where, data in read_packed(backend, located):
                if len(data) != where.length or hash_bytes(data) != digest:
                    raise CorruptedData(
                        f"gc stopped: blob {digest} in {backend.pack_location(pack.pack_id)} "
                        "is corrupt; nothing of that pack was removed",
                        hint="run `loopline fsck` to see every damaged blob",
                    )
                sink.write([data])  # both sinks copy or write it at once
                entries.append((digest, offset, len(data)))
                offset += len(data)
                progress(len(data))
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    backend.write_index(sink.pack_id, encode_index(entries))
    return offset
