"""The tokenizer: text to tokens, stopping at the first token it cannot read."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal, TypeAlias

from loopline.expr.dialect import Dialect
from loopline.expr.tree import clip

Kind: TypeAlias = Literal["name", "number", "string", "op", "(", ")", ",", "eof", "error"]
_WORD_START = frozenset(string.ascii_letters + "_")  # ASCII only: float() refuses other digits
_SEGMENT_CHARS = frozenset(string.ascii_letters + string.digits + "_-/:")
_NAME_CHARS = _SEGMENT_CHARS | {"."}
_OP_CHARS = frozenset("=!<>")
_PUNCTUATION: dict[str, Kind] = {"(": "(", ")": ")", ",": ","}
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:infinity|inf|nan))"
)


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # as written
    pos: int
    value: str = ""  # a decoded string; the message of an "error" token
    parts: tuple[str, ...] = ()  # a name's parts
    starts: tuple[int, ...] = ()
    bare: bool = True  # a name with no quoted part
    double: bool = False  # written with double quotes (deprecated)

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


class Tokenizer:
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        self.name_quotes = '`"' if dialect.double_quotes == "name" else "`"

    def tokens(self) -> list[Token]:
        """All tokens up to EOF, or up to and including the first "error" token."""
        tokens: list[Token] = []
        pos, last_end = 0, 0
        while True:
            pos = self.skip(pos)
            if pos == len(self.text) or self.text[pos] == "#":
                tokens.append(Token("eof", "", last_end))
                return tokens
            token = self.next(pos)
            tokens.append(token)
            if token.kind == "error":
                return tokens
            pos = last_end = token.end

    def skip(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        return pos

    def next(self, pos: int) -> Token:
        char = self.text[pos]
        if char in _PUNCTUATION:
            return Token(_PUNCTUATION[char], char, pos)
        if char in _OP_CHARS:  # a whole run, so that '>>' is reported as one bad operator
            return Token("op", self.text[pos : _run_end(self.text, pos, _OP_CHARS)], pos)
        if char == "'" or (char == '"' and self.dialect.double_quotes == "string"):
            return self.string(pos)
        if char in _WORD_START or char in self.name_quotes:
            return self.name(pos)
        return self.number(pos)

    def string(self, start: int) -> Token:
        end, value = self.quoted(start)
        if end < 0:
            return _error(start, "unterminated string")
        double = self.text[start] == '"'
        return Token("string", self.text[start:end], start, value, double=double)

    def name(self, start: int) -> Token:
        """Segments joined by dots; an empty part stands where a dot is not followed by one."""
        text, pos = self.text, start
        parts: list[str] = []
        starts: list[int] = []
        bare, double, want = True, False, True  # want: at the start or just after a dot
        while pos < len(text):
            char = text[pos]
            if want and char in self.name_quotes:
                end, value = self.quoted(pos)
                if end < 0:
                    return _error(pos, f"unterminated {self.dialect.quoted_name}")
                if not value:
                    return _error(pos, f"empty {self.dialect.quoted_name}")
                bare, double = False, double or char == '"'
            elif want and char in _SEGMENT_CHARS and (parts or char in _WORD_START):
                end = _run_end(text, pos, _SEGMENT_CHARS)
                value = text[pos:end]
            elif char == "." and (parts or not want):
                if want:
                    parts.append("")
                    starts.append(pos)
                pos, want = pos + 1, True
                continue
            else:
                break
            parts.append(value)
            starts.append(pos)
            pos, want = end, False
        if want:
            parts.append("")
            starts.append(pos)
        return Token(
            "name", text[start:pos], start, parts=tuple(parts), starts=tuple(starts),
            bare=bare, double=double,
        )  # fmt: skip

    def quoted(self, start: int) -> tuple[int, str]:
        """(end, decoded value) of the quoted text at `start`; end is -1 if unterminated."""
        text, quote = self.text, self.text[start]
        chars: list[str] = []
        pos = start + 1
        while pos < len(text):
            char, after = text[pos], text[pos + 1 : pos + 2]
            if (char == "\\" and after in (quote, "\\")) or (char == quote == after):
                chars.append(after)
                pos += 2
            elif char == quote:
                return pos + 1, "".join(chars)
            else:
                chars.append(char)
                pos += 1
        return -1, ""

    def number(self, pos: int) -> Token:
        text = self.text
        match = _NUMBER.match(text, pos)
        if match is None:
            return _error(pos, f"unexpected character {text[pos]!r}")
        end = match.end()
        if end < len(text) and text[end] in _NAME_CHARS:  # 1.2.3, 12abc, -info
            return _error(
                pos, f"malformed number {clip(text[pos : _run_end(text, end, _NAME_CHARS)])}"
            )
        return Token("number", match.group(), pos)


def _run_end(text: str, pos: int, chars: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _error(pos: int, message: str) -> Token:
    return Token("error", "", pos, message)
