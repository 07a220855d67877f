"""Named deployments: which model versions an endpoint serves, under which strategy.

    create_deployment("churn", "churn@champion")             one version answers
    update_deployment("churn", canary="churn@challenger", weight=10)
    update_deployment("churn", shadow="churn@challenger")     also run off the response path
    update_deployment("churn", ab=["churn/4", "churn/5"], key="customer_id")
    promote_deployment("churn")                               the canary becomes the model
    rollback_deployment("churn")                              back to the previous configuration

References are resolved when the configuration is written: the stored configuration
names versions ("churn/3"), so a deployment never changes because an alias moved, and a
running server (`loopline deploy serve`) that notices a new revision loads exactly what
was reviewed. Every change is a new revision with its audit event; rollback undoes the
last change that has not been undone yet, like an editor's undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from loopline.errors import Conflict, InvalidInput
from loopline.store.deployments import (
    DeploymentRecord,
    DeploymentRevision,
    check_deployment_name,
)

if TYPE_CHECKING:
    from loopline.project import Stores
    from loopline.registry import ModelVersion

KEY_NAME_LIMIT = 128


@dataclass(frozen=True)
class Variant:
    """One model version in a deployment: `model` is the pinned version ("churn/3"),
    `ref` the reference it was given as ("churn@champion")."""

    model: str
    ref: str

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "ref": self.ref}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Variant:
        return cls(model=str(body["model"]), ref=str(body.get("ref", body["model"])))


@dataclass(frozen=True)
class DeploymentSpec:
    """A deployment's configuration.

    `model` answers every request, except the `weight` percent routed to `canary`, or,
    with `ab`, the variant chosen by a hash of the request's `key` value (the first
    variant is `model`). `shadow` also receives every request off the response path; its
    outputs are logged, never returned. `runtime` is "auto" (ONNX, converted at load when
    there is no export, else native), "onnx" or "native" (see loopline.serving._runtime);
    `prefer_onnx` is False exactly when it is "native". `strict_inputs` refuses (422)
    request fields that are not model inputs, which are otherwise dropped and named in
    the response's X-Dropped-Fields header.
    """

    model: Variant
    canary: Variant | None = None
    weight: float = 0.0
    shadow: Variant | None = None
    ab: tuple[Variant, ...] = field(default=())
    key: str | None = None
    prefer_onnx: bool = True
    strict_inputs: bool = False
    runtime: str = "auto"

    def __post_init__(self) -> None:
        # the older `prefer_onnx=False` and `runtime="native"` say the same thing
        if not self.prefer_onnx or self.runtime == "native":
            object.__setattr__(self, "runtime", "native")
            object.__setattr__(self, "prefer_onnx", False)

    @property
    def strategy(self) -> str:
        """ "single", "canary" or "ab", with "+shadow" when a shadow runs."""
        base = "canary" if self.canary else "ab" if self.ab else "single"
        return base + ("+shadow" if self.shadow else "")

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The versions that answer requests (the shadow excluded)."""
        if self.ab:
            return self.ab
        return (self.model, self.canary) if self.canary else (self.model,)

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the deployment loads (answering ones first, then the shadow)."""
        found = [variant.model for variant in self.variants]
        if self.shadow is not None:
            found.append(self.shadow.model)
        return tuple(dict.fromkeys(found))

    def role_of(self, version: str) -> str | None:
        """What `version` ("churn/3") does here: "model", "canary", "A/B" or "shadow"
        (None when the deployment does not load it)."""
        if self.ab and any(variant.model == version for variant in self.ab):
            return "A/B"
        if not self.ab and self.model.model == version:
            return "model"
        if self.canary is not None and self.canary.model == version:
            return "canary"
        if self.shadow is not None and self.shadow.model == version:
            return "shadow"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "canary": None if self.canary is None else self.canary.to_dict(),
            "weight": self.weight,
            "shadow": None if self.shadow is None else self.shadow.to_dict(),
            "ab": [variant.to_dict() for variant in self.ab],
            "key": self.key,
            "prefer_onnx": self.prefer_onnx,
            "strict_inputs": self.strict_inputs,
            "runtime": self.runtime,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> DeploymentSpec:
        def optional(value: Any) -> Variant | None:
            return None if value is None else Variant.from_dict(value)

        return cls(
            model=Variant.from_dict(body["model"]),
            canary=optional(body.get("canary")),
            weight=float(body.get("weight") or 0.0),
            shadow=optional(body.get("shadow")),
            ab=tuple(Variant.from_dict(item) for item in body.get("ab") or ()),
            key=body.get("key"),
            prefer_onnx=bool(body.get("prefer_onnx", True)),
            strict_inputs=bool(body.get("strict_inputs", False)),
            runtime=str(body.get("runtime") or "auto"),
        )

    def describe(self) -> str:
        """One line: 'churn/3 + canary churn/4 at 10% + shadow churn/5'."""
        if self.ab:
            text = "A/B " + " | ".join(v.model for v in self.ab) + f" by {self.key}"
        else:
            text = self.model.model
            if self.canary is not None:
                text += f" + canary {self.canary.model} at {self.weight:g}%"
        if self.shadow is not None:
            text += f" + shadow {self.shadow.model}"
        return text


@dataclass(frozen=True)
class Deployment:
    """A stored deployment: its name, current revision and configuration."""

    name: str
    revision: int
    spec: DeploymentSpec
    created_by: str
    created_at: Any
    updated_at: Any

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> Deployment:
        return cls(
            name=record.name,
            revision=record.revision,
            spec=DeploymentSpec.from_dict(record.config),
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


def create_deployment(
    name: str,
    model: str,
    *,
    prefer_onnx: bool = True,
    strict_inputs: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    runtime: str = "auto",
) -> Deployment:
    """A new deployment serving `model` (a reference, pinned to its version now);
    `strict_inputs` and `runtime` as in DeploymentSpec.

    Raises Conflict if the name is taken, NotFound for an unknown model, Conflict for an
    archived version.
    """
    from loopline.config import current_user
    from loopline.project import stores
    from loopline.serving._runtime import check_runtime

    check_deployment_name(name)
    opened = stores()
    runtime = check_runtime(runtime)  # before the model is looked up
    spec = DeploymentSpec(
        model=_variant(model, opened),
        prefer_onnx=prefer_onnx,
        strict_inputs=strict_inputs,
        runtime=runtime,
    )
    record = opened.metadata.deployments.create(
        name, spec.to_dict(), actor=actor or current_user(), reason=reason
    )
    return Deployment.from_record(record)


def update_deployment(
    name: str,
    *,
    model: str | None = None,
    canary: str | None = None,
    weight: float | None = None,
    shadow: str | None = None,
    ab: Sequence[str] | None = None,
    key: str | None = None,
    no_canary: bool = False,
    no_shadow: bool = False,
    prefer_onnx: bool | None = None,
    strict_inputs: bool | None = None,
    reason: str | None = None,
    actor: str | None = None,
    runtime: str | None = None,
) -> Deployment:
    """Change a deployment's model, strategy or options; the result is its next revision.

    `canary` with `weight` (0-100, percent of requests) routes some traffic to another
    version; `shadow` mirrors every request to a version whose answers are only logged;
    `ab` with `key` splits requests between versions by a hash of the key's value
    (sticky: the same key always reaches the same version). `no_canary` / `no_shadow`
    remove them. A canary and an A/B split exclude each other; every version must take
    the same inputs as the deployment's model.
    """
    from loopline.config import current_user
    from loopline.project import stores
    from loopline.serving._runtime import check_runtime

    opened = stores()
    current = get_deployment(name, opened=opened)
    spec = current.spec
    if model is not None:
        spec = replace(spec, model=_variant(model, opened), ab=(), key=None)
    if no_canary:
        spec = replace(spec, canary=None, weight=0.0)
    if no_shadow:
        spec = replace(spec, shadow=None)
    if canary is not None or weight is not None:
        spec = _with_canary(spec, canary, weight, opened)
    if shadow is not None:
        spec = replace(spec, shadow=_variant(shadow, opened))
    if ab is not None or key is not None:
        spec = _with_ab(spec, ab, key, opened)
    if prefer_onnx is not None:
        spec = replace(spec, prefer_onnx=prefer_onnx, runtime="auto" if prefer_onnx else "native")
    if runtime is not None:
        spec = replace(spec, runtime=check_runtime(runtime), prefer_onnx=runtime != "native")
    if strict_inputs is not None:
        spec = replace(spec, strict_inputs=strict_inputs)
    if spec == current.spec:
        raise InvalidInput(
            f"nothing to change: deployment '{name}' already serves {spec.describe()}"
        )
    _check_same_inputs(spec, opened)
    return _write(name, spec, "update", current.revision, actor or current_user(), reason, opened)


def promote_deployment(
    name: str,
    *,
    variant: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Deployment:
    """The canary (or, for an A/B split, `variant`) becomes the deployment's only model;
    the shadow stays. Raises Conflict when there is nothing to promote."""
    from loopline.config import current_user
    from loopline.project import stores

    opened = stores()
    current = get_deployment(name, opened=opened)
    spec = current.spec
    if spec.ab:
        if variant is None:
            choices = ", ".join(v.model for v in spec.ab)
            raise InvalidInput(
                f"deployment '{name}' splits A/B between {choices}: say which one wins",
                hint=f"loopline deploy promote {name} --variant {spec.ab[-1].model}",
            )
        wanted = _variant(variant, opened).model
        chosen = next((v for v in spec.ab if v.model == wanted), None)
        if chosen is None:
            raise InvalidInput(f"{wanted} is not one of the A/B variants of '{name}'")
    elif spec.canary is not None:
        chosen = spec.canary
    else:
        raise Conflict(
            f"deployment '{name}' has no canary or A/B split to promote",
            hint=f"start one with `loopline deploy update {name} --canary REF --weight 10`",
        )
    promoted = replace(spec, model=chosen, canary=None, weight=0.0, ab=(), key=None)
    return _write(
        name, promoted, "promote", current.revision, actor or current_user(), reason, opened
    )


def rollback_deployment(
    name: str, *, reason: str | None = None, actor: str | None = None
) -> Deployment:
    """Back to the configuration before the last change not yet rolled back (repeated
    rollbacks walk further back). Raises Conflict at the first configuration."""
    from loopline.config import current_user
    from loopline.project import stores

    opened = stores()
    history = opened.metadata.deployments.history(name)
    stack = undo_stack(history)
    if len(stack) < 2:
        raise Conflict(
            f"deployment '{name}' has no earlier configuration to roll back to",
            hint=f"`loopline deploy history {name}` lists its revisions",
        )
    previous = DeploymentSpec.from_dict(stack[-2].config)
    return _write(
        name, previous, "rollback", history[0].revision, actor or current_user(), reason, opened
    )


def undo_stack(history: Sequence[DeploymentRevision]) -> list[DeploymentRevision]:
    """The revisions still in effect, oldest first: each change pushes its revision, each
    rollback pops the one it undid (history comes newest first, as stored)."""
    stack: list[DeploymentRevision] = []
    for revision in reversed(history):
        if revision.action == "rollback":
            if len(stack) > 1:
                stack.pop()
        else:
            stack.append(revision)
    return stack


def get_deployment(name: str, *, opened: Stores | None = None) -> Deployment:
    """The deployment called `name`; NotFound otherwise."""
    from loopline.project import stores

    record = (opened or stores()).metadata.deployments.get(name)
    return Deployment.from_record(record)


def list_deployments() -> list[Deployment]:
    """Every deployment, by name."""
    from loopline.project import stores

    return [Deployment.from_record(r) for r in stores().metadata.deployments.all()]


def deployments_serving(version: str) -> list[tuple[Deployment, str]]:
    """The deployments whose current configuration loads model version `version`
    ("churn/3"), each with its role there (see `DeploymentSpec.role_of`), by name: the
    last step of a version's lineage. Deployments are few; they are read whole."""
    found = []
    for deployment in list_deployments():
        role = deployment.spec.role_of(version)
        if role is not None:
            found.append((deployment, role))
    return found


