"""The run-search filter and order-by parser: grammar, validation, errors and fuzzing."""

from __future__ import annotations

import contextlib
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.errors import InvalidFilter, InvalidInput
from loopline.store.query import (
    ATTRIBUTES,
    And,
    Compare,
    Condition,
    Field,
    FieldKind,
    Op,
    Or,
    OrderBy,
    Scalar,
    Value,
    like_pattern_error,
)
from loopline.tracking._filter import MAX_DEPTH, MAX_LENGTH, parse_filter, parse_order_by


def metric(key: str, op: Op, value: Value) -> Compare:
    return Compare(Field("metric", key), op, value)


def param(key: str, op: Op, value: Value) -> Compare:
    return Compare(Field("param", key), op, value)


def tag(key: str, op: Op, value: Value) -> Compare:
    return Compare(Field("tag", key), op, value)


def attribute(key: str, op: Op, value: Value) -> Compare:
    return Compare(Field("attribute", key), op, value)


@contextlib.contextmanager
def old_spelling(text: str) -> Iterator[None]:
    """Double-quoted names still parse, with a DeprecationWarning (backticks are the spelling)."""
    if '"' not in text:
        yield
        return
    with pytest.deprecated_call(match="names are bare or in backticks"):
        yield


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """For generated text that may use the deprecated double-quoted names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def parse_error(text: str) -> InvalidFilter:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    return info.value


# Parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t "])
def test_no_filter_text_means_no_condition(text: str | None) -> None:
    assert parse_filter(text) is None


def test_single_comparison_is_returned_bare() -> None:
    assert parse_filter("metrics.auc > 0.9") == metric("auc", ">", 0.9)


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("metrics", "metric"),
        ("metric", "metric"),
        ("METRICS", "metric"),
        ("params", "param"),
        ("param", "param"),
        ("tags", "tag"),
        ("Tag", "tag"),
        ("attributes", "attribute"),
        ("attribute", "attribute"),
        ("attr", "attribute"),
        ("run", "attribute"),
    ],
)
def test_every_prefix_alias_names_its_field_kind(prefix: str, kind: FieldKind) -> None:
    parsed = parse_filter(f"{prefix}.status is null")
    assert parsed == Compare(Field(kind, "status"), "is null", None)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("metrics.val/loss", "val/loss"),
        ("metrics.f1.macro", "f1.macro"),
        ("metrics.a-b:c_1", "a-b:c_1"),
        ("metrics.1st", "1st"),
        ("metrics.`my metric`", "my metric"),
        ('metrics."my metric"', "my metric"),
        ("metrics.`a\\`b`", "a`b"),
        ('metrics."a\\"b"', 'a"b'),
        ('metrics."a""b"', 'a"b'),
        ("metrics.`back\\\\slash`", "back\\slash"),
        ("metrics.`and`", "and"),
        ("metrics.AUC", "AUC"),
    ],
)
def test_field_names_allow_path_characters_and_quoting(text: str, key: str) -> None:
    with old_spelling(text):
        assert parse_filter(f"{text} >= 1") == metric(key, ">=", 1.0)


@pytest.mark.parametrize(
    ("written", "op"),
    [
        ("=", "="),
        ("==", "="),
        ("!=", "!="),
        ("<>", "!="),
        ("<", "<"),
        ("<=", "<="),
        (">", ">"),
        (">=", ">="),
    ],
)
def test_symbol_operators_and_their_synonyms(written: str, op: Op) -> None:
    assert parse_filter(f"metrics.loss {written} 2") == metric("loss", op, 2.0)
    assert parse_filter(f"metrics.loss{written}2") == metric("loss", op, 2.0)


@pytest.mark.parametrize(
    ("written", "op"), [("like", "like"), ("ILIKE", "ilike"), ("Like", "like")]
)
def test_like_operators_are_case_insensitive_keywords(written: str, op: Op) -> None:
    assert parse_filter(f"params.model {written} 'xgb%'") == param("model", op, "xgb%")


def test_like_backslash_escapes_reach_the_pattern_unchanged() -> None:
    # the string literal decodes only \' and \\; \% and \_ stay for LIKE to read
    assert parse_filter(r"params.x LIKE '\%'") == param("x", "like", "\\%")
    assert parse_filter(r"params.x LIKE 'a\_b'") == param("x", "like", "a\\_b")
    assert parse_filter(r"params.x LIKE '\\\\'") == param("x", "like", "\\\\")


@pytest.mark.parametrize("text", [r"params.x LIKE 'abc\\'", r"params.x ilike '\\\\\\'"])
def test_like_pattern_ending_in_a_lone_backslash_is_refused(text: str) -> None:
    with pytest.raises(InvalidFilter, match="single backslash") as caught:
        parse_filter(text)
    assert caught.value.position == text.index("'")


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1", 1.0),
        ("-2.5", -2.5),
        ("+3", 3.0),
        ("1e3", 1000.0),
        ("1.5E-2", 0.015),
        (".5", 0.5),
        ("5.", 5.0),
        ("007", 7.0),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("+inf", math.inf),
        ("Infinity", math.inf),
        ("-INFINITY", -math.inf),
    ],
)
def test_numbers_are_floats(written: str, value: float) -> None:
    parsed = parse_filter(f"metrics.x = {written}")
    assert parsed == metric("x", "=", value)
    assert isinstance(parsed, Compare)
    assert type(parsed.value) is float


@pytest.mark.parametrize("written", ["nan", "NaN", "-nan", "+NAN"])
def test_nan_is_a_number(written: str) -> None:
    parsed = parse_filter(f"metrics.x != {written}")
    assert isinstance(parsed, Compare)
    assert isinstance(parsed.value, float)
    assert math.isnan(parsed.value)


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("'xgb'", "xgb"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ("'back\\\\slash'", "back\\slash"),
        ("'C:\\data'", "C:\\data"),
        ("''", ""),
        ("'and or ( ) ; --'", "and or ( ) ; --"),
        ("'ünïcødé ✓'", "ünïcødé ✓"),
        ("'two\nlines'", "two\nlines"),
    ],
)
def test_single_quoted_strings_and_their_escapes(written: str, value: str) -> None:
    assert parse_filter(f"tags.note = {written}") == tag("note", "=", value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("params.max_depth = 6", "6"),
        ("params.C = 1.0", "1.0"),
        ("params.alpha != -1e-3", "-1e-3"),
        ("tags.retries = +2", "+2"),
        ("params.x = inf", "inf"),
    ],
)
def test_numbers_compared_to_params_and_tags_keep_their_source_text(text: str, value: str) -> None:
    parsed = parse_filter(text)
    assert isinstance(parsed, Compare)
    assert parsed.value == value


def test_in_lists_become_tuples_and_allow_a_trailing_comma() -> None:
    assert parse_filter("metrics.k in (1, 2.5, -inf)") == metric("k", "in", (1.0, 2.5, -math.inf))
    assert parse_filter("metrics.k IN (1,)") == metric("k", "in", (1.0,))
    assert parse_filter("params.model not in ('a', 'b',)") == param("model", "not in", ("a", "b"))
    assert parse_filter("params.depth NOT IN (6, '7')") == param("depth", "not in", ("6", "7"))


@pytest.mark.parametrize(
    ("text", "op"),
    [("is null", "is null"), ("IS NOT NULL", "is not null"), ("is  not\tnull", "is not null")],
)
def test_null_tests_have_no_value(text: str, op: Op) -> None:
    assert parse_filter(f"tags.team {text}") == tag("team", op, None)
    assert parse_filter(f"metrics.auc {text}") == metric("auc", op, None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("attributes.start_time > 1714560000000", 1714560000000.0),
        ("attributes.end_time <= '2024-05-01'", "2024-05-01"),
        ("run.start_time >= '2024-05-01T12:30:00+02:00'", "2024-05-01T12:30:00+02:00"),
        ("attr.end_time < '2024-05-01 12:30:00Z'", "2024-05-01 12:30:00Z"),
    ],
)
def test_time_attributes_take_epoch_ms_or_iso_strings(text: str, value: object) -> None:
    parsed = parse_filter(text)
    assert isinstance(parsed, Compare)
    assert parsed.value == value


def test_time_attributes_accept_in_lists_of_either_form() -> None:
    parsed = parse_filter("attributes.start_time in (0, '2024-01-01')")
    assert parsed == attribute("start_time", "in", (0.0, "2024-01-01"))


def test_other_attributes_are_strings() -> None:
    assert parse_filter("attributes.status = 'FINISHED'") == attribute("status", "=", "FINISHED")
    assert parse_filter("run.name like 'sweep-%'") == attribute("name", "like", "sweep-%")
    assert parse_filter("attributes.experiment_id = 3") == attribute("experiment_id", "=", "3")
    assert parse_filter("attributes.git_dirty = 'true'") == attribute("git_dirty", "=", "true")
    assert parse_filter("attributes.git_dirty in ('False')") == attribute(
        "git_dirty", "in", ("False",)
    )


# Structure: precedence, parentheses, flattening ------------------------------------------

A = metric("a", ">", 1.0)
B = metric("b", ">", 1.0)
C = metric("c", ">", 1.0)
D = metric("d", ">", 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a > 1 and metrics.b > 1", And((A, B))),
        ("metrics.a > 1 AND metrics.b > 1 Or metrics.c > 1", Or((And((A, B)), C))),
        ("metrics.a > 1 or metrics.b > 1 and metrics.c > 1", Or((A, And((B, C))))),
        ("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1", And((Or((A, B)), C))),
        ("((metrics.a > 1))", A),
        (
            "(metrics.a > 1 and metrics.b > 1) and (metrics.c > 1 and metrics.d > 1)",
            And((A, B, C, D)),
        ),
        ("metrics.a > 1 or (metrics.b > 1 or (metrics.c > 1))", Or((A, B, C))),
        (
            "metrics.a > 1 and (metrics.b > 1 or metrics.c > 1) and metrics.d > 1",
            And((A, Or((B, C)), D)),
        ),
        ("metrics.a>1 and(metrics.b>1 or metrics.c>1)", And((A, Or((B, C))))),
    ],
)
def test_and_binds_tighter_than_or_and_same_kind_groups_flatten(
    text: str, expected: Condition
) -> None:
    assert parse_filter(text) == expected


def test_nesting_up_to_the_limit_parses() -> None:
    text = "(" * MAX_DEPTH + "metrics.a > 1" + ")" * MAX_DEPTH
    assert parse_filter(text) == A


def test_nesting_past_the_limit_is_rejected_at_the_extra_parenthesis() -> None:
    error = parse_error("(" * (MAX_DEPTH + 1) + "metrics.a > 1" + ")" * (MAX_DEPTH + 1))
    assert error.position == MAX_DEPTH
    assert "nested deeper than 50" in error.message


def test_deep_nesting_far_past_the_limit_fails_fast_without_recursion_error() -> None:
    error = parse_error("(" * (MAX_LENGTH - 1))
    assert error.position == MAX_DEPTH


def test_a_long_flat_filter_parses_quickly() -> None:
    text = " or ".join(f"metrics.m{i} > {i}" for i in range(450))
    assert len(text) <= MAX_LENGTH
    started = time.perf_counter()
    parsed = parse_filter(text)
    assert time.perf_counter() - started < 1.0
    assert isinstance(parsed, Or)
    assert len(parsed.items) == 450


def test_input_over_the_length_limit_is_rejected() -> None:
    error = parse_error("metrics.a > 1 or " * 600)
    assert error.position == MAX_LENGTH
    assert "longer than 10000 characters" in error.message


# SQL-injection-looking input ---------------------------------------------------------


def test_quote_injection_stays_inside_the_string_value() -> None:
    parsed = parse_filter("params.model = 'x'' or 1=1 --'")
    assert parsed == param("model", "=", "x' or 1=1 --")


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("metrics.auc > 0.9; drop table runs", 17),
        ("params.model = 'x'; delete from runs", 18),
        ("metrics.auc > 0.9 -- comment", 18),
        ("metrics.auc > 0.9 union select * from runs", 18),
        ("params.model = x or 1=1", 15),
        ("params.model = 'x' or 1=1", 22),
        ("metrics.auc > 0.9 /* */", 18),
        ("params.`model` = 'x' or params.`a`b = 'c'", 34),
    ],
)
def test_injection_attempts_are_syntax_errors(text: str, position: int) -> None:
    assert parse_error(text).position == position


# Errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("metrics.auc >> 1", 12, "expected a comparison operator, got '>>'"),
        ("metrics.auc ! 1", 12, "expected a comparison operator, got '!'"),
        ("metrics.auc 1", 12, "expected a comparison operator, got '1'"),
        ("metrics.auc", 11, "expected a comparison operator, got the end of the input"),
        ("metrics.auc >", 13, "expected a number or a quoted string, got the end of the input"),
        ("metrics.auc > and", 14, "expected a number or a quoted string, got 'and'"),
        ("params.a = xgb", 11, "expected a number or a quoted string, got 'xgb'"),
        ('params.a = "xgb"', 11, "expected a number or a quoted string"),
        ("params.a = 'abc", 11, "unterminated string"),
        ("params.a = 'it\\'", 11, "unterminated string"),
        ("metrics.`abc > 1", 8, "unterminated quoted name"),
        ("metrics.`` > 1", 8, "empty quoted name"),
        ("metrics. > 1", 8, "expected a name after 'metrics.'"),
        ("metrics. `a` > 1", 8, "expected a name after 'metrics.'"),
        ("metrics > 1", 0, "expected a field such as metrics.auc, got 'metrics'"),
        ("auc > 1", 0, "expected a field such as metrics.auc, got 'auc'"),
        ("foo.bar = 1", 0, "expected a field such as metrics.auc, got 'foo.bar'"),
        ("'x' = params.a", 0, "expected a field such as metrics.auc, got the string 'x'"),
        ("metrics.auc > 1 @", 16, "unexpected character '@'"),
        ("metrics.auc > 1 metrics.b > 2", 16, "expected 'and', 'or' or the end, got 'metrics.b'"),
        ("metrics.auc > 1)", 15, "expected 'and', 'or' or the end, got ')'"),
        ("()", 1, "empty parentheses"),
        ("metrics.a > 1 and ()", 19, "empty parentheses"),
        ("(metrics.a > 1", 14, "expected 'and', 'or' or ')', got the end of the input"),
        ("and", 0, "expected a field such as metrics.auc, got 'and'"),
        ("metrics.a > 1 and", 17, "got the end of the input"),
        ("metrics.a > 1 and and metrics.b > 1", 18, "got 'and'"),
        ("metrics.a > 1 or or metrics.b > 1", 17, "got 'or'"),
        ("or metrics.a > 1", 0, "got 'or'"),
        ("metrics.a = 1.2.3", 12, "malformed number '1.2.3'"),
        ("metrics.a = 12abc", 12, "malformed number '12abc'"),
        ("metrics.a = -info", 12, "malformed number '-info'"),
        ("metrics.a = 1e", 12, "malformed number '1e'"),
        ("metrics.a = -", 12, "unexpected character '-'"),
        ("metrics.a = .", 12, "unexpected character '.'"),
        ("metrics.a in ()", 14, "expected a number or a quoted string, got ')'"),
        ("metrics.a in 1", 13, "expected '(' to start a list of values, got '1'"),
        ("metrics.a in (1 2)", 16, "expected ',' or ')' in the list of values, got '2'"),
        ("metrics.a in (1,,2)", 16, "expected a number or a quoted string, got ','"),
        ("metrics.a in (1", 15, "expected ',' or ')' in the list of values"),
        ("metrics.a not like 1", 14, "expected 'in' after 'not', got 'like'"),
        ("metrics.a is 1", 13, "expected 'null' or 'not null' after 'is', got '1'"),
        ("metrics.a is not 1", 17, "expected 'null' or 'not null' after 'is'"),
        ("not metrics.a > 1", 0, "expected a field such as metrics.auc, got 'not'"),
    ],
)
def test_syntax_errors_point_at_the_offending_token(
    text: str, position: int, fragment: str
) -> None:
    error = parse_error(text)
    assert error.position == position
    assert error.text == text
    assert error.message.startswith(f"invalid filter at position {position}: ")
    assert fragment in error.message


@pytest.mark.parametrize(
    ("text", "position", "fragment", "hint"),
    [
        ("metrics.x = 'abc'", 12, "metrics.x compares to numbers, got the string 'abc'", "numbers"),
        ("metrics.x in (1, 'abc')", 17, "metrics.x compares to numbers", "numbers"),
        ("metrics.x like '%'", 10, "operator 'like' cannot be used with metrics.x", "numbers"),
        ("metrics.x ilike '%'", 10, "operator 'ilike' cannot be used", "numbers"),
        (
            "params.max_depth > 6",
            17,
            "operator '>' cannot be used with params.max_depth",
            "params are strings",
        ),
        ("params.a <= 'x'", 9, "operator '<='", "params are strings"),
        ("tags.a < 'x'", 7, "operator '<'", "tags are strings"),
        ("attributes.status >= 'A'", 18, "operator '>='", "attributes are strings"),
        ("attributes.start_time like '2024%'", 22, "operator 'like'", "times"),
        ("attributes.git_dirty like 't%'", 21, "operator 'like'", "'true' or 'false'"),
        ("attributes.git_dirty > 'true'", 21, "operator '>'", "'true' or 'false'"),
    ],
)
def test_type_errors_point_at_the_operator_or_literal_with_a_hint(
    text: str, position: int, fragment: str, hint: str
) -> None:
    error = parse_error(text)
    assert error.position == position
    assert fragment in error.message
    assert error.hint is not None
    assert hint in error.hint


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("attributes.bogus = 'x'", 11, "unknown attribute 'bogus'"),
        ("run.`Start_Time` > 1", 4, "unknown attribute 'Start_Time'"),
        ("attributes.start_time > 'yesterday'", 24, "epoch ms or an ISO-8601 time"),
        ("attributes.end_time in (1, '2024-13-01')", 27, "epoch ms or an ISO-8601 time"),
        ("attributes.start_time > inf", 24, "needs a finite time, got inf"),
        ("attributes.start_time = nan", 24, "needs a finite time"),
        ("attributes.git_dirty = 'maybe'", 23, "is 'true' or 'false', got the string 'maybe'"),
        ("attributes.git_dirty = 1", 23, "is 'true' or 'false', got '1'"),
    ],
)
def test_attribute_errors_point_at_the_name_or_value(
    text: str, position: int, fragment: str
) -> None:
    error = parse_error(text)
    assert error.position == position
    assert fragment in error.message


def test_unknown_attribute_error_lists_the_valid_names() -> None:
    message = parse_error("attributes.bogus = 'x'").message
    assert all(name in message for name in ATTRIBUTES)


def test_the_first_error_in_reading_order_is_reported() -> None:
    # The unterminated string later on must not mask the bad operator before it.
    error = parse_error("metrics.a >> 1 and params.b = 'oops")
    assert error.position == 10


def test_errors_are_invalid_input_with_a_one_line_message() -> None:
    error = parse_error("params.a = 'line one\nline two")
    assert isinstance(error, InvalidInput)
    assert error.http_status == 422
    assert "\n" not in str(error)


def test_long_tokens_are_clipped_in_messages() -> None:
    error = parse_error("metrics.a = " + "x" * 5000)
    assert len(error.message) < 200


# Order by -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("metrics.auc desc", OrderBy(Field("metric", "auc"), descending=True)),
        ("attributes.start_time", OrderBy(Field("attribute", "start_time"))),
        ("params.lr ASC", OrderBy(Field("param", "lr"))),
        ("  tags.team   Desc ", OrderBy(Field("tag", "team"), descending=True)),
        ("metrics.`my metric` DESC", OrderBy(Field("metric", "my metric"), descending=True)),
        ("run.end_time", OrderBy(Field("attribute", "end_time"))),
        ("metrics.val/loss", OrderBy(Field("metric", "val/loss"))),
    ],
)
def test_order_by_items_are_a_field_and_a_direction(item: str, expected: OrderBy) -> None:
    assert parse_order_by([item]) == (expected,)


def test_runs_sort_by_duration_but_no_filter_names_it() -> None:
    assert parse_order_by(["attributes.duration desc"]) == (
        OrderBy(Field("attribute", "duration"), descending=True),
    )
    error = parse_error("attributes.duration > 1000")
    assert "unknown attribute 'duration'" in error.message


def test_order_by_keeps_item_order_and_accepts_none_or_a_single_string() -> None:
    assert parse_order_by(None) == ()
    assert parse_order_by([]) == ()
    assert parse_order_by(("metrics.a desc", "params.b")) == (
        OrderBy(Field("metric", "a"), descending=True),
        OrderBy(Field("param", "b")),
    )
    assert parse_order_by("metrics.a desc") == (OrderBy(Field("metric", "a"), descending=True),)


@pytest.mark.parametrize(
    ("item", "position", "fragment"),
    [
        ("metrics.auc sideways", 12, "expected 'asc', 'desc' or the end, got 'sideways'"),
        ("metrics.auc desc extra", 17, "got 'extra'"),
        ("metrics.auc desc;", 16, "unexpected character ';'"),
        ("", 0, "expected a field such as metrics.auc, got the end of the input"),
        ("auc desc", 0, "expected a field such as metrics.auc, got 'auc'"),
        ("attributes.nope", 11, "unknown attribute 'nope'"),
        ("metrics.auc > 1", 12, "got '>'"),
    ],
)
def test_bad_order_by_items_are_named_in_the_error(item: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_order_by(["metrics.ok", item])
    assert info.value.position == position
    assert info.value.text == item
    assert info.value.message.startswith(f"invalid order_by item {item!r} at position {position}")
    assert fragment in info.value.message


# Property tests -----------------------------------------------------------------------

BARE_NAME = re.compile(r"[A-Za-z0-9_\-./:]+")
KINDS: list[FieldKind] = ["metric", "param", "tag", "attribute"]
ALIASES: dict[FieldKind, list[str]] = {
    "metric": ["metrics", "metric"],
    "param": ["params", "param"],
    "tag": ["tags", "tag"],
    "attribute": ["attributes", "attribute", "attr", "run"],
}
ATTRIBUTE_TYPES = {"start_time": "time", "end_time": "time", "git_dirty": "boolean"}
OPERATORS: dict[str, list[Op]] = {
    "number": ["=", "!=", "<", "<=", ">", ">="],
    "time": ["=", "!=", "<", "<=", ">", ">="],
    "string": ["=", "!=", "like", "ilike"],
    "boolean": ["=", "!="],
}
SPELLINGS = {"=": ["=", "=="], "!=": ["!=", "<>"]}
# Any text, and text dense in the characters that quoting and escaping must get right.
TEXTS = st.text() | st.text(alphabet="'\"`\\ a.%_(),=\n")


def cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


def render_string(value: str, backslash: bool) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'" if backslash else "''")
    return f"'{escaped}'"


def render_name(key: str, quote: str) -> str:
    return quote + key.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


@st.composite
def fields(draw: st.DrawFn) -> tuple[Field, str, str]:
    """A field, its rendering, and the type of value it compares with."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
        value_type = ATTRIBUTE_TYPES.get(key, "string")
    else:
        key = draw(TEXTS.filter(bool))
        value_type = "number" if kind == "metric" else "string"
    prefix = draw(st.sampled_from(ALIASES[kind]).flatmap(cased))
    if BARE_NAME.fullmatch(key) and draw(st.booleans()):
        name = key
    else:
        name = render_name(key, draw(st.sampled_from(["`", '"'])))
    return Field(kind, key), f"{prefix}.{name}", value_type


