"""Moving versions between this project's artifact store and a remote one (e.g. S3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopline.data import _manifest, _pointer
from loopline.data.versions import resolve
from loopline.errors import InvalidInput
from loopline.project import stores
from loopline.store import ArtifactStore, DatasetVersion

Progress = Callable[[int], None]


@dataclass(frozen=True)
class TransferResult:
    versions: int
    blobs: int
    bytes: int


def push(
    remote: str, refs: Sequence[str] = (), *, progress: Progress | None = None
) -> TransferResult:
    """Copy versions (default: every version of every dataset) to the `remote` store."""
    opened = stores()
    versions = _versions(refs)
    target = _open(remote)
    hashes = _hashes(opened.artifacts, versions)
    copied = opened.artifacts.copy_to(target, hashes, progress=progress)
    return TransferResult(len(versions), len(hashes), copied)


def pull(
    remote: str, targets: Sequence[str] = (), *, progress: Progress | None = None
) -> TransferResult:
    """Fetch versions from `remote` into the local store.

    `targets` are pointer files (which work without the database: a fresh clone's
    pointers name their manifests) or `NAME@VERSION` references; default: every version
    the database knows.
    """
    opened = stores()
    source = _open(remote)
    manifests: list[str] = []
    for target in targets or [v.ref for v in _versions(())]:
        if target.endswith(_pointer.SUFFIX):
            manifests.append(_pointer.read(Path(target)).manifest)
        else:
            manifests.append(resolve(target).manifest_hash)
    source.copy_to(opened.artifacts, manifests, progress=progress)
    hashes: set[str] = set()
    for manifest_hash in manifests:
        hashes.update(_manifest.load(opened.artifacts, manifest_hash).blob_hashes())
    copied = source.copy_to(opened.artifacts, hashes, progress=progress)
    return TransferResult(len(manifests), len(hashes), copied)


def _versions(refs: Sequence[str]) -> list[DatasetVersion]:
    if refs:
        return [resolve(ref) for ref in refs]
    datasets = stores().metadata.datasets
    return [v for d in datasets.list_datasets() for v in datasets.list_versions(d.name)]


def _hashes(artifacts: ArtifactStore, versions: Sequence[DatasetVersion]) -> set[str]:
    hashes: set[str] = set()
    for version in versions:
        hashes.add(version.manifest_hash)
        if version.profile_hash:
            hashes.add(version.profile_hash)
        hashes.update(_manifest.load(artifacts, version.manifest_hash).blob_hashes())
    return hashes


def _open(remote: str) -> ArtifactStore:
    if not isinstance(remote, str) or not remote:
        raise InvalidInput("--remote needs a location, e.g. s3://bucket/prefix")
    settings = stores().settings
    return ArtifactStore(remote, s3_endpoint_url=settings.s3_endpoint_url)