def deployment_history(name: str) -> list[DeploymentRevision]:
    """The deployment's revisions, newest first."""
    from loopline.project import stores

    return stores().metadata.deployments.history(name)


def _write(
    name: str,
    spec: DeploymentSpec,
    action: str,
    revision: int,
    actor: str,
    reason: str | None,
    opened: Stores,
) -> Deployment:
    record = opened.metadata.deployments.update(
        name,
        spec.to_dict(),
        action=action,
        actor=actor,
        reason=reason,
        expected_revision=revision,
    )
    return Deployment.from_record(record)


def _variant(ref: str, opened: Stores) -> Variant:
    from loopline.registry import ModelStatus, resolve

    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"a model reference must be a non-empty string, got {ref!r}")
    version = resolve(ref, opened=opened)
    if version.status == ModelStatus.ARCHIVED:
        raise Conflict(f"{version.ref} is archived and cannot be deployed")
    return Variant(model=version.ref, ref=ref)


def _with_canary(
    spec: DeploymentSpec, canary: str | None, weight: float | None, opened: Stores
) -> DeploymentSpec:
    if spec.ab:
        raise InvalidInput(
            "a deployment runs a canary or an A/B split, not both",
            hint="end the split first with --model REF",
        )
    chosen = _variant(canary, opened) if canary is not None else spec.canary
    if chosen is None:
        raise InvalidInput("--weight needs a canary: give --canary REF")
    if weight is None:
        weight = spec.weight if spec.canary is not None else 10.0
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 100:
        raise InvalidInput(f"the canary weight is a percentage between 0 and 100, got {weight!r}")
    if chosen.model == spec.model.model:
        raise InvalidInput(f"the canary {chosen.model} is the deployment's model already")
    return replace(spec, canary=chosen, weight=float(weight))


