"""A project's opened stores, and which stores the code running now uses.

Every area asks `stores()` for its stores. A `loopline.Client` binds its own for the
duration of each call (a ContextVar, so two clients in two threads never see each
other's); outside a client call, `stores()` is the default client's, which the
module-level `ll.*` functions use: opened on first use from the project around the
working directory, re-resolved by `configure()`, and re-resolved when the process has
changed directory into another project since the first was discovered.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from loopline.config import STATE_DIR, Settings, find_project_root, load_settings
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
                self._metadata = _open_metadata(self.settings)
            return self._metadata

    def close(self) -> None:
        """Close the metadata store if it was opened (a later use reopens its engine), and
        the artifact store's connections (a server's; a folder or S3 has none to close)."""
        with self._opening:
            if self._metadata is not None:
                self._metadata.close()
        self.artifacts.close()

    def __repr__(self) -> str:
        return f"Stores(root={str(self.settings.root)!r})"


_lock = threading.Lock()
_current: Stores | None = None
# the working directory the default stores were discovered from; None when they were
# configured explicitly or named by LOOPLINE_STORE_URI (then a chdir changes nothing)
_discovered_in: str | None = None
_in_use: dict[int, int] = {}  # id(Stores) -> active runs and clients using them


def _open_metadata(settings: Settings) -> MetadataStore:
    """The database named by the settings, or the platform server's records over HTTP
    (the same interface: the areas above can't tell them apart)."""
    if settings.server is not None:
        from loopline.store.remote import RemoteMetadataStore

        return cast("MetadataStore", RemoteMetadataStore(settings.server, settings.token))
    from loopline.store.metadata import MetadataStore

    return MetadataStore(settings.store_uri)


class Scope:
    """What a Client binds for the duration of a call: its stores, and an identity other
    areas key their per-client state on (tracking keys each client's active runs on it)."""

    __slots__ = ("__weakref__", "stores")

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def __repr__(self) -> str:
        return f"Scope({self.stores!r})"


_bound: ContextVar[Scope | None] = ContextVar("loopline_scope", default=None)


def stores() -> Stores:
    """The stores the running code uses: those bound by a Client call, else the default.

    Without a project, `./.loopline` is created, as `loopline init` would.
    """
    scope = _bound.get()
    if scope is not None:
        return scope.stores
    return default_stores()


def current_scope() -> Scope | None:
    """The scope bound by the Client call running now; None for the default client."""
    return _bound.get()


def default_stores() -> Stores:
    """The default client's stores (what `ll.*` uses), opened on first use."""
    current = _current
    if current is not None and (_discovered_in is None or _discovered_in == _cwd()):
        return current
    return _discover()


@contextmanager
def bound(scope: Scope) -> Iterator[Scope]:
    """Make `stores()` return the scope's stores in this context (thread, task) until the
    block ends. A thread started inside does not inherit it (Python 3.11): pass the stores
    explicitly, or run the thread in `contextvars.copy_context()`."""
    token = _bound.set(scope)
    try:
        yield scope
    finally:
        _bound.reset(token)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the working directory was deleted: keep what was found
        return _discovered_in


def _discover() -> Stores:
    """Open the stores of the project around the working directory as the default.

    Called on first use, and when the process changed directory since the default was
    discovered: a script that sets up two projects in two folders must not write the
    second one's models into the first. A move to a folder outside any project keeps
    the default.
    """
    global _current, _discovered_in
    where = _cwd()
    previous = _current
    if previous is not None and find_project_root() is None:
        # a folder outside any project (a script writing its outputs elsewhere): the
        # project found before stays, and no `.loopline` is created here
        _discovered_in = where
        return previous
    settings = load_settings()
    with _lock:
        previous = _current
        if previous is not None and previous.settings == settings:
            _discovered_in = _follows_cwd(where)
            return previous
    opened = open_stores(settings)
    with _lock:
        if _current is not previous and _current is not None:  # another thread was first
            return _current
        _current, _discovered_in = opened, _follows_cwd(where)
        idle = previous is not None and not _in_use.get(id(previous))
    if previous is not None and idle:
        previous.close()
    return opened


def _follows_cwd(where: str | None) -> str | None:
    """The directory to watch, unless the store was named by LOOPLINE_STORE_URI."""
    return None if os.environ.get("LOOPLINE_STORE_URI") else where


def open_stores(settings: Settings) -> Stores:
    """The stores the settings name: with a platform server, its records and blobs over
    HTTP (the server's address is the artifact store's too); otherwise the database and
    the artifact store themselves."""
    if settings.server is not None:
        artifacts = ArtifactStore(settings.server, token=settings.token)
        return Stores(settings=settings, artifacts=artifacts)
    if settings.store_uri.startswith("sqlite:///") or "://" not in settings.artifact_uri:
        (settings.root / STATE_DIR).mkdir(parents=True, exist_ok=True)
    return Stores(
        settings=settings,
        artifacts=ArtifactStore(settings.artifact_uri, s3_endpoint_url=settings.s3_endpoint_url),
    )


def project_settings(
    project: str | Path | None = None,
    *,
    store_uri: str | None = None,
    artifact_uri: str | None = None,
    server: str | None = None,
    token: str | None = None,
) -> Settings:
    """The settings of `project` (default: around the working directory), with `store_uri`,
    `artifact_uri`, `server` and `token` overriding them."""
    settings = load_settings(Path(project) if project is not None else None)
    if store_uri is not None or artifact_uri is not None:
        settings = replace(
            settings,
            store_uri=store_uri or settings.store_uri,
            artifact_uri=artifact_uri or settings.artifact_uri,
        )
    if server is not None or token is not None:
        settings = replace(
            settings, server=server or settings.server, token=token or settings.token
        )
    return settings


def configure(
    *,
    project: str | Path | None = None,
    store_uri: str | None = None,
    artifact_uri: str | None = None,
    server: str | None = None,
    token: str | None = None,
) -> Stores:
    """Point this process at another project or store (ends nothing already running).

    `project` is a directory whose settings are loaded; `store_uri` / `artifact_uri`
    override them; `server` (with `token`) works through a platform server instead.
    Configuring the same settings again keeps the open stores; the previous stores are
    closed unless an active run still writes through them.
    """
    global _current, _discovered_in
    settings = project_settings(
        project, store_uri=store_uri, artifact_uri=artifact_uri, server=server, token=token
    )
    with _lock:
        if _current is not None and _current.settings == settings:
            _discovered_in = None
            return _current
    opened = open_stores(settings)
    with _lock:
        previous, _current, _discovered_in = _current, opened, None
        idle = previous is not None and not _in_use.get(id(previous))
    if previous is not None and idle:
        previous.close()
    return opened


def close() -> None:
    """Close the current stores (the next use opens them again)."""
    global _current, _discovered_in
    with _lock:
        previous, _current, _discovered_in = _current, None, None
    if previous is not None:
        previous.close()


def retain(opened: Stores) -> None:
    """Mark stores as used by an active run or a client, so configure() leaves them open."""
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
