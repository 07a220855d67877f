"""Reading the registry: models and their versions."""

from __future__ import annotations

from loopline.project import stores
from loopline.registry.refs import ModelRef, resolve
from loopline.store import ModelVersion, RegisteredModel


def list_models() -> list[RegisteredModel]:
    """Every registered model with its latest version number and aliases, by name."""
    return stores().metadata.models.list_models()


def get_model(name: str) -> RegisteredModel:
    return stores().metadata.models.get_model(name)


def list_versions(name: str) -> list[ModelVersion]:
    """Every version of model `name`, newest first."""
    return stores().metadata.models.list_versions(name)


def aliases_of(ref: str | ModelRef | ModelVersion) -> list[str]:
    """The aliases that point at a version now."""
    opened = stores()
    return opened.metadata.models.aliases_of(resolve(ref, opened=opened).id)
