"""Validation of the names users give: experiment names, param/metric/tag keys, run ids.

Every pattern is applied with `fullmatch`: with `match` and `^...$`, `$` also matches
before a trailing newline, so `"churn\n"` would pass as `churn`. The shared list of
hostile names in tests/security/test_hostile_names.py runs against every checker.
"""

from __future__ import annotations

import posixpath
import re

from loopline.errors import InvalidInput
from loopline.pathnames import is_valid_unicode
from loopline.redact import redact_text

MAX_KEY = 250
MAX_RUN_NAME = 250
MAX_PARAM_VALUE = 8000
MAX_TAG_VALUE = 8000
# Keys as MLflow allows them (letters, digits, _ - . / : and spaces), so that code moved
# over from MLflow logs the same names.
_KEY = re.compile(r"[A-Za-z0-9_\-./: ]+")
_EXPERIMENT = re.compile(r"[A-Za-z0-9_\-.: ]+")
_ID = re.compile(r"[0-9a-f]{32}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{4,32}")
# Category Cc (C0, DEL, C1) and the line/paragraph separators: they break a listing's lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_key(kind: str, key: object) -> str:
    """A param, metric or tag key; raises InvalidInput naming what was wrong.

    Keys are never paths or URLs, so `:` and `/` are allowed as MLflow allows them; as
    in MLflow, a key must be its own normal form (`a//b`, `a/./b`, `file:///x` are not).
    """
    if not isinstance(key, str):
        raise InvalidInput(f"{kind} key must be a string, got {type(key).__name__}: {key!r}")
    if not key or len(key) > MAX_KEY or not _KEY.fullmatch(key) or key.strip() != key:
        raise InvalidInput(
            f"invalid {kind} key {_shown(key)}",
            hint=f"use 1-{MAX_KEY} letters, digits, spaces and _ - . / : (no leading or "
            "trailing space)",
        )
    if ".." in key.split("/") or key.startswith("/"):
        raise InvalidInput(f"invalid {kind} key {key!r}: no '..' segments or leading '/'")
    if posixpath.normpath(key) != key or key == ".":
        raise InvalidInput(
            f"invalid {kind} key {key!r}: write it as {posixpath.normpath(key)!r}",
            hint="no empty or '.' segments and no trailing '/' (as in MLflow)",
        )
    return key


def check_experiment_name(name: object) -> str:
    """An experiment name: display text and a lookup key, never a path."""
    if not isinstance(name, str):
        raise InvalidInput(f"experiment name must be a string, got {type(name).__name__}")
    if (
        not name
        or len(name) > 200
        or not _EXPERIMENT.fullmatch(name)
        or name.strip() != name
        or not name.strip(".")
    ):
        raise InvalidInput(
            f"invalid experiment name {_shown(name)}",
            hint="use 1-200 letters, digits, spaces and _ - . : (no '/', not only dots)",
        )
    return name


def check_run_name(name: object) -> str:
    """A run name is free display text (the run id names the run), so any printable
    Unicode is allowed; control characters, lone surrogates and surrounding spaces are
    not, since they make two names look alike or break a listing."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_RUN_NAME:
        raise InvalidInput(
            f"run name must be a non-empty string of at most {MAX_RUN_NAME} chars: {_shown(name)}"
        )
    if _CONTROL.search(name) or not is_valid_unicode(name):
        raise InvalidInput(f"run name must not contain control characters: {name!r}")
    if name.strip() != name:
        raise InvalidInput(f"run name must not start or end with a space: {name!r}")
    return name


def check_id(kind: str, value: object) -> str:
    """Ids are 32 lowercase hex characters; anything else cannot name a stored object."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(f"{_shown(value)} is not a valid {kind} id (32 hex characters)")
    return value


def check_run_prefix(id_or_prefix: object) -> str:
    """A run id or a prefix of one (4-32 hex characters), lowercased and stripped."""
    text = id_or_prefix.strip().lower() if isinstance(id_or_prefix, str) else ""
    if not _HEX_PREFIX.fullmatch(text):
        raise InvalidInput(f"{id_or_prefix!r} is not a run id or an id prefix (hex)")
    return text


def _shown(value: object) -> str:
    """A value as an error message quotes it: whole, unless it is very long."""
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:60]}... ({len(text)} characters)"


def param_text(key: str, value: object) -> str:
    """The stored text of a param value (params are strings, as in MLflow)."""
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(f"param {key!r} is {len(text)} chars; the limit is {MAX_PARAM_VALUE}")
    if "\x00" in text:
        raise InvalidInput(f"param {key!r} contains a NUL character")
    if not is_valid_unicode(text):
        raise InvalidInput(f"param {key!r} is not valid Unicode (a lone surrogate)")
    return redact_text(text)  # a URI's password or an API key never reaches the database


def tag_text(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(f"tag {key!r} is {len(text)} chars; the limit is {MAX_TAG_VALUE}")
    if "\x00" in text:
        raise InvalidInput(f"tag {key!r} contains a NUL character")
    if not is_valid_unicode(text):
        raise InvalidInput(f"tag {key!r} is not valid Unicode (a lone surrogate)")
    return redact_text(text)


_ADJECTIVES = [
    "amber",
    "bold",
    "brave",
    "calm",
    "clever",
    "crisp",
    "eager",
    "fair",
    "gentle",
    "glad",
    "keen",
    "lively",
    "lucky",
    "merry",
    "nimble",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "shy",
    "silent",
    "steady",
    "swift",
    "tidy",
    "vivid",
    "warm",
    "wise",
    "young",
]
_NOUNS = [
    "otter",
    "falcon",
    "badger",
    "heron",
    "lynx",
    "marten",
    "osprey",
    "panda",
    "puffin",
    "raven",
    "robin",
    "salmon",
    "seal",
    "sparrow",
    "swan",
    "tiger",
    "trout",
    "viper",
    "walrus",
    "wren",
    "yak",
    "zebra",
    "beaver",
    "bison",
    "crane",
    "dingo",
]


def friendly_run_name(run_id: str) -> str:
    """A memorable default run name derived from the id, e.g. 'swift-heron-7f3a'."""
    number = int(run_id[:8], 16)
    adjective = _ADJECTIVES[number % len(_ADJECTIVES)]
    noun = _NOUNS[(number // len(_ADJECTIVES)) % len(_NOUNS)]
    return f"{adjective}-{noun}-{run_id[:4]}"
