"""What the registry's routes share: request bodies that refuse what a store would choke
on, and path parameters checked whole before any store sees them.

Bodies are pydantic models (so they appear in /openapi.json) in strict mode: a number
sent as a string, an unknown field or a NaN/Infinity anywhere (JSON has none; Python's
parser lets the bare words through) is a 400, never a 500 from deep inside a store.

A path parameter that names something is checked by the store's own rule (a dataset or
model name, an alias) or, for an id, by the shape of ids; what fails is a 400
(MalformedRequest, an InvalidInput: the remote client raises what a local store would).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from loopline.errors import InvalidInput, MalformedRequest

# ids are opaque: 32 hex characters from new_id, or another store's (an import's) ids
_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}")


class Body(BaseModel):
    """A request body: strict types, no unknown fields, finite numbers only."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        where = _non_finite(data, "")
        if where is not None:
            raise ValueError(f"{where or 'the body'} holds a NaN or infinite number")
        return data


def _non_finite(value: Any, where: str, depth: int = 0) -> str | None:
    """Where in `value` a non-finite float is (a dotted path), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if depth > 32:
        raise ValueError(f"{where or 'the body'} is nested too deeply")
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key), depth + 1)
        if found is not None:
            return found
    return None


def checked(rule: Callable[[Any], Any], value: str) -> str:
    """`value` (a path parameter) if the store's `rule` accepts it; 400 otherwise."""
    try:
        rule(value)
    except InvalidInput as exc:
        raise MalformedRequest(exc.message, hint=exc.hint) from None
    return value


def checked_id(value: str, what: str = "id") -> str:
    """`value` if it has the shape of a record id; 400 otherwise."""
    if not _ID.fullmatch(value):
        raise MalformedRequest(f"invalid {what} {_shown(value)}")
    return value


def _shown(value: str) -> str:
    shown = repr(value)
    return shown if len(shown) <= 70 else shown[:67] + "..."
