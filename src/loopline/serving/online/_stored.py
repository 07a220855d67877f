"""Stored deployments as a source of endpoints for the prediction service.

The service polls `load(known)` every few seconds; one cheap query reads the current
revision of each deployment, and only a deployment whose revision changed is read and
loaded. Loaded models are kept by (version, runtime), so a change that adds
a canary loads only the canary; versions no deployment uses any more are let go.

A revision that fails to load (a version whose package is gone, a store that is down)
is tried again after 1 poll interval, then 2, 4, ... up to `RETRY_MAX_SECONDS`, not at
every poll: each try reads the package and logs a warning. A newer revision is tried
at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from time import monotonic
from typing import TYPE_CHECKING

from loopline.errors import LooplineError, NotFound
from loopline.serving.deployments import DeploymentSpec
from loopline.serving.online._endpoints import EndpointModels
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.serving.runtime import ServedModel

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0


class StoredDeployments:
    """The named deployments of the current project, reloaded when they change."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        runtime: str | None = None,
        trusted: Sequence[str] = (),
        allow_pickle: bool = False,
    ):
        """`runtime` ("auto", "native" or "onnx") overrides each deployment's own;
        `trusted` and `allow_pickle` load every version as `loopline.models.load` does."""
        if not names:
            raise NotFound("nothing to serve: name at least one deployment")
        self._names = [check_deployment_name(name) for name in dict.fromkeys(names)]
        self.poll_seconds: float | None = poll_seconds
        self._runtime = runtime
        self._trusted = list(trusted)
        self._allow_pickle = allow_pickle
        self._models: dict[tuple[str, str], ServedModel] = {}
        self._in_use: dict[str, set[tuple[str, str]]] = {}
        # a revision that failed to load -> (revision, when to try again, the last delay)
        self._failed: dict[str, tuple[int, float, float]] = {}
        # the last load error of each deployment -> (revision, message, when), until a
        # revision loads (what the server's heartbeat reports, see _heartbeat)
        self.errors: dict[str, tuple[int, str, datetime]] = {}
        # load() runs in the service's polling thread, which does not inherit the caller's
        # context: the stores (a Client's or the default) are taken now
        from loopline.project import stores

        self._stores = stores()

    def names(self) -> set[str]:
        return set(self._names)

    def load(self, known: Mapping[str, int | None]) -> dict[str, EndpointModels]:
        """The deployments whose revision differs from `known`, with their models loaded.

        At startup (nothing known) every deployment must exist; later, a deployment that
        disappeared keeps being served as it was.
        """
        from loopline.project import Scope, bound

        with bound(Scope(self._stores)):
            return self._load(known)

    def _load(self, known: Mapping[str, int | None]) -> dict[str, EndpointModels]:
        opened = self._stores
        revisions = opened.metadata.deployments.revisions(self._names)
        if not known:
            missing = [name for name in self._names if name not in revisions]
            if missing:
                raise NotFound(
                    f"no deployment named {', '.join(repr(n) for n in missing)}",
                    hint="create it with `loopline deploy create NAME --model REF`",
                )
        changed: dict[str, EndpointModels] = {}
        for name in self._names:
            revision = revisions.get(name)
            if revision is None or known.get(name) == revision:
                continue
            failed = self._failed.get(name)
            if failed is not None and failed[0] == revision and monotonic() < failed[1]:
                continue
            try:
                record = opened.metadata.deployments.get(name)
                spec = DeploymentSpec.from_dict(record.config)
                changed[name] = self._endpoint(name, spec, record.revision)
                self._failed.pop(name, None)
                self.errors.pop(name, None)
            except LooplineError as exc:
                self.errors[name] = (revision, str(exc), datetime.now(UTC))
                if not known:
                    raise  # at startup: nothing to fall back on
                # one broken deployment must not hold back the others' changes
                delay = self.poll_seconds or DEFAULT_POLL_SECONDS
                if failed is not None and failed[0] == revision:
                    delay = min(failed[2] * 2, RETRY_MAX_SECONDS)
                self._failed[name] = (revision, monotonic() + delay, delay)
                log.warning(
                    "deployment '%s' revision %d could not be loaded; still serving the "
                    "previous one, trying again in %.0f s: %s",
                    name,
                    revision,
                    delay,
                    exc,
                )
        self._forget_unused()
        return changed

    def _endpoint(self, name: str, spec: DeploymentSpec, revision: int) -> EndpointModels:
        runtime = self._runtime or spec.runtime
        keys = {ref: (ref, runtime) for ref in spec.versions}
        models = {ref: self._model(key) for ref, key in keys.items()}
        self._in_use[name] = set(keys.values())
        return EndpointModels(
            primary=models[spec.model.model],
            canary=None if spec.canary is None else models[spec.canary.model],
            weight=spec.weight,
            shadow=None if spec.shadow is None else models[spec.shadow.model],
            ab=tuple(models[variant.model] for variant in spec.ab),
            key=spec.key,
            revision=revision,
            strict_inputs=spec.strict_inputs,
        )

    def _model(self, key: tuple[str, str]) -> ServedModel:
        from loopline.serving.runtime import load_served

        found = self._models.get(key)
        if found is None:
            ref, runtime = key
            found = self._models[key] = load_served(
                ref,
                runtime=runtime,
                warm_up=False,
                trusted=self._trusted,
                allow_pickle=self._allow_pickle,
            )
            log.info("loaded %s via %s", found.version_ref, found.runtime)
        return found

    def _forget_unused(self) -> None:
        used = set().union(*self._in_use.values()) if self._in_use else set()
        for key in [key for key in self._models if key not in used]:
            del self._models[key]
