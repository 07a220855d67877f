"""Validation of the names users give: experiment names, param/metric/tag keys, run ids."""

from __future__ import annotations

import re

from loopline.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 8000
MAX_TAG_VALUE = 8000
# Keys as MLflow allows them (letters, digits, _ - . / : and spaces), so that code moved
# over from MLflow logs the same names.
_KEY = re.compile(r"^[A-Za-z0-9_\-./: ]+$")
_EXPERIMENT = re.compile(r"^[A-Za-z0-9_\-.: ]+$")
_ID = re.compile(r"^[0-9a-f]{32}$")


def check_key(kind: str, key: object) -> str:
    """A param, metric or tag key; raises InvalidInput naming what was wrong."""
    if not isinstance(key, str):
        raise InvalidInput(f"{kind} key must be a string, got {type(key).__name__}: {key!r}")
    if not key or len(key) > MAX_KEY or not _KEY.match(key) or key.strip() != key:
        raise InvalidInput(
            f"invalid {kind} key {key!r}",
            hint=f"use 1-{MAX_KEY} letters, digits, spaces and _ - . / : (no leading or "
            "trailing space)",
        )
    if ".." in key.split("/") or key.startswith("/"):
        raise InvalidInput(f"invalid {kind} key {key!r}: no '..' segments or leading '/'")
    return key


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"experiment name must be a string, got {type(name).__name__}")
    if not name or len(name) > 200 or not _EXPERIMENT.match(name) or name.strip() != name:
        raise InvalidInput(
            f"invalid experiment name {name!r}",
            hint="use 1-200 letters, digits, spaces and _ - . : (no '/')",
        )
    return name


def check_run_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise InvalidInput(f"run name must be a non-empty string of at most 250 chars: {name!r}")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidInput(f"run name must not contain control characters: {name!r}")
    return name


def check_id(kind: str, value: object) -> str:
    """Ids are 32 lowercase hex characters; anything else cannot name a stored object."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(f"{value!r} is not a valid {kind} id (32 hex characters)")
    return value


def param_text(key: str, value: object) -> str:
    """The stored text of a param value (params are strings, as in MLflow)."""
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(f"param {key!r} is {len(text)} chars; the limit is {MAX_PARAM_VALUE}")
    if "\x00" in text:
        raise InvalidInput(f"param {key!r} contains a NUL character")
    return text


def tag_text(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(f"tag {key!r} is {len(text)} chars; the limit is {MAX_TAG_VALUE}")
    if "\x00" in text:
        raise InvalidInput(f"tag {key!r} contains a NUL character")
    return text


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
