"""The one condition language of loopline: runs filters, slice conditions and gate rules.

One tokenizer and one recursive-descent parser turn text into a tree of frozen dataclasses;
user text is never evaluated. Each area gives the tree its meaning: tracking compiles it to
SQL, evaluation to a boolean mask over a frame, promotion checks it against a mapping of
facts. The grammar (keywords are case-insensitive):

    condition  := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand op operand
                | operand ["not"] "in" "(" literal ("," literal)* [","] ")"
                | operand "is" ["not"] "null"
                | name                                 (where the area allows a bare name)
    operand    := name | literal
    name       := segment ("." segment)*               (no spaces around the dots)
    segment    := [A-Za-z_][A-Za-z0-9_\\-/:]* | `quoted`  (after a dot a segment may start
                                                          with a digit or '-')
    literal    := number | 'string'
    number     := [+-]? digits ["." digits] [e [+-] digits] | [+-]? (nan | inf | infinity)
    op         := = | == | != | <> | < | <= | > | >= | like | ilike

Quoting: strings in single quotes, names bare or in backticks. Inside either, a doubled
quote or a backslash before the quote is the quote, and `\\\\` is one backslash. Double
quotes kept their old meaning per area (a name in filters and gate rules, a string in
slices), with a DeprecationWarning naming the new spelling. `#` starts a comment that runs
to the end of the text. Positions in errors are 0-based character offsets.
"""

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