def _with_ab(
    spec: DeploymentSpec, ab: Sequence[str] | None, key: str | None, opened: Stores
) -> DeploymentSpec:
    if spec.canary is not None:
        raise InvalidInput(
            "a deployment runs a canary or an A/B split, not both",
            hint="remove the canary first with --no-canary",
        )
    variants = tuple(_variant(ref, opened) for ref in ab) if ab is not None else spec.ab
    if len(variants) < 2:
        raise InvalidInput("an A/B split needs at least two versions, e.g. --ab churn/4,churn/5")
    if len({v.model for v in variants}) != len(variants):
        raise InvalidInput("the A/B versions must differ")
    key = key if key is not None else spec.key
    if not isinstance(key, str) or not 0 < len(key) <= KEY_NAME_LIMIT:
        raise InvalidInput(
            "an A/B split needs --key FIELD: the request field whose value picks the version"
        )
    if not key.isprintable():  # exports write it into Dockerfile and YAML comments
        raise InvalidInput(
            f"the A/B key {key!r} holds a line break or control character; a request field "
            "name is one line of printable characters"
        )
    return replace(spec, model=variants[0], ab=variants, key=key, canary=None, weight=0.0)


def _check_same_inputs(spec: DeploymentSpec, opened: Stores) -> None:
    """Every version must accept the main model's requests (the same input columns)."""
    from loopline.registry import resolve

    versions: list[ModelVersion] = [resolve(ref, opened=opened) for ref in spec.versions]
    expected = _inputs(versions[0])
    for version in versions[1:]:
        if _inputs(version) != expected:
            raise InvalidInput(
                f"{version.ref} takes different inputs from {versions[0].ref}, so it cannot "
                "answer the same requests",
                hint="deploy versions that share one input signature",
            )


def _inputs(version: ModelVersion) -> list[tuple[str, str]]:
    columns = version.signature.get("inputs") or []
    return [(str(c.get("name")), str(c.get("type"))) for c in columns]