def numbers(*, finite: bool = False) -> st.SearchStrategy[tuple[Scalar, str]]:
    floats = st.floats(allow_nan=not finite, allow_infinity=not finite)
    return floats.map(lambda number: (number, repr(number)))


def strings(texts: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[Scalar, str]]:
    return st.tuples(texts, st.booleans()).map(lambda pair: (pair[0], render_string(*pair)))


def values(value_type: str) -> st.SearchStrategy[tuple[Scalar, str]]:
    """(value, rendering) pairs for a field's value type."""
    if value_type == "number":
        return numbers()
    if value_type == "time":
        moments = st.datetimes(timezones=st.none() | st.just(UTC))
        iso_times = strings(moments.map(lambda moment: moment.isoformat()))
        return numbers(finite=True) | iso_times
    if value_type == "boolean":
        return strings(st.sampled_from(["true", "false", "TRUE", "False"]))
    return strings(TEXTS)


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[Condition, str]:
    field, field_text, value_type = draw(fields())
    tests: list[Op] = ["in", "not in", "is null", "is not null"]
    op = draw(st.sampled_from(OPERATORS[value_type] + tests))
    if op in ("is null", "is not null"):
        words = [draw(cased(word)) for word in op.split()]
        return Compare(field, op, None), f"{field_text} {' '.join(words)}"
    if op in ("in", "not in"):
        pairs = draw(st.lists(values(value_type), min_size=1, max_size=4))
        words = [draw(cased(word)) for word in op.split()]
        trailing = "," if draw(st.booleans()) else ""
        listed = ", ".join(text for _, text in pairs)
        text = f"{field_text} {' '.join(words)} ({listed}{trailing})"
        return Compare(field, op, tuple(value for value, _ in pairs)), text
    candidates = values(value_type)
    if op in ("like", "ilike"):  # a lone trailing backslash escapes nothing: refused
        candidates = candidates.filter(lambda pair: like_pattern_error(str(pair[0])) is None)
    value, value_text = draw(candidates)
    written = draw(st.sampled_from(SPELLINGS.get(op, [op])).flatmap(cased))
    return Compare(field, op, value), f"{field_text} {written} {value_text}"


