"""Checking one monitoring policy mapping, key by key, with errors that say where.

A policy arrives as a plain mapping (a `[monitor.NAME]` table of loopline.toml, or a YAML
document). Every value is checked here and turned into what `MonitorPolicy` holds; a
problem raises InvalidInput whose message starts with the place of the bad key: the
TOML table and key (`[monitor.credit.thresholds] psi`) or the YAML line
(`policy.yaml line 7 (thresholds.psi)`). `Locate` is that place-maker.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from loopline.errors import InvalidInput, InvalidPath

KeyPath = tuple[str | int, ...]
PathLike = str | os.PathLike[str]
Locate = Callable[[KeyPath], str]
"""Turns the path of a key (`("thresholds", "psi")`, `("actions", 0, "when")`) into the
place an error message names."""

POLICY_KEYS = (
    "window",
    "every",
    "min_rows",
    "reference",
    "segments",
    "exact_max_rows",
    "cooldown",
    "thresholds",
    "features",
    "actions",
)
# threshold -> (lowest allowed, highest allowed, whether the lowest itself is allowed)
FEATURE_THRESHOLDS: dict[str, tuple[float, float, bool]] = {
    "psi": (0.0, math.inf, True),
    "wasserstein": (0.0, math.inf, True),
    "js": (0.0, 1.0, True),
    "p_value": (0.0, 1.0, False),
    "unseen_share": (0.0, 1.0, True),
    "null_rate": (0.0, 1.0, True),
    "out_of_range": (0.0, 1.0, True),
}
GLOBAL_THRESHOLDS = (*FEATURE_THRESHOLDS, "max_metric_drop", "drifted_features")
ACTION_KINDS = ("alert", "rollback", "retrain")
TRIGGERS = ("drift", "integrity", "performance", "canary", "any")
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "alert": ("webhook", "log", "file", "allow_hosts"),
    "rollback": (),
    "retrain": (
        "train",
        "command",
        "target",
        "params",
        "canary_weight",
        "judge_min_rows",
        "judge_after",
    ),
}
# module.path:function, every part a Python identifier
_CALLABLE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_locator(deployment: str) -> Locate:
    """Places in `[monitor.DEPLOYMENT]`: `[monitor.credit.thresholds] psi`,
    `[[monitor.credit.actions]] number 2: when`."""
    base = f"monitor.{_toml_key(deployment)}"

    def locate(path: KeyPath) -> str:
        if not path:
            return f"[{base}]"
        for position, part in enumerate(path):
            if isinstance(part, int):
                table = ".".join([base, *(_toml_key(str(p)) for p in path[:position])])
                rest = ".".join(str(p) for p in path[position + 1 :])
                where = f"[[{table}]] number {part + 1}"
                return f"{where}: {rest}" if rest else where
        table = ".".join([base, *(_toml_key(str(p)) for p in path[:-1])])
        return f"[{table}] {_toml_key(str(path[-1]))}"

    return locate


def yaml_locator(source: str, lines: Mapping[KeyPath, int]) -> Locate:
    """Places in a YAML file: its name, the line of the key (or of the nearest enclosing
    key the file has), and the key's dotted path."""

    def locate(path: KeyPath) -> str:
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path)
        dotted = dotted.replace(".[", "[")
        for end in range(len(path), 0, -1):
            line = lines.get(path[:end])
            if line is not None:
                return f"{source} line {line} ({dotted})"
        return f"{source} ({dotted})" if dotted else source

    return locate


def fail(locate: Locate, path: KeyPath, problem: str, hint: str | None = None) -> InvalidInput:
    """The error for the key at `path`: `<place>: <problem>`."""
    return InvalidInput(f"{locate(path)}: {problem}", hint=hint)


def check_keys(
    doc: object, allowed: tuple[str, ...], locate: Locate, path: KeyPath
) -> dict[str, Any]:
    """`doc` as a dict, after checking it is a mapping of known keys."""
    if not isinstance(doc, Mapping):
        raise fail(locate, path, f"expected a table (a mapping), got {kind_of(doc)}")
    for key in doc:
        if key not in allowed:
            raise fail(
                locate,
                (*path, str(key)),
                "unknown key",
                hint=f"expected one of {', '.join(allowed)}" if allowed else "it takes no keys",
            )
    return dict(doc)


