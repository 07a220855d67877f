"""The JSON form of the stores' records, both ways: what the platform server answers and
what the remote client reads back into the same dataclasses.

`encode(value)` gives plain JSON: a dataclass is an object of its fields, a datetime an
ISO-8601 string with its offset, an Enum its value, a tuple or set an array, a NaN or
infinite float the string "NaN", "Infinity" or "-Infinity" (JSON has no such numbers).
The members of a union of several dataclasses (a search condition: Compare | And | Or)
also carry their class name in "$type", so they read back unambiguously.

`decode(hint, data)` rebuilds a value of type `hint` (a class or a typing form such as
`list[Run]` or `Run | None`), checking every type on the way and calling each
dataclass's constructor, so whatever the record checks on creation is checked again.
Data that does not fit raises MalformedRequest: on the server that is a 400 for a body
a client sent; on the client it means the server answered something unexpected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any

from loopline.errors import MalformedRequest

MAX_DEPTH = 32
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_TAG = "$type"


def encode(value: Any) -> Any:
    """`value` as plain JSON (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _float_word(value)
    if isinstance(value, Enum):
        return encode(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {field.name: encode(getattr(value, field.name)) for field in _fields(type(value))}
        if type(value).__name__ in _TAGGED:
            body[_TAG] = type(value).__name__
        return body
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(item) for item in value]
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def decode(hint: Any, data: Any) -> Any:
    """`data` (parsed JSON) as a value of type `hint`; MalformedRequest when it doesn't fit."""
    return _decode(hint, data, "", 0)


def _float_word(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


# dataclasses that appear in unions of several dataclasses, read back by name
_TAGGED = {"Compare", "And", "Or"}


def _decode(hint: Any, data: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MalformedRequest(f"{where or 'the body'} is nested too deeply")
    if hint is Any or hint is object:
        return data
    if hint is None or hint is type(None):
        return _expect(data is None, data, "null", where)
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(typing.get_args(hint), data, where, depth)
    if origin is typing.Literal:
        return _expect(
            data in typing.get_args(hint), data, f"one of {typing.get_args(hint)}", where
        )
    if origin is not None:
        return _decode_generic(origin, typing.get_args(hint), data, where, depth)
    if isinstance(hint, type):
        return _decode_class(hint, data, where, depth)
    raise TypeError(f"cannot decode into {hint!r}")


def _decode_class(cls: type, data: Any, where: str, depth: int) -> Any:
    if cls is bool:
        return _expect(isinstance(data, bool), data, "true or false", where)
    if cls is int:
        return _expect(
            isinstance(data, int) and not isinstance(data, bool), data, "an integer", where
        )
    if cls is float:
        if isinstance(data, str) and data in _FLOAT_WORDS:
            return _FLOAT_WORDS[data]
        _expect(
            isinstance(data, int | float) and not isinstance(data, bool), data, "a number", where
        )
        return float(data)
    if cls is str:
        return _expect(isinstance(data, str), data, "a string", where)
    if issubclass(cls, Enum):
        try:
            return cls(data)
        except ValueError:
            raise _mismatch(data, f"a {cls.__name__}", where) from None
    if cls is datetime:
        _expect(isinstance(data, str), data, "an ISO-8601 time", where)
        try:
            moment = datetime.fromisoformat(data)
        except ValueError:
            raise _mismatch(data, "an ISO-8601 time", where) from None
        return _expect(moment.tzinfo is not None, moment, "a time with its UTC offset", where)
    if dataclasses.is_dataclass(cls):
        return _decode_dataclass(cls, data, where, depth)
    raise TypeError(f"cannot decode into {cls.__name__}")


def _decode_dataclass(cls: type, data: Any, where: str, depth: int) -> Any:
    _expect(isinstance(data, dict), data, f"an object ({cls.__name__})", where)
    hints = _hints(cls)
    given = {key: value for key, value in data.items() if key != _TAG}
    unknown = set(given) - set(hints)
    if unknown:
        raise MalformedRequest(f"{where or cls.__name__}: unknown field {sorted(unknown)[0]!r}")
    values = {
        name: _decode(hints[name], value, f"{where}.{name}" if where else name, depth + 1)
        for name, value in given.items()
    }
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise MalformedRequest(f"{where or cls.__name__}: {exc}") from None


def _decode_union(options: tuple[Any, ...], data: Any, where: str, depth: int) -> Any:
    if data is None:
        return _expect(type(None) in options, data, "a value", where)
    if isinstance(data, dict) and _TAG in data:
        for option in options:
            if isinstance(option, type) and option.__name__ == data[_TAG]:
                return _decode(option, data, where, depth)
        raise _mismatch(data[_TAG], "a known $type", where)
    # the JSON kind picks the member first: a string stays a string where str is allowed
    preferred = _preferred(data)
    ordered = [o for o in options if o in preferred] + [
        o for o in options if o not in preferred and o is not type(None)
    ]
    for option in ordered:
        try:
            return _decode(option, data, where, depth)
        except MalformedRequest:
            continue
    raise _mismatch(data, " or ".join(_name(option) for option in options), where)


def _preferred(data: Any) -> tuple[Any, ...]:
    if isinstance(data, bool):
        return (bool,)
    if isinstance(data, int):
        return (int, float)
    if isinstance(data, float):
        return (float,)
    if isinstance(data, str):
        return (str,)
    return ()


def _decode_generic(origin: Any, args: tuple[Any, ...], data: Any, where: str, depth: int) -> Any:
    if origin in (list, tuple, set, frozenset, Sequence) or _is_abc(origin, "Sequence", "Set"):
        _expect(isinstance(data, list), data, "an array", where)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(data):
                raise _mismatch(data, f"an array of {len(args)}", where)
            return tuple(
                _decode(arg, item, f"{where}[{i}]", depth + 1)
                for i, (arg, item) in enumerate(zip(args, data, strict=True))
            )
        item_hint = args[0] if args else Any
        items = [
            _decode(item_hint, item, f"{where}[{i}]", depth + 1) for i, item in enumerate(data)
        ]
        if origin in (set, frozenset) or _is_abc(origin, "Set"):
            return frozenset(items) if origin is frozenset else set(items)
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or _is_abc(origin, "Mapping"):
        _expect(isinstance(data, dict), data, "an object", where)
        key_hint, value_hint = args if args else (str, Any)
        return {
            _decode(key_hint, key, where, depth + 1): _decode(
                value_hint, value, f"{where}.{key}", depth + 1
            )
            for key, value in data.items()
        }
    raise TypeError(f"cannot decode into {origin!r}")


def _is_abc(origin: Any, *names: str) -> bool:
    import collections.abc

    return any(origin is getattr(collections.abc, name) for name in names)


@cache
def _hints(cls: type) -> dict[str, Any]:
    """The init fields of a dataclass with their resolved types."""
    resolved = typing.get_type_hints(cls)
    return {field.name: resolved[field.name] for field in _fields(cls) if field.init}


@cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def _expect(ok: bool, data: Any, what: str, where: str) -> Any:
    if not ok:
        raise _mismatch(data, what, where)
    return data


def _mismatch(data: Any, what: str, where: str) -> MalformedRequest:
    shown = repr(data)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return MalformedRequest(f"{where or 'the value'} must be {what}, got {shown}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)