@st.composite
def combined(
    draw: st.DrawFn, children: st.SearchStrategy[tuple[Condition, str]]
) -> tuple[Condition, str]:
    """And/Or of 2-3 children (parenthesized where needed or by chance), flattened."""
    parts = draw(st.lists(children, min_size=2, max_size=3))
    kind: type[And] | type[Or] = And if draw(st.booleans()) else Or
    items: list[Condition] = []
    for condition, _ in parts:
        items.extend(condition.items if isinstance(condition, kind) else (condition,))
    joiner = draw(cased("and" if kind is And else "or"))
    texts = [
        f"({text})" if draw(st.booleans()) or (kind is And and isinstance(child, Or)) else text
        for child, text in parts
    ]
    return kind(tuple(items)), f" {joiner} ".join(texts)


conditions = st.recursive(comparisons(), combined, max_leaves=8)


@given(conditions)
def test_rendered_conditions_parse_back_to_the_same_tree(case: tuple[Condition, str]) -> None:
    condition, text = case
    # repr, not ==, so that NaN (which is unequal to itself) compares as written.
    with quietly():
        assert repr(parse_filter(text)) == repr(condition)


@given(fields(), st.booleans())
def test_rendered_order_by_items_parse_back(case: tuple[Field, str, str], descending: bool) -> None:
    field, text, _ = case
    item = f"{text} desc" if descending else text
    with quietly():
        assert parse_order_by([item]) == (OrderBy(field, descending=descending),)


