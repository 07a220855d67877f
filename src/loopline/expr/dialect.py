"""Dialects: what each area calls the parts of a condition in its errors, and allows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from loopline.errors import InvalidFilter


@dataclass(frozen=True)
class Dialect:
    """What an area calls the parts of a condition in its errors, and what it allows."""

    label: str  # "filter" -> "invalid filter at position 3: ..."
    double_quotes: Literal["name", "string"] = "name"  # their old, deprecated meaning
    subject: str = "a name"  # what may start a comparison
    subject_hint: str | None = None
    operator: str = "a comparison operator"
    operator_hint: str | None = None
    operator_list: str | None = None  # set: a bad operator is "unknown operator '=>' (...)"
    value: str = "a number or a quoted string"  # what may follow an operator
    literal: str = "a number or a quoted string"  # what an in (...) list holds
    end: str | None = "the end of the input"  # shown after "got"; None: say nothing
    finish: str = "the end"  # "expected 'and', 'or' or the end"
    quoted_name: str = "quoted name"
    empty: str = "the condition is empty"
    keyword_note: str = ""  # added when a keyword stands where a name could
    combine: bool = True  # and, or, not and parentheses
    bare_names: bool = False  # a name alone is a condition
    max_length: int = 10_000
    render: Callable[[str, int, str], str] | None = None  # (text, position, detail) -> message

    def error(
        self, text: str, position: int, detail: str, hint: str | None = None
    ) -> InvalidFilter:
        """The area's parse error at `position` of `text`."""
        if self.render is not None:
            message = self.render(text, position, detail)
        else:
            message = f"invalid {self.label} at position {position}: {detail}"
        return InvalidFilter(message, text=text, position=position, hint=hint)
