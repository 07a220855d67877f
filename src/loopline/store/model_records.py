"""The model registry's plain records and name rules: no database handles inside."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from loopline.errors import InvalidInput
from loopline.store._names import check_key, tag_text

# Applied with fullmatch: `$` in `match` would accept a trailing newline ("churn\n").
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
RESERVED_ALIASES = frozenset({"latest"})


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class RegisteredModel:
    id: str
    name: str
    description: str | None
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable packaged model; `ref` (e.g. "churn/3") names it."""

    id: str
    model: str
    version: int
    status: ModelStatus
    flavor: str
    package_hash: str
    size_bytes: int
    signature: dict[str, Any]
    manifest: dict[str, Any]
    run_id: str | None
    source_version_id: str | None
    extra: dict[str, Any]
    description: str | None
    tags: dict[str, str]
    card_hash: str | None
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"


def check_model_name(name: object) -> str:
    """Model names appear in refs (`churn/3`, `churn@champion`) and paths: no '/', '@', '..'."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid model name {name!r}",
            hint="use 1-128 letters, digits, '_', '-' and '.', starting with a letter or digit",
        )
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not ALIAS_NAME.fullmatch(alias) or alias in RESERVED_ALIASES:
        raise InvalidInput(
            f"invalid alias {alias!r}",
            hint="an alias starts with a letter and holds letters, digits, '_' and '-' "
            "('latest' is reserved)",
        )
    return alias


def check_model_tags(tags: object) -> dict[str, str] | None:
    """Model and version tags follow the rules of run tags: checked keys, text values."""
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidInput(f"tags must map names to strings, got {tags!r}")
    for key, value in tags.items():
        tag_text(check_key("tag", key), value)
    return tags


def model_status(value: object) -> ModelStatus:
    try:
        return ModelStatus(str(value).lower())
    except ValueError:
        names = ", ".join(s.value for s in ModelStatus)
        raise InvalidInput(f"unknown model status {value!r}; expected one of {names}") from None