# fmt: off
FRAGMENTS = [
    "metrics.auc", "params.lr", "tags.`a b`", "attributes.start_time", "run.git_dirty",
    "attr.nope", "metrics.", "`", '"', "'", "(", ")", ",", ";", "and", "or", "not", "in",
    "is", "null", "like", "ilike", "=", "==", "!=", "<>", "<", ">=", ">>", "!", "1", "-2.5e3",
    ".5", "1.2.3", "nan", "-inf", "'x''y'", "'2024-01-01'", "'true'", "\\", "--", "\n",
]
# fmt: on


def fuzz_inputs() -> st.SearchStrategy[str]:
    token_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join)
    glued = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
    grammar_chars = st.text(alphabet="metrics.aund or()'\"`\\ =<>!,-+0123456789eE;", max_size=200)
    return st.one_of(st.text(), token_soup, glued, grammar_chars)


def invalid_filter_or_none(call: Callable[[str], object], text: str) -> InvalidFilter | None:
    try:
        with quietly():
            call(text)
    except InvalidFilter as error:
        return error
    return None


@given(fuzz_inputs())
@settings(max_examples=500, deadline=timedelta(milliseconds=500))
def test_arbitrary_text_raises_nothing_but_invalid_filter(text: str) -> None:
    for call in (parse_filter, lambda item: parse_order_by([item])):
        error = invalid_filter_or_none(call, text)
        if error is not None:
            assert 0 <= error.position <= len(text)
            assert "\n" not in error.message
