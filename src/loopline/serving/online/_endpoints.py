"""What an endpoint serves: the models by role (`EndpointModels`), where they come from
(`Source`, `FixedModels`), and what a prediction renders from (`Answer`). Which version
answers a request is routing (see _routing)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopline.errors import InvalidInput
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.serving.runtime import Prediction, ServedModel


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
class Answer:
    """A prediction ready to render: for whom, by which version, and what it said."""

    deployment: str
    model: ServedModel
    prediction: Prediction
    request_id: str
    context: Any
