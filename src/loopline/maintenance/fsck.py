"""`loopline fsck`: is everything the project recorded still stored, and intact?

Three passes. The artifact store reads back every blob and pack index it holds
(`ArtifactStore.check`); every digest the metadata store references is looked up, and
every manifest among them opened and its files looked up too (_live.py); leftovers of
killed writes are listed. `repair=True` removes writes abandoned over an hour ago and
moves corrupt blobs aside (`ArtifactStore.repair`). Referenced data is never deleted:
a corrupt blob that something needs stays a problem after the repair, since only
storing the data again can fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loopline.maintenance._live import live_set, local_stores
from loopline.project import Stores


@dataclass(frozen=True)
class Problem:
    """One thing wrong: `kind` ("corrupt blob", "missing blob", "unreadable manifest",
    "damaged index", "abandoned write", "stray file"), `where` (a stored object, or the
    record that needs it) and `detail`."""

    kind: str
    where: str
    detail: str


@dataclass(frozen=True)
class FsckReport:
    """What `fsck` found: the problems left, those repaired, and what was checked."""

    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    in_progress: int = 0  # leftovers younger than an hour: writes that may be running
    loose_blobs: int = 0
    packs: int = 0
    referenced: int = 0  # distinct blobs the metadata needs, manifests' files included
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(
    *,
    repair: bool = False,
    stores: Stores | None = None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> FsckReport:
    """Verify the project's artifact store against itself and against the metadata.

    `progress` is called with byte counts as blobs are read back, `on_total` once with
    the total. With `repair`, fixes what can be fixed without losing data (see the
    module docstring); the report lists those problems under `repaired`.

    Raises:
        InvalidInput: the project works through a platform server (fsck runs where the
            server's stores are).
    """
    opened = local_stores("fsck", stores)
    check = opened.artifacts.check(progress=progress, on_total=on_total)
    live = live_set(opened)
    found: list[tuple[Problem, bool]] = []  # (problem, repairable)
    for problem in check.problems:
        detail = problem.detail
        needed = problem.digest is not None and problem.digest in live.owners
        if needed:
            assert problem.digest is not None
            detail = f"{detail}; needed by {live.owner(problem.digest)}"
        # A corrupt blob something needs is moved aside by a repair, but stays lost.
        fixable = problem.repairable and not (needed and problem.digest in check.corrupt)
        found.append((Problem(problem.kind, problem.name, detail), fixable))
    absent = live.digests - check.present
    for digest in sorted(d for d in absent if not opened.artifacts.exists(d)):
        where = live.owner(digest)
        found.append((Problem("missing blob", where, f"blob {digest} is not stored"), False))
    for ref, why in live.unreadable:
        if ref.digest in check.present and ref.digest not in check.corrupt:
            found.append((Problem("unreadable manifest", ref.owner, why), False))
    repaired = []
    if repair and check.problems:
        opened.artifacts.repair(check)
        repaired = [problem for problem, fixable in found if fixable]
    problems = [problem for problem, fixable in found if not (repair and fixable)]
    return FsckReport(
        problems=problems,
        repaired=repaired,
        in_progress=check.in_progress,
        loose_blobs=check.loose_blobs,
        packs=check.packs,
        referenced=len(live.owners),
        bytes_read=check.bytes_read,
    )
