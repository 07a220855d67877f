"""A version's manifest: relative POSIX paths -> content ids, stored as a JSON blob.

    {"format": "loopline-manifest-1", "layout": "folder",
     "files": [{"path": "part-0.csv", "size": 5120, "hash": "<64 hex>",
                "chunks": [["<64 hex>", 1048576], ...]}]}

`layout` says whether the version was one file or a folder of files. `chunks` is
present only for large files stored as content-defined chunks. Entries are sorted by
path and serialized compactly, so equal content gives an equal manifest hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from loopline.errors import CorruptedData
from loopline.store import ArtifactStore, Blob, StoredFile, validate_logical_path

FORMAT = "loopline-manifest-1"


@dataclass(frozen=True)
class Entry:
    path: str
    file: StoredFile

    @property
    def blob_hashes(self) -> tuple[str, ...]:
        return tuple(blob.hash for blob in self.file.blobs)


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]
    folder: bool = True  # False: the version is one file, entries[0]

    @property
    def total_size(self) -> int:
        return sum(e.file.size for e in self.entries)

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    def blob_hashes(self) -> Iterator[str]:
        for entry in self.entries:
            yield from entry.blob_hashes

    def to_bytes(self) -> bytes:
        files = []
        for entry in sorted(self.entries, key=lambda e: e.path):
            item: dict[str, object] = {
                "path": entry.path,
                "size": entry.file.size,
                "hash": entry.file.hash,
            }
            if entry.file.chunks:
                item["chunks"] = [[c.hash, c.size] for c in entry.file.chunks]
            files.append(item)
        body = {"format": FORMAT, "layout": "folder" if self.folder else "file", "files": files}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str) -> Manifest:
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT or body.get("layout") not in ("file", "folder"):
                raise ValueError(f"unknown manifest format {body.get('format')!r}")
            entries = tuple(
                Entry(
                    validate_logical_path(item["path"]),
                    StoredFile(
                        hash=item["hash"],
                        size=int(item["size"]),
                        chunks=tuple(Blob(h, int(s)) for h, s in item.get("chunks", [])),
                    ),
                )
                for item in body["files"]
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptedData(f"manifest {origin} is unreadable: {exc}") from exc
        return cls(entries, folder=body["layout"] == "folder")


def build(paths: Sequence[str], files: Sequence[StoredFile], *, folder: bool) -> Manifest:
    return Manifest(tuple(Entry(p, f) for p, f in zip(paths, files, strict=True)), folder)


def load(artifacts: ArtifactStore, manifest_hash: str) -> Manifest:
    return Manifest.from_bytes(artifacts.get_bytes(manifest_hash), origin=manifest_hash[:12])
