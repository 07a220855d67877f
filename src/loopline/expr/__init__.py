"""The condition language of runs filters, slice conditions and gate rules (see _parser)."""

from loopline.expr._parser import Parsed, SortKey, parse, parse_sort_key
from loopline.expr.dialect import Dialect
from loopline.expr.tree import (
    KEYWORDS,
    MAX_DEPTH,
    SPECIAL_NUMBERS,
    SYMBOL_OPS,
    And,
    Compare,
    Condition,
    Literal,
    Name,
    Not,
    Op,
    Operand,
    Or,
    Truth,
    clip,
    quote_name,
    quote_string,
    render_name,
    show,
)

__all__ = [
    "KEYWORDS", "MAX_DEPTH", "SPECIAL_NUMBERS", "SYMBOL_OPS", "And", "Compare", "Condition",
    "Dialect", "Literal", "Name", "Not", "Op", "Operand", "Or", "Parsed", "SortKey", "Truth",
    "clip", "parse", "parse_sort_key", "quote_name", "quote_string", "render_name", "show",
]  # fmt: skip
