"""The process's project: its stores, opened once and shared by every area."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.config import STATE_DIR, Settings, load_settings
from loopline.store import ArtifactStore

if TYPE_CHECKING:
    from loopline.store import MetadataStore


class Stores:
    """A project's metadata store, artifact store and the settings they came from.

    The metadata store is opened (and migrated) on first use of `metadata`: importing
    SQLAlchemy and opening the database cost more than an unchanged `loopline data add`,
    which can answer without them (see `store._quick`).
    """

    def __init__(
        self, settings: Settings, artifacts: ArtifactStore, metadata: MetadataStore | None = None
    ) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self._metadata = metadata
        self._opening = threading.Lock()

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store, opened (and migrated) on first use."""
        with self._opening:
            if self._metadata is None:
                from loopline.store.metadata import MetadataStore

                self._metadata = MetadataStore(self.settings.store_uri)
            return self._metadata

    def close(self) -> None:
        """Close the metadata store if it was opened (a later use reopens its engine)."""
        with self._opening:
            if self._metadata is not None:
                self._metadata.close()

    def __repr__(self) -> str:
        return f"Stores(root={str(self.settings.root)!r})"


_lock = threading.Lock()
_current: Stores | None = None
_in_use: dict[int, int] = {}  # id(Stores) -> active runs writing through them


def stores() -> Stores:
    """The stores of the current project, opened (and migrated) on first use.

    Without a project, `./.loopline` is created, as `loopline init` would.
    """
    global _current
    with _lock:
        if _current is None:
            _current = open_stores(load_settings())
        return _current


def open_stores(settings: Settings) -> Stores:
    if settings.store_uri.startswith("sqlite:///") or "://" not in settings.artifact_uri:
        (settings.root / STATE_DIR).mkdir(parents=True, exist_ok=True)
    return Stores(
        settings=settings,
        artifacts=ArtifactStore(settings.artifact_uri, s3_endpoint_url=settings.s3_endpoint_url),
    )


def configure(
    *,
    project: str | Path | None = None,
    store_uri: str | None = None,
    artifact_uri: str | None = None,
) -> Stores:
    """Point this process at another project or store (ends nothing already running).

    `project` is a directory whose settings are loaded; `store_uri` / `artifact_uri`
    override them. Configuring the same settings again keeps the open stores; the
    previous stores are closed unless an active run still writes through them.
    """
    global _current
    settings = load_settings(Path(project) if project is not None else None)
    if store_uri is not None or artifact_uri is not None:
        settings = replace(
            settings,
            store_uri=store_uri or settings.store_uri,
            artifact_uri=artifact_uri or settings.artifact_uri,
        )
    with _lock:
        if _current is not None and _current.settings == settings:
            return _current
    opened = open_stores(settings)
    with _lock:
        previous, _current = _current, opened
        idle = previous is not None and not _in_use.get(id(previous))
    if previous is not None and idle:
        previous.close()
    return opened


def close() -> None:
    """Close the current stores (the next use opens them again)."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous.close()


def retain(opened: Stores) -> None:
    """Mark stores as used by an active run, so configure() leaves them open."""
    with _lock:
        _in_use[id(opened)] = _in_use.get(id(opened), 0) + 1


def release(opened: Stores) -> bool:
    """Undo retain(); True when nothing uses the stores any more and they are not
    the current ones, so the caller should close them."""
    with _lock:
        left = _in_use.get(id(opened), 0) - 1
        if left > 0:
            _in_use[id(opened)] = left
            return False
        _in_use.pop(id(opened), None)
        return opened is not _current
