"""The metadata store over HTTP: the same interface as `MetadataStore`, answered by a
platform server (`loopline server`), so every area above works unchanged remotely.

`RemoteMetadataStore(url, token)` has the sub-stores of MetadataStore (`runs`,
`datasets`, `models`, `reviews`, `deployments`, `servers`, `predictions`, `monitoring`,
`audit`), each in its own module here calling the routes of `loopline.server.api`.
Records travel as JSON (`_codec`): the server encodes what its store returned, the
client decodes it into the same dataclasses.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import Any

from loopline.redact import redact_uri
from loopline.store.remote._session import RemoteSession

# sub-store name -> (module under loopline.store.remote, class)
AREAS: dict[str, tuple[str, str]] = {
    "runs": ("runs", "RemoteRunStore"),
    "datasets": ("datasets", "RemoteDatasetStore"),
    "models": ("models", "RemoteModelStore"),
    "reviews": ("reviews", "RemoteReviewStore"),
    "deployments": ("deployments", "RemoteDeploymentStore"),
    "servers": ("servers", "RemoteServerStore"),
    "predictions": ("predictions", "RemotePredictionStore"),
    "monitoring": ("monitoring", "RemoteMonitorStore"),
    "audit": ("audit", "RemoteAuditLog"),
}


class RemoteMetadataStore:
    """Every record of a project, through a loopline server's HTTP API."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.session = RemoteSession(url, token)
        self.uri = self.session.url

    def __repr__(self) -> str:
        return f"RemoteMetadataStore({redact_uri(self.uri)!r})"

    def close(self) -> None:
        self.session.close()

    def __getattr__(self, name: str) -> Any:
        # the sub-stores, built on first use (each imports only its own module)
        if name not in AREAS:
            raise AttributeError(name)
        module_name, class_name = AREAS[name]
        module = importlib.import_module(f"loopline.store.remote.{module_name}")
        area = getattr(module, class_name)(self.session)
        setattr(self, name, area)
        return area

    @cached_property
    def server_version(self) -> str:
        """The server's loopline version (from /api/v1/health)."""
        answer = self.session.call("GET", "/health")
        return str(answer.get("version", "unknown"))


__all__ = ["RemoteMetadataStore", "RemoteSession"]
