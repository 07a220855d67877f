"""What an endpoint serves and how it picks who answers: the models by role
(`EndpointModels`), where they come from (`Source`, `FixedModels`), and the routing of
one request to a version (`Endpoint.route`: canary weight, A/B key, shadow copy)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopline.errors import InvalidInput
from loopline.serving._batching import MicroBatcher
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.serving._inputs import Block
    from loopline.serving.runtime import Prediction, ServedModel

# An A/B key that is not one of the model's inputs comes in this request header.
ROUTING_KEY_HEADER = "x-routing-key"
_BUCKETS = 10_000  # canary weights are resolved to 0.01 %


@dataclass(frozen=True)
class EndpointModels:
    """What one endpoint serves, by role: `primary` answers unless the `canary` takes
    `weight` percent of requests or `ab` splits them by the value of `key`; `shadow`
    gets a copy of every request. `revision` is the stored deployment's revision;
    `strict_inputs` refuses request fields that are not inputs (else dropped)."""

    primary: ServedModel
    canary: ServedModel | None = None
    weight: float = 0.0
    shadow: ServedModel | None = None
    ab: tuple[ServedModel, ...] = ()
    key: str | None = None
    revision: int | None = None
    strict_inputs: bool = False

    @property
    def models(self) -> tuple[ServedModel, ...]:
        found = [self.primary, *self.ab]
        found += [m for m in (self.canary, self.shadow) if m is not None]
        return tuple({id(m): m for m in found}.values())


@runtime_checkable
class Source(Protocol):
    """Where the service learns what to serve.

    `load(known)` returns the endpoints whose configuration differs from `known`
    ({name: revision} of what is served now; {} at startup), with models loaded but not
    necessarily warmed up; it runs in a worker thread. `poll_seconds` is how often to
    ask again (None: never, the models are fixed).
    """

    poll_seconds: float | None

    def load(self, known: Mapping[str, int | None]) -> dict[str, EndpointModels]: ...

    def names(self) -> set[str] | None:
        """The endpoint names this source serves, when known before loading."""
        ...


class FixedModels:
    """A source of fixed models: {name: ServedModel}, or a callable returning them."""

    poll_seconds: float | None = None

    def __init__(
        self, models: Mapping[str, ServedModel] | Callable[[], Mapping[str, ServedModel]]
    ) -> None:
        if isinstance(models, Mapping):
            if not models:
                raise InvalidInput("nothing to serve: give at least one model")
            for name in models:
                check_deployment_name(name)
        self._models = models

    def names(self) -> set[str] | None:
        return set(self._models) if isinstance(self._models, Mapping) else None

    def load(self, known: Mapping[str, int | None]) -> dict[str, EndpointModels]:
        if known:
            return {}
        models = self._models if isinstance(self._models, Mapping) else self._models()
        return {check_deployment_name(n): EndpointModels(m) for n, m in models.items()}


Models = Mapping[str, "ServedModel"] | Callable[[], Mapping[str, "ServedModel"]] | Source


@dataclass(frozen=True)
class Target:
    """One model version an endpoint can send requests to, with its batcher."""

    model: ServedModel
    batcher: MicroBatcher


@dataclass(frozen=True)
class Answer:
    """A prediction ready to render: for whom, by which version, and what it said."""

    deployment: str
    model: ServedModel
    prediction: Prediction
    request_id: str
    context: Any


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