def duration(value: object, locate: Locate, path: KeyPath, *, zero: bool = False) -> timedelta:
    """A duration in `parse_since`'s syntax ("90s", "10m", "1h", "2d", "1w"); positive
    (or zero, when `zero` allows it)."""
    from loopline.predictions import parse_duration

    if not isinstance(value, str):
        raise fail(locate, path, f"expected a duration such as '10m' (text), got {kind_of(value)}")
    try:
        length = parse_duration(value)
    except InvalidInput as exc:
        raise fail(locate, path, exc.message, hint=exc.hint) from None
    if length <= timedelta(0) and not (zero and length == timedelta(0)):
        raise fail(locate, path, f"the duration must be longer than zero, got {value!r}")
    return length


def whole_number(value: object, locate: Locate, path: KeyPath, *, minimum: int) -> int:
    """An integer (not a boolean, not a float) at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(locate, path, f"expected a whole number >= {minimum}, got {kind_of(value)}")
    if value < minimum:
        raise fail(locate, path, f"expected a whole number >= {minimum}, got {value}")
    return value


def threshold(name: str, value: object, locate: Locate, path: KeyPath) -> float | int:
    """One threshold, checked against its range (`drifted_features` is a whole number)."""
    if name == "drifted_features":
        return whole_number(value, locate, path, minimum=1)
    low, high, low_included = FEATURE_THRESHOLDS.get(name, (0.0, math.inf, True))
    number = finite_number(value, locate, path)
    below = number < low or (number == low and not low_included)
    if below or number > high:
        left = "[" if low_included else "("
        right = "]" if high < math.inf else ")"
        shown_high = "inf" if high == math.inf else f"{high:g}"
        raise fail(
            locate, path, f"{name} must lie in {left}{low:g}, {shown_high}{right}, got {number:g}"
        )
    return number


def finite_number(value: object, locate: Locate, path: KeyPath) -> float:
    """A finite int or float (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(locate, path, f"expected a number, got {kind_of(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise fail(locate, path, f"expected a finite number, got {value!r}")
    return number


def thresholds(
    doc: object, allowed: tuple[str, ...], locate: Locate, path: KeyPath
) -> dict[str, Any]:
    """A thresholds table: known names only, each checked by `threshold`."""
    table = check_keys(doc, allowed, locate, path)
    return {key: threshold(key, value, locate, (*path, key)) for key, value in table.items()}


def text(value: object, locate: Locate, path: KeyPath, what: str = "text") -> str:
    """A non-empty, single-line string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(locate, path, f"expected {what}, got {kind_of(value)}")
    if any(ch in value for ch in "\r\n\x00"):
        raise fail(locate, path, f"expected {what} on one line")
    return value


def names(value: object, locate: Locate, path: KeyPath, what: str) -> tuple[str, ...]:
    """A list of distinct non-empty strings (`segments`, `allow_hosts`)."""
    if not isinstance(value, list | tuple):
        raise fail(locate, path, f"expected a list of {what}, got {kind_of(value)}")
    seen: list[str] = []
    for index, item in enumerate(value):
        name = text(item, locate, (*path, index), f"one of {what} (text)")
        if name in seen:
            raise fail(locate, (*path, index), f"{name!r} is listed twice")
        seen.append(name)
    return tuple(seen)


def reference(value: object, locate: Locate, path: KeyPath) -> str:
    """`training`, or a dataset reference NAME@VERSION."""
    ref = text(value, locate, path, "'training' or a dataset reference NAME@VERSION")
    if ref == "training":
        return ref
    if "@" not in ref:
        raise fail(
            locate,
            path,
            f"expected 'training' or a dataset reference NAME@VERSION, got {ref!r}",
            hint='e.g. reference = "credit@3" or "credit@latest"',
        )
    from loopline.data import parse_ref

    try:
        parse_ref(ref)
    except InvalidInput as exc:
        raise fail(locate, path, exc.message, hint=exc.hint) from None
    return ref


def callable_name(value: object, locate: Locate, path: KeyPath) -> str:
    """`module.path:function`, checked by its shape only (nothing is imported)."""
    name = text(value, locate, path, "a callable 'module.path:function'")
    if not _CALLABLE.fullmatch(name):
        raise fail(
            locate,
            path,
            f"expected a callable 'module.path:function', got {name!r}",
            hint='e.g. train = "mypkg.train:fit"',
        )
    return name


def params(value: object, locate: Locate, path: KeyPath) -> dict[str, Any]:
    """Training parameters: a mapping of names to plain values, no NaN or infinity."""
    if not isinstance(value, Mapping):
        raise fail(locate, path, f"expected a table of parameters, got {kind_of(value)}")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise fail(locate, path, f"parameter names are text, got {key!r}")
        checked[key] = _plain(item, locate, (*path, key))
    return checked


def _plain(value: object, locate: Locate, path: KeyPath) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return finite_number(value, locate, path)
    if isinstance(value, list | tuple):
        return [_plain(item, locate, (*path, index)) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return params(value, locate, path)
    raise fail(locate, path, f"expected a number, text, list or table, got {kind_of(value)}")


def kind_of(value: object) -> str:
    """A value's type in the words of TOML and YAML users."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"text ({value!r})" if len(value) <= 60 else "text"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'


def action_fields(
    doc: object, locate: Locate, path: KeyPath, project_root: PathLike | None
) -> dict[str, Any]:
    """The keyword arguments of one `Action`, every key checked where it stands.

    Which keys an action may hold depends on its `do`; a key of another kind of action
    is an error, so that a misplaced `webhook` under `do = "retrain"` is not ignored.
    """
    if not isinstance(doc, Mapping):
        raise fail(locate, path, f"expected a table (a mapping), got {kind_of(doc)}")
    if "do" not in doc:
        raise fail(locate, path, "the action needs 'do' (alert, rollback or retrain)")
    kind = doc["do"]
    if kind not in ACTION_KINDS:
        shown = repr(kind) if isinstance(kind, str) else kind_of(kind)
        raise fail(locate, (*path, "do"), f"expected one of {', '.join(ACTION_KINDS)}, got {shown}")
    table = check_keys(doc, ("when", "do", *ACTION_KEYS[kind]), locate, path)
    when = table.get("when", "any")
    if when not in TRIGGERS:
        shown = repr(when) if isinstance(when, str) else kind_of(when)
        raise fail(locate, (*path, "when"), f"expected one of {', '.join(TRIGGERS)}, got {shown}")
    fields: dict[str, Any] = {"kind": kind, "when": when}
    for key, value in table.items():
        where = (*path, key)
        if key in ("when", "do"):
            continue
        if key == "webhook":
            fields[key] = _webhook(value, locate, where)
        elif key == "log":
            if not isinstance(value, bool):
                raise fail(locate, where, f"expected true or false, got {kind_of(value)}")
            fields[key] = value
        elif key == "file":
            fields[key] = project_file(value, locate, where, project_root)
        elif key == "allow_hosts":
            from loopline.monitoring._webhook import normalize_host

            hosts = names(value, locate, where, "host names or addresses")
            fields[key] = tuple(normalize_host(host) for host in hosts)
        elif key == "train":
            fields[key] = callable_name(value, locate, where)
        elif key in ("command", "target"):
            fields[key] = text(value, locate, where)
        elif key == "params":
            fields[key] = params(value, locate, where)
        elif key == "canary_weight":
            weight = finite_number(value, locate, where)
            if not 0 < weight < 1:
                raise fail(
                    locate,
                    where,
                    f"expected a share between 0 and 1 (both excluded), got {weight:g}",
                )
            fields[key] = weight
        elif key == "judge_min_rows":
            fields[key] = whole_number(value, locate, where, minimum=1)
        elif key == "judge_after":
            fields[key] = duration(value, locate, where)
    return fields


def project_file(
    value: object, locate: Locate, path: KeyPath, project_root: PathLike | None
) -> str:
    """A file path relative to the project: no escape (`..`, absolute, URIs), nothing in
    `.git` or `.loopline`, and (when the project is known) no symbolic link on the way."""
    from loopline.pathnames import control_folder, validate_logical_path

    name = text(value, locate, path, "a file path relative to the project")
    try:
        logical = validate_logical_path(name)
        folder = control_folder(logical)
        if folder is not None:
            raise InvalidPath(
                f"{folder!r} is git's or loopline's own folder; alerts never go there"
            )
        if project_root is not None:
            from loopline.store import resolve_under

            resolve_under(Path(project_root), logical)
    except InvalidPath as exc:
        message = exc.message.replace("invalid artifact path", "invalid path", 1)
        raise fail(locate, path, message, hint=exc.hint) from None
    return logical


def _webhook(value: object, locate: Locate, path: KeyPath) -> str:
    from loopline.monitoring._webhook import check_template

    url = text(value, locate, path, "a URL or '${VARIABLE}'")
    try:
        check_template(url)
    except InvalidInput as exc:
        raise fail(locate, path, exc.message, hint=exc.hint) from None
    return url
