"""The condition language shared by runs filters, slices and gate rules (loopline.expr):
tokens, precedence, quoting, positioned errors, deprecated spellings, round trips, fuzzing."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline import expr
from loopline.errors import InvalidFilter
from loopline.evaluation._slices import slice_mask
from loopline.expr import And, Compare, Literal, Name, Not, Or, Truth
from loopline.promotion._rules import parse_rule
from loopline.tracking._filter import parse_filter, parse_order_by

GENERIC = expr.Dialect("condition", bare_names=True)
STRICT = expr.Dialect("condition")


def parse(text: str, dialect: expr.Dialect = GENERIC) -> expr.Condition:
    return expr.parse(text, dialect).condition


def error(text: str, dialect: expr.Dialect = GENERIC) -> InvalidFilter:
    with pytest.raises(InvalidFilter) as info:
        expr.parse(text, dialect)
    return info.value


def name(*parts: str) -> Name:
    return Name(parts)


def cmp(left: str, op: expr.Op, right: float | str) -> Compare:
    return Compare(name(*left.split(".")), op, Literal(right))


# Tokens and the tree ----------------------------------------------------------------------


def test_names_split_on_dots_and_quote_in_backticks() -> None:
    assert parse("metrics.auc > 1") == cmp("metrics.auc", ">", 1.0)
    assert parse("slices.`seg=gold`.auc >= .5") == Compare(
        name("slices", "seg=gold", "auc"), ">=", Literal(0.5)
    )
    assert parse("`my col` == 'x'") == Compare(name("my col"), "==", Literal("x"))
    assert parse("metrics.val/loss:1 != 2") == cmp("metrics.val/loss:1", "!=", 2.0)
    assert parse("run.1st.-x < 0") == Compare(name("run", "1st", "-x"), "<", Literal(0.0))


def test_positions_of_names_parts_and_operators_are_kept_but_not_compared() -> None:
    node = parse("  metrics.`a b` >= 1")
    assert isinstance(node, Compare) and isinstance(node.left, Name)
    assert (node.left.pos, node.left.starts, node.left.text) == (2, (2, 10), "metrics.`a b`")
    assert (node.pos, node.written) == (16, ">=")
    assert node == parse("metrics.`a b`>=1")


@pytest.mark.parametrize(
    ("written", "op"),
    [("=", "=="), ("==", "=="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="),
     (">", ">"), (">=", ">="), ("LIKE", "like"), ("ilike", "ilike")],
)  # fmt: skip
def test_every_spelling_of_every_operator(written: str, op: expr.Op) -> None:
    assert parse(f"a {written} 'x'") == cmp("a", op, "x")


@pytest.mark.parametrize(
    ("written", "value"),
    [("1", 1.0), ("-2.5e3", -2500.0), ("+.5", 0.5), ("5.", 5.0), ("inf", math.inf),
     ("-Infinity", -math.inf), ("'it''s'", "it's"), ("'it\\'s'", "it's"), ("'a\\\\b'", "a\\b"),
     ("'C:\\data'", "C:\\data"), ("''", "")],
)  # fmt: skip
def test_literals(written: str, value: float | str) -> None:
    node = parse(f"a == {written}")
    assert isinstance(node, Compare) and isinstance(node.right, Literal)
    assert node.right.value == value and type(node.right.value) is type(value)
    assert node.right.text == written


def test_nan_is_a_number_and_keywords_are_case_insensitive() -> None:
    node = parse("a == NaN")
    assert isinstance(node, Compare) and isinstance(node.right, Literal)
    assert isinstance(node.right.value, float) and math.isnan(node.right.value)
    assert parse("a IS NOT NULL") == Compare(name("a"), "is not null", None)
    assert parse("a Not In (1, 'b',)") == Compare(name("a"), "not in", (Literal(1.0), Literal("b")))


def test_comments_run_to_the_end_and_quotes_protect_a_hash() -> None:
    assert parse("a == '#x'  # a comment") == cmp("a", "==", "#x")


# Precedence -------------------------------------------------------------------------------

A, B, C = Truth(name("a")), Truth(name("b")), Truth(name("c"))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a or b and c", Or((A, And((B, C))))),
        ("(a or b) and c", And((Or((A, B)), C))),
        ("not a and b", And((Not(A), B))),
        ("not (a and b)", Not(And((A, B)))),
        ("not not a", Not(Not(A))),
        ("a and (b and c)", And((A, B, C))),
        ("(a or b) or (c)", Or((A, B, C))),
        ("a == 1 or not b > 2", Or((cmp("a", "==", 1.0), Not(cmp("b", ">", 2.0))))),
    ],
)
def test_not_binds_tighter_than_and_tighter_than_or(text: str, tree: expr.Condition) -> None:
    assert parse(text) == tree


def test_a_bare_name_stands_alone_only_where_the_dialect_allows_it() -> None:
    assert parse("a") == A
    assert error("a", STRICT).message.endswith(
        "expected a comparison operator, got the end of the input"
    )


# Errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "detail"),
    [
        ("", 0, "the condition is empty"),
        ("  # nothing", 0, "the condition is empty"),
        ("a >> 1", 2, "expected a comparison operator, got '>>'"),
        ("a >", 3, "expected a number or a quoted string, got the end of the input"),
        ("a > 1 b", 6, "expected 'and', 'or' or the end, got 'b'"),
        ("(a > 1", 6, "expected 'and', 'or' or ')', got the end of the input"),
        ("()", 1, "empty parentheses"),
        ("a $ 1", 2, "unexpected character '$'; expected a comparison operator"),
        ("a == 'x", 5, "unterminated string"),
        ("`a == 1", 0, "unterminated quoted name"),
        ("`` == 1", 0, "empty quoted name"),
        ("a. == 1", 2, "expected a name after 'a.'"),
        ("a == 1.2.3", 5, "malformed number '1.2.3'"),
        ("and == 1", 0, "expected a name, got 'and'"),
        ("a in 1", 5, "expected '(' to start a list of values, got '1'"),
        ("a in (b)", 6, "expected a number or a quoted string, got 'b'"),
        ("a is 1", 5, "expected 'null' or 'not null' after 'is', got '1'"),
        ("a not like 'x'", 6, "expected 'in' after 'not', got 'like'"),
    ],
)
def test_errors_name_the_position_and_what_was_expected(
    text: str, position: int, detail: str
) -> None:
    raised = error(text)
    assert raised.position == position
    assert raised.text == text
    assert raised.message == f"invalid condition at position {position}: {detail}"


def test_nesting_and_length_are_bounded() -> None:
    deep = "(" * (expr.MAX_DEPTH + 1) + "a" + ")" * (expr.MAX_DEPTH + 1)
    assert error(deep).position == expr.MAX_DEPTH
    assert error("not " * (expr.MAX_DEPTH + 1) + "a").position == 4 * expr.MAX_DEPTH
    assert parse("(" * expr.MAX_DEPTH + "a" + ")" * expr.MAX_DEPTH) == A
    assert "longer than 10000 characters" in error("a or " * 3000 + "a").message


def test_a_dialect_words_errors_its_own_way() -> None:
    dialect = expr.Dialect(
        "rule", end=None, finish="the end of the rule", combine=False, operator_list="<, >",
        render=lambda text, position, detail: f"{text}|{position}|{detail}",
    )  # fmt: skip
    assert error("a >", dialect).message == "a >|3|expected a number or a quoted string"
    assert error("a => 1", dialect).message == "a => 1|2|unknown operator '=>' (operators are <, >)"
    assert error("a > 1 or b", dialect).message.endswith("expected the end of the rule, got 'or'")


# Double quotes: the old meaning per area, deprecated --------------------------------------


def test_double_quotes_are_names_or_strings_by_dialect_and_warn_only_when_asked() -> None:
    as_names = expr.parse('metrics."a b" > 1', STRICT)
    assert as_names.condition == Compare(name("metrics", "a b"), ">", Literal(1.0))
    as_strings = expr.parse('a == "x"', expr.Dialect("slice", double_quotes="string"))
    assert as_strings.condition == cmp("a", "==", "x")
    with pytest.deprecated_call(match=r"write metrics.`a b`; names are bare or in backticks"):
        as_names.warn()
    with pytest.deprecated_call(match=r"write 'x'; strings are in single quotes"):
        as_strings.warn()
    assert expr.parse("a == 'x'", STRICT).deprecated == ()


def test_each_area_warns_about_its_old_spelling() -> None:
    with pytest.deprecated_call(match="names are bare or in backticks"):
        assert parse_filter("params.\"my key\" = 'x'") == parse_filter("params.`my key` = 'x'")
    with pytest.deprecated_call(match="names are bare or in backticks"):
        assert parse_order_by(['metrics."a b" desc']) == parse_order_by(["metrics.`a b` desc"])
    with pytest.deprecated_call(match="names are bare or in backticks"):
        assert parse_rule('slices."x".auc > 0').path == ("slices", "x", "auc")
    frame = pd.DataFrame({"tier": ["a", "b"]})
    with pytest.deprecated_call(match="strings are in single quotes"):
        assert slice_mask(frame, 'tier == "a"').tolist() == [True, False]


def test_the_new_spellings_mean_the_same_in_every_area() -> None:
    frame = pd.DataFrame({"my col": [1.0, 2.0]})
    assert slice_mask(frame, "`my col` = 1 or `my col` <> 1").tolist() == [True, True]
    assert parse_filter("metrics.`my col` <> 1") == parse_filter("metrics.`my col` != 1")
    assert parse_rule("metrics.`my col` = 1").op == parse_rule("metrics.`my col` == 1").op


# Round trips ------------------------------------------------------------------------------

PARTS = st.text(min_size=1, max_size=8) | st.sampled_from(["a", "x_1", "and", "inf", "1st"])
NAMES = st.lists(PARTS, min_size=1, max_size=3).map(lambda parts: Name(tuple(parts)))
NUMBERS = st.floats(allow_nan=False).map(Literal)
STRINGS = st.text(max_size=10).map(Literal)
OPERANDS: st.SearchStrategy[expr.Operand] = NAMES | NUMBERS | STRINGS


def render_operand(operand: expr.Operand) -> str:
    if isinstance(operand, Name):
        return expr.render_name(operand.parts)
    if isinstance(operand.value, float):
        return repr(operand.value)
    return expr.quote_string(operand.value)


def render(node: expr.Condition) -> str:
    if isinstance(node, Truth):
        return render_operand(node.name)
    if isinstance(node, Not):
        return f"not ({render(node.item)})"
    if isinstance(node, And | Or):
        joiner = " and " if isinstance(node, And) else " or "
        return joiner.join(f"({render(item)})" for item in node.items)
    left = render_operand(node.left)
    if node.right is None:
        return f"{left} {node.op}"
    if isinstance(node.right, tuple):
        return f"{left} {node.op} ({', '.join(map(render_operand, node.right))})"
    return f"{left} {node.op} {render_operand(node.right)}"


comparisons = st.one_of(
    st.builds(Truth, NAMES),
    st.builds(
        Compare, OPERANDS, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "like", "ilike"]),
        OPERANDS,
    ),
    st.builds(Compare, OPERANDS, st.sampled_from(["in", "not in"]),
              st.lists(NUMBERS | STRINGS, min_size=1, max_size=3).map(tuple)),
    st.builds(Compare, OPERANDS, st.sampled_from(["is null", "is not null"]), st.none()),
)  # fmt: skip


def flattened(kind: type[And] | type[Or], items: list[expr.Condition]) -> expr.Condition:
    flat: list[expr.Condition] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


trees = st.recursive(
    comparisons,
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda items: flattened(And, items)),
        st.lists(children, min_size=2, max_size=3).map(lambda items: flattened(Or, items)),
    ),
    max_leaves=8,
)


@given(trees)
def test_rendered_trees_parse_back_to_the_same_tree(tree: expr.Condition) -> None:
    assert parse(render(tree)) == tree


@given(st.lists(PARTS, min_size=1, max_size=4))
def test_render_name_round_trips_any_parts(parts: list[str]) -> None:
    node = parse(expr.render_name(tuple(parts)))
    assert node == Truth(Name(tuple(parts)))


# Fuzzing: any text fails only with the project's own parse error ---------------------------

# fmt: off
FRAGMENTS = [
    "metrics.auc", "params.lr", "`a b`", '"a b"', "age", "day", "flag", "tier", "x.y", "and",
    "or", "not", "in", "is", "null", "like", "(", ")", ",", "=", "==", "<>", ">=", ">>", "!",
    "1", "-2.5e3", ".5", "1.2.3", "nan", "-inf", "'x''y'", "'2024-01-01'", "'soon'", "\\",
    "#", ".", "\n",
]
# fmt: on
FRAME = pd.DataFrame(
    {
        "age": [20, 70],
        "flag": [True, False],
        "tier": ["a", None],
        "day": pd.to_datetime(["2024-01-01", None]),
    }
)


def fuzz_inputs() -> st.SearchStrategy[str]:
    soup = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(" ".join)
    glued = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
    chars = st.text(alphabet="agedyflt.x()'\"`\\ =<>!,-+0123456789eE#", max_size=120)
    return st.one_of(st.text(), soup, glued, chars)


@given(fuzz_inputs())
@settings(max_examples=400, deadline=None)  # slice_mask builds frames: slow on a busy machine
def test_arbitrary_text_raises_nothing_but_invalid_filter(text: str) -> None:
    calls = [
        lambda: expr.parse(text, GENERIC),
        lambda: parse_filter(text),
        lambda: parse_rule(text),
        lambda: slice_mask(FRAME, text),
    ]
    for call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            raised = parse_error_or_none(call)
        assert raised is None or 0 <= raised.position <= len(text)


def parse_error_or_none(call: Callable[[], object]) -> InvalidFilter | None:
    try:
        call()
    except InvalidFilter as raised:
        return raised
    return None
