"""A remote metadata store over the test's platform server, for the conformance checks."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from loopline.store import MetadataStore
from loopline.store.remote import RemoteMetadataStore


@contextmanager
def remote_store(platform_server: Any, served: Any) -> Iterator[MetadataStore]:
    """A RemoteMetadataStore whose server serves `served` (a project's Stores).

    Until the remote audit log exists (brief H), the checks read the audit events the
    server wrote from the served store itself: what the server recorded, read directly.
    """
    with platform_server.serving(served) as url:
        store = RemoteMetadataStore(url)
        if importlib.util.find_spec("loopline.store.remote.audit") is None:
            store.audit = served.metadata.audit
        try:
            yield cast(MetadataStore, store)
        finally:
            store.close()
