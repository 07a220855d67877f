"""Rows of a request become a checked block the same way on the quick paths (rows that are
objects with exactly the inputs; numpy's type discovery for all-number rows) as on the
value-by-value path: the same matrix, the same dropped fields, the same error."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.errors import LooplineError
from loopline.packaging import ColumnSpec
from loopline.serving import _inputs
from loopline.serving._inputs import InputSchema, rows_block

SCHEMAS = [
    InputSchema([ColumnSpec("a", "double"), ColumnSpec("b", "long"), ColumnSpec("c", "float")]),
    InputSchema([ColumnSpec("a", "double", nullable=True), ColumnSpec("b", "integer")]),
    InputSchema([ColumnSpec("a", "double"), ColumnSpec("s", "string")]),
]
values = (
    st.sampled_from([0, 1, 0.0, 1.0, -0.0, True, False, None, "1.5", "", 2**63, 2**64, -(2**70)])
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
)
rows = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "s", "extra"]), values, min_size=1),
    min_size=1,
    max_size=8,
)


def _outcome(rows: list[dict[str, Any]], schema: InputSchema) -> Any:
    try:
        block = rows_block(rows, schema, "inputs")
    except LooplineError as exc:
        return ("error", type(exc).__name__, str(exc))
    matrix = None if block.matrix is None else [[_plain(x) for x in r] for r in block.matrix]
    columns = [[_plain(x) for x in column] for column in block.columns()]
    return block.n_rows, matrix, columns, block.dropped, block.dropped_row


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return (type(value).__name__, value)


@settings(max_examples=400, deadline=None)
@given(rows=rows, which=st.integers(min_value=0, max_value=len(SCHEMAS) - 1))
def test_quick_paths_answer_as_the_value_by_value_path(
    rows: list[dict[str, Any]], which: int
) -> None:
    schema = SCHEMAS[which]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_inputs, "_INFER_VALUES", 0)  # numpy's type discovery for any size
        quick = _outcome(rows, schema)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_inputs, "_plain_numbers", lambda values: None)
        slow = _outcome(rows, schema)
    assert quick == slow


@pytest.mark.parametrize("ones", [1, 10, 64, 65, 300])
def test_a_json_boolean_among_numbers_is_refused_however_many_ones_there_are(
    ones: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inputs, "_INFER_VALUES", 0)
    schema = InputSchema([ColumnSpec("a", "double"), ColumnSpec("b", "double")])
    good = [{"a": 1.0, "b": 0} for _ in range(ones)] + [{"a": 2.5, "b": 3.5}]
    assert rows_block(good, schema, "inputs").matrix is not None
    for bad in (True, False):
        sent = [*good[:-1], {"a": 2.5, "b": bad}, good[-1]]
        with pytest.raises(LooplineError, match=r"row \d+: field 'b' expects a number"):
            rows_block(sent, schema, "inputs")


def test_nulls_and_huge_integers_still_take_the_checked_matrix() -> None:
    nullable = InputSchema([ColumnSpec("a", "double", nullable=True)])
    block = rows_block([{"a": None}, {"a": 1.5}], nullable, "inputs")
    assert block.matrix is not None and math.isnan(block.matrix[0, 0])
    strict = InputSchema([ColumnSpec("a", "double")])
    with pytest.raises(LooplineError, match="not nullable"):
        rows_block([{"a": None}, {"a": 1.5}], strict, "inputs")
    with pytest.raises(LooplineError, match="row 1: field 'a'"):
        rows_block([{"a": 1.5}, {"a": 2**1030}], strict, "inputs")
