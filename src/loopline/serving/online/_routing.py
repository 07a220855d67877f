"""Routing: which endpoint a request names (the server's default when it names none), and
which version of that endpoint answers it (`Endpoint.route`: canary weight, A/B key; a
shadow gets a copy). A name that is not served is NotFound, or NotReady while loading."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError, NotFound, NotReady
from loopline.serving._redact import clip
from loopline.serving.online._batching import MicroBatcher

if TYPE_CHECKING:
    from loopline.predictions import Block
    from loopline.serving.runtime import ServedModel

# An A/B key that is not one of the model's inputs comes in this request header.
ROUTING_KEY_HEADER = "x-routing-key"
DEFAULT_DEPLOYMENT = "default"
_BUCKETS = 10_000  # canary weights are resolved to 0.01 %


@dataclass(frozen=True)
class Target:
    """One model version an endpoint can send requests to, with its batcher."""

    model: ServedModel
    batcher: MicroBatcher


@dataclass(frozen=True)
class Endpoint:
    """A named endpoint and the targets behind it; `route` picks who answers."""

    name: str
    primary: Target
    canary: Target | None = None
    weight: float = 0.0
    shadow: Target | None = None
    ab: tuple[Target, ...] = ()
    key: str | None = None
    revision: int | None = None
    targets: tuple[Target, ...] = field(default=(), compare=False)
    strict_inputs: bool = False

    def route(self, request_id: str, block: Block, headers: Mapping[str, str]) -> Target:
        """The target that answers this request.

        Canary: a stable hash of the request id decides, so `weight` percent of requests
        reach the canary. A/B: a stable hash of the key's value (the first row's, or the
        X-Routing-Key header when the key is not a model input) picks the variant, so one
        key always reaches the same version, in every worker and after restarts; requests
        without a key are spread by request id.
        """
        if self.canary is not None:
            bucket = zlib.crc32(request_id.encode()) % _BUCKETS
            return self.canary if bucket < self.weight * (_BUCKETS / 100) else self.primary
        if self.ab:
            value = _key_value(self.key, block, headers)
            text = request_id if value is None else repr(value)
            return self.ab[zlib.crc32(text.encode()) % len(self.ab)]
        return self.primary

    @property
    def ready(self) -> bool:
        return all(target.model.ready for target in self.targets)

    def describe(self) -> dict[str, Any]:
        """Who serves what, for /health/ready."""
        body: dict[str, Any] = {
            "model_version": self.primary.model.version_ref,
            "runtime": self.primary.model.runtime,
            "ready": self.ready,
        }
        if self.revision is not None:
            body["revision"] = self.revision
        if self.canary is not None:
            body["canary"] = {"model_version": self.canary.model.version_ref, "weight": self.weight}
        if self.ab:
            body["ab"] = {"model_versions": [t.model.version_ref for t in self.ab], "key": self.key}
        if self.shadow is not None:
            body["shadow"] = {"model_version": self.shadow.model.version_ref}
        return body


def _key_value(key: str | None, block: Block, headers: Mapping[str, str]) -> Any:
    if key is not None and key in block.names:
        return block.first(key)
    return headers.get(ROUTING_KEY_HEADER)


def strategy_note(endpoint: Endpoint) -> str:
    parts = []
    if endpoint.canary is not None:
        parts.append(f"canary {endpoint.canary.model.version_ref} at {endpoint.weight:g}%")
    if endpoint.ab:
        versions = " | ".join(t.model.version_ref for t in endpoint.ab)
        parts.append(f"A/B {versions} by {endpoint.key}")
    if endpoint.shadow is not None:
        parts.append(f"shadow {endpoint.shadow.model.version_ref}")
    return "" if not parts else "; " + ", ".join(parts)


def default_name(known: set[str], default: str | None) -> str:
    """The endpoint a request that names none goes to (MLflow's `/invocations`): the
    server's default, else "default" or the only one served; NotFound when several are
    served and none is the default."""
    if default is not None:
        return default
    if DEFAULT_DEPLOYMENT in known or len(known) < 2:
        return DEFAULT_DEPLOYMENT if len(known) != 1 else next(iter(known))
    raise NotFound(
        f"/invocations needs a default deployment: this server serves {', '.join(sorted(known))}",
        hint="start the server with --default NAME, or POST to /v1/deployments/NAME/invocations",
    )


def not_served(name: str, known: set[str], failure: str | None, loaded: bool) -> LooplineError:
    """Why no endpoint answers to `name`: the load failed or is not done (NotReady), or
    no such endpoint is served (NotFound)."""
    if failure is not None:
        return NotReady(failure, hint="the server log says why; fix it and restart")
    if name in known or not loaded:
        return NotReady(
            f"deployment '{clip(name)}' is still loading",
            hint="retry when /health/ready answers 200",
        )
    return NotFound(
        f"no deployment named '{clip(name)}'",
        hint=f"this server serves {', '.join(sorted(known))}" if known else None,
    )
