"""What an artifact store holds, listed once for `fsck` and `gc`: loose blobs, packs with
their index entries, and the leftovers of writes that never finished.

A leftover is a temp file (`tmp/*.part`, local), an unfinished multipart upload (S3), a
pack without its index (its writer died between the two) or an index without its pack.
Each is also what a write in progress looks like, so only leftovers older than an hour
(`ABANDONED_AFTER`) count as abandoned: the age `clean_temp` has always used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopline.store._backend import Backend, StoredObject
from loopline.store._packs import DamagedIndex, decode_index

ABANDONED_AFTER = 3600.0  # seconds: a write unfinished for this long was abandoned
_BLOB_NAME = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{62})")


@dataclass(frozen=True)
class Pack:
    """A pack with its index: `entries` is None when the index is damaged (`damage` says
    why); `mtime` is the later of the two files' times (see _packs.py)."""

    pack_id: str
    size: int
    index_size: int
    mtime: float
    entries: tuple[tuple[str, int, int], ...] | None
    damage: str | None = None


@dataclass(frozen=True)
class Inventory:
    loose: dict[str, StoredObject]  # digest -> its object
    packs: dict[str, Pack]
    leftovers: list[StoredObject]
    strays: list[StoredObject]  # files under blobs/ whose name is not a digest

    @property
    def packed(self) -> set[str]:
        """Every digest listed by a readable index."""
        return {digest for pack in self.packs.values() for digest, _, _ in pack.entries or ()}


def take_inventory(backend: Backend) -> Inventory:
    """List the store (indexes are read; blob bytes are not)."""
    loose: dict[str, StoredObject] = {}
    strays = []
    for item in backend.list_objects("blobs"):
        match = _BLOB_NAME.fullmatch(item.name)
        if match is None:
            strays.append(item)
        else:
            loose[match.group(1) + match.group(2)] = item
    files: dict[str, dict[str, StoredObject]] = {"pack": {}, "idx": {}}
    leftovers = [*backend.list_objects("tmp"), *backend.list_objects("uploads")]
    for item in backend.list_objects("packs"):
        stem, _, suffix = item.name.removeprefix("packs/").rpartition(".")
        if suffix in files and "/" not in stem:
            files[suffix][stem] = item
        else:
            strays.append(item)
    packs, indexes = files["pack"], files["idx"]
    leftovers += [packs[p] for p in sorted(packs.keys() - indexes.keys())]
    leftovers += [indexes[p] for p in sorted(indexes.keys() - packs.keys())]
    complete = sorted(packs.keys() & indexes.keys())
    read = backend.read_indexes(complete)
    found = {}
    for pack_id in complete:
        if pack_id not in read:  # removed since it was listed
            continue
        pack, index = packs[pack_id], indexes[pack_id]
        entries: tuple[tuple[str, int, int], ...] | None = None
        damage = None
        try:
            entries = tuple(decode_index(read[pack_id], pack.size))
        except DamagedIndex as exc:
            damage = str(exc)
        found[pack_id] = Pack(
            pack_id, pack.size, index.size, max(pack.mtime, index.mtime), entries, damage
        )
    return Inventory(loose, found, leftovers, strays)


def remove_leftovers(backend: Backend, leftovers: list[StoredObject], not_after: float) -> int:
    """Remove the leftovers last written at or before `not_after`; how many."""
    removed = 0
    for item in leftovers:
        if item.mtime <= not_after and backend.remove(item.name, not_after=not_after):
            removed += 1
    return removed
