"""Model references, as users write them, and the versions they name.

churn              the latest version          churn/3, models:/churn/3   version 3
churn@champion     the version an alias names  churn@latest               the latest
runs:/<run id>/model   the version registered from that run's artifact folder
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopline.errors import InvalidInput, NotFound
from loopline.project import Stores, stores
from loopline.store import ModelVersion, check_alias, check_model_name, validate_logical_path

_MODEL_REF = re.compile(r"(?P<name>[^/@]+)(?:/(?P<version>[^/@]*)|@(?P<alias>[^/@]*))?")
_RUN_REF = re.compile(r"runs:/(?P<run>[^/]+)/(?P<path>.+)", re.DOTALL)
_HINT = "use churn, churn/3, churn@champion, models:/churn/3 or runs:/<run id>/model"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model name with a version or an alias, or a run's artifact."""

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    run_id: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.run_id is not None:
            return f"runs:/{self.run_id}/{self.path}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias or 'latest'}"


def parse_ref(text: object) -> ModelRef:
    """Parse a model reference; InvalidInput says what form was expected."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"invalid model reference {text!r}", hint=_HINT)
    ref = text.strip()
    run = _RUN_REF.fullmatch(ref)
    if run is not None:
        return ModelRef(run_id=run["run"], path=validate_logical_path(run["path"]))
    if ref.startswith("models:/"):
        ref = ref[len("models:/") :]
    match = _MODEL_REF.fullmatch(ref)
    if match is None:
        raise InvalidInput(f"invalid model reference {text!r}", hint=_HINT)
    name = check_model_name(match["name"])
    if match["version"] is not None:
        if (
            not (match["version"].isascii() and match["version"].isdigit())
            or int(match["version"]) < 1
        ):
            raise InvalidInput(
                f"invalid model reference {text!r}: a version is a positive number", hint=_HINT
            )
        return ModelRef(name=name, version=int(match["version"]))
    alias = match["alias"]
    if alias is None or alias == "latest":
        return ModelRef(name=name)
    return ModelRef(name=name, alias=check_alias(alias))


def resolve(ref: str | ModelRef | ModelVersion, *, opened: Stores | None = None) -> ModelVersion:
    """The model version a reference names (NotFound names what is missing)."""
    if isinstance(ref, ModelVersion):
        return ref
    parsed = ref if isinstance(ref, ModelRef) else parse_ref(ref)
    metadata = (opened or stores()).metadata
    models = metadata.models
    if parsed.run_id is not None:
        run_id = metadata.runs.resolve_run_id(parsed.run_id)
        for version in models.versions_for_run(run_id):
            if version.extra.get("artifact_path") == parsed.path:
                return version
        raise NotFound(
            f"run {run_id} registered no model at {parsed.path!r}",
            hint=f"`loopline runs show {run_id[:8]}` lists its outputs",
        )
    assert parsed.name is not None
    if parsed.version is not None:
        return models.get_version(parsed.name, parsed.version)
    if parsed.alias is not None:
        return models.version_for_alias(parsed.name, parsed.alias)
    return models.latest_version(parsed.name)
