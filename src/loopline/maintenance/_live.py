"""The digests a project still needs: every reference in the metadata store, and every
blob that the manifests among them list (a dataset version's files and chunks, a model
package's files)."""

from __future__ import annotations

from dataclasses import dataclass, field

from loopline.errors import CorruptedData, InvalidInput, LooplineError
from loopline.project import Stores, stores
from loopline.store.references import (
    DATASET_MANIFEST,
    MODEL_PACKAGE,
    Reference,
    artifact_references,
)


@dataclass
class LiveSet:
    """`owners` names the first row or file that needs each digest and how many more do;
    `unreadable` lists the manifests that could not be read, with why."""

    owners: dict[str, tuple[str, int]] = field(default_factory=dict)
    unreadable: list[tuple[Reference, str]] = field(default_factory=list)

    @property
    def digests(self) -> set[str]:
        return set(self.owners)

    def add(self, digest: str, owner: str) -> None:
        first, more = self.owners.get(digest, (owner, -1))
        self.owners[digest] = (first, more + 1)

    def owner(self, digest: str) -> str:
        first, more = self.owners[digest]
        return first if not more else f"{first} and {more} more"


def local_stores(command: str, given: Stores | None = None) -> Stores:
    """The stores `gc` or `fsck` works on: `given`, else the current project's.

    Both read every row and blob file where they are and rewrite them in place; a
    project working through a platform server has neither here (its metadata store has
    no database to read the references from), so they run where the server runs.

    Raises:
        InvalidInput: the project's records and blobs are on a platform server.
    """
    from loopline.redact import redact_uri

    opened = given or stores()
    if opened.settings.server is not None:
        raise InvalidInput(
            f"this project's records and blobs are on the server at "
            f"{redact_uri(opened.settings.server)}",
            hint=f"run `loopline {command}` in the server's project, where it runs",
        )
    return opened


def live_set(opened: Stores, *, without_runs: frozenset[str] = frozenset()) -> LiveSet:
    """Everything the metadata references (leaving out `without_runs`), manifests opened."""
    from loopline.data import read_manifest
    from loopline.models import read_package

    found = LiveSet()
    references = artifact_references(opened.metadata, without_runs=without_runs)
    opened_manifests: dict[str, list[tuple[str, str]]] = {}  # digest -> (blob, path) pairs
    for ref in references:
        found.add(ref.digest, ref.owner)
        if ref.holds not in (DATASET_MANIFEST, MODEL_PACKAGE):
            continue
        listed = opened_manifests.get(ref.digest)
        if listed is None:
            try:
                if ref.holds == DATASET_MANIFEST:
                    manifest = read_manifest(opened.artifacts, ref.digest)
                    listed = [(b, e.path) for e in manifest.entries for b in e.blob_hashes]
                else:
                    package = read_package(ref.digest, opened)
                    listed = [(blob, path) for path, (blob, _) in package.files.items()]
            except LooplineError as exc:
                found.unreadable.append((ref, exc.message))
                listed = []
            opened_manifests[ref.digest] = listed
        for blob, path in listed:
            found.add(blob, f"{ref.owner.removesuffix(' manifest')} file {path}")
    return found


def require_readable(found: LiveSet) -> LiveSet:
    """`found`, unless a manifest could not be read: then what it lists is unknown, and
    freeing anything could free its files."""
    if found.unreadable:
        ref, why = found.unreadable[0]
        raise CorruptedData(
            f"gc stopped before changing anything: the {ref.owner} cannot be read ({why})",
            hint="run `loopline fsck` to see every damaged object",
        )
    return found
