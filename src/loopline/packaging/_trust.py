"""Trust: the type names a caller allows a scikit-learn (skops) file to hold.

skops trusts by exact name, so a name is checked to be a dotted Python path before it is
used or recorded with a model version: no empty string, no pattern, no `True` (which
skops would read as "trust everything").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from loopline.errors import InvalidInput

PICKLE_HINT = "only for packages you trust: pass --allow-pickle (or allow_pickle=True in Python)"

_TYPE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def check_trusted(value: object) -> list[str]:
    """`trusted` as a list of type names ('mymodule.MyModel'), in order, without repeats.

    Raises InvalidInput for anything else: a bare string, a non-string entry, an empty or
    malformed name.
    """
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidInput(
            f"trusted must be a list of type names such as ['mymodule.MyModel'], "
            f"got {type(value).__name__}"
        )
    for name in value:
        if not isinstance(name, str):
            raise InvalidInput(
                f"trusted must hold type names (strings), got {type(name).__name__} {name!r}"
            )
        if not _TYPE_NAME.fullmatch(name):
            raise InvalidInput(
                f"{name!r} is not a type name: expected a dotted path such as 'mymodule.MyModel'"
            )
    return _unique(value)


def trust_hint(types: list[str]) -> str:
    """What to do about untrusted `types`, for the CLI and Python alike."""
    return f"review them, then pass --trust TYPE (or trusted={types!r} in Python)"


def merge_trusted(*lists: Iterable[str]) -> list[str]:
    """The names of every list, in order, without repeats."""
    return _unique(name for names in lists for name in names)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
