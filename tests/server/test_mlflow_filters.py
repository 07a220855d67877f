"""MLflow's search grammar as the MLflow API reads it: what it means in loopline's query
model, and that any text either parses or is refused with INVALID_PARAMETER_VALUE."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.server.api.mlflow._filters import (
    Clause,
    MlflowFilterError,
    parse_filter,
    parse_order_by,
    runs_condition,
    runs_order,
)
from loopline.store.query import And, Compare, Field, OrderBy


def test_mlflow_filters_become_loopline_conditions() -> None:
    text = (
        "metrics.auc >= 0.9 AND params.`learning-rate` = '0.1' and tags.\"my tag\" LIKE 'a%' "
        'AND attributes.run_name != "x" AND tags.mlflow.parentRunId IS NULL '
        "AND run_id IN ('a', 'b') AND attributes.start_time > 1700000000000"
    )
    assert runs_condition(parse_filter(text)) == And(
        (
            Compare(Field("metric", "auc"), ">=", 0.9),
            Compare(Field("param", "learning-rate"), "=", "0.1"),
            Compare(Field("tag", "my tag"), "like", "a%"),
            Compare(Field("attribute", "name"), "!=", "x"),
            Compare(Field("attribute", "parent_id"), "is null", None),
            Compare(Field("attribute", "id"), "in", ("a", "b")),
            Compare(Field("attribute", "start_time"), ">", 1.7e12),
        )
    )
    assert parse_filter("tags.team = 'it''s'") == [Clause("tag", "team", "=", "it's")]
    assert runs_order(parse_order_by(["metrics.auc DESC", "attributes.start_time"])) == (
        OrderBy(Field("metric", "auc"), descending=True),
        OrderBy(Field("attribute", "start_time"), descending=False),
    )
    assert runs_condition(parse_filter("  ")) is None


@pytest.mark.parametrize(
    "text",
    [
        "metrics.auc > 1 OR metrics.auc < 0",
        "metrics.auc",
        "metrics.auc > 'x'",
        "params.a > '1'",
        "params.a = 1",
        "tags.t IN ('a')",
        "attributes.lifecycle_stage = 'deleted'",
        "datasets.name = 'x'",
        "metrics. > 1",
        "metrics.a > 1 AND",
        "params.a = 'x' garbage",
    ],
)
def test_what_mlflow_or_loopline_cannot_mean_is_refused(text: str) -> None:
    with pytest.raises(MlflowFilterError):
        runs_condition(parse_filter(text))


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_as_invalid(text: str) -> None:
    with contextlib.suppress(MlflowFilterError):
        runs_condition(parse_filter(text))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["metrics", "params", "tags"]),
            st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=10),
            st.text(st.characters(blacklist_characters="'", categories=["L", "N", "P", "Zs"])),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_generated_filters_keep_every_key_and_value(items: list[tuple[str, str, str]]) -> None:
    parts = []
    for prefix, key, value in items:
        literal = "1.5" if prefix == "metrics" else f"'{value}'"
        parts.append(f"{prefix}.`{key}` = {literal}")
    clauses = parse_filter(" AND ".join(parts))
    assert [(c.key, c.value) for c in clauses] == [
        (key, 1.5 if prefix == "metrics" else value) for prefix, key, value in items
    ]
