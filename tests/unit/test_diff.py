"""Comparing two versions of a table: schema, column shifts, rows by key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import wasserstein_distance

from loopline.data.profile import profile_table
from loopline.data.table_diff import diff_profiles, diff_rows, diff_schemas
from loopline.errors import InvalidInput


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def parquet(path: Path, columns: dict[str, object]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# --- schema and profiles --------------------------------------------------------------


def test_diff_schemas_reports_added_removed_retyped_and_nullability(tmp_path: Path) -> None:
    old = profile_table([write(tmp_path / "old.csv", "id,price,gone,note\n1,3,x,a\n2,4,y,b\n")])
    new = profile_table([write(tmp_path / "new.csv", "id,price,note,extra\n1,3.5,,q\n2,4,b,r\n")])
    schema = diff_schemas(old, new)
    assert [c.name for c in schema.added] == ["extra"]
    assert [c.name for c in schema.removed] == ["gone"]
    assert schema.retyped == (("price", "BIGINT", "DOUBLE"),)
    assert schema.nullability == (("note", False, True),)
    assert schema.changed
    assert json.loads(json.dumps(schema.to_dict()))["retyped"][0]["new"] == "DOUBLE"
    assert not diff_schemas(old, old).changed


def test_identical_tables_show_no_shift(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = parquet(tmp_path / "t.parquet", {"x": rng.normal(size=1000), "c": ["a", "b"] * 500})
    profile = profile_table([path])
    for shift in diff_profiles(profile, profile):
        assert shift.null_rate_change == 0 and shift.distinct_change == 0
        assert shift.psi == pytest.approx(0.0, abs=1e-12)
        if shift.column == "x":
            assert shift.mean_shift_std == 0.0 and shift.wasserstein_std == 0.0


def test_a_shifted_mean_is_measured_in_old_standard_deviations(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    before, after = rng.normal(0, 2, 20_000), rng.normal(1, 2, 20_000)
    old = profile_table([parquet(tmp_path / "a.parquet", {"x": before})])
    new = profile_table([parquet(tmp_path / "b.parquet", {"x": after})])
    (shift,) = diff_profiles(old, new)
    assert shift.mean_shift_std == pytest.approx(0.5, abs=0.03)
    exact = wasserstein_distance(before, after) / before.std(ddof=1)
    assert shift.wasserstein_std == pytest.approx(exact, abs=0.03)
    assert shift.psi is not None and 0.1 < shift.psi < 0.5


def test_psi_handles_values_outside_the_old_range_and_constant_columns(tmp_path: Path) -> None:
    old = profile_table([parquet(tmp_path / "a.parquet", {"x": [5.0] * 100, "y": np.arange(100)})])
    new = profile_table(
        [
            parquet(
                tmp_path / "b.parquet", {"x": [5.0] * 50 + [6.0] * 50, "y": np.arange(100) + 1000}
            )
        ]
    )
    x, y = diff_profiles(old, new)
    assert x.psi is not None and x.psi > 1  # half the mass moved off the constant
    assert x.mean_shift_std is None  # a constant column has no spread to scale by
    assert y.psi is not None and y.psi > 5  # everything moved above the old range
    assert y.wasserstein_std == pytest.approx(1000 / np.arange(100).std(ddof=1), rel=0.01)


def test_categorical_psi_needs_every_category_listed(tmp_path: Path) -> None:
    few_old = ["a"] * 50 + ["b"] * 50
    few_new = ["a"] * 80 + ["c"] * 20
    many = [f"id{i}" for i in range(100)]
    old = profile_table([parquet(tmp_path / "a.parquet", {"few": few_old, "many": many})])
    new = profile_table([parquet(tmp_path / "b.parquet", {"few": few_new, "many": many[::-1]})])
    few, many_shift = diff_profiles(old, new)
    assert few.psi is not None and few.psi > 0.25
    assert many_shift.psi is None  # 100 categories, only the top 10 are in a profile
    assert few.wasserstein_std is None and few.mean_shift_std is None


def test_a_retyped_column_gets_only_the_measures_that_still_apply(tmp_path: Path) -> None:
    old = profile_table([write(tmp_path / "a.csv", "v\n1\n2\n")])
    new = profile_table([write(tmp_path / "b.csv", "v\nx\n\n")])
    (shift,) = diff_profiles(old, new)
    assert (shift.mean_shift_std, shift.wasserstein_std, shift.psi) == (None, None, None)
    assert shift.null_rate_change == 0.5 and shift.distinct_change == -1
    json.dumps(shift.to_dict(), allow_nan=False)


# --- rows -----------------------------------------------------------------------------


def test_diff_rows_counts_and_shows_added_removed_and_changed_rows(tmp_path: Path) -> None:
    old = write(
        tmp_path / "old.csv", "id,name,score,gone\n1,a,1.5,x\n2,b,2.5,y\n3,c,nan,z\n4,d,4,w\n"
    )
    new = write(
        tmp_path / "new.csv", "id,name,score,extra\n1,a,1.5,q\n2,B,2.5,q\n3,c,nan,q\n5,e,5,q\n"
    )
    rows = diff_rows([old], [new], "id")
    assert (rows.added, rows.removed, rows.changed, rows.unchanged) == (1, 1, 1, 2)
    assert rows.compared == ("name", "score")
    assert rows.changed_columns == {"name": 1}  # NaN equals NaN
    assert rows.examples["added"] == [{"id": 5, "name": "e", "score": 5.0, "extra": "q"}]
    assert rows.examples["removed"] == [{"id": 4, "name": "d", "score": 4.0, "gone": "w"}]
    assert rows.examples["changed"] == [{"key": 2, "changes": {"name": {"old": "b", "new": "B"}}}]
    assert json.loads(json.dumps(rows.to_dict(), allow_nan=False))["changed"] == 1


def test_diff_rows_limits_examples_to_the_smallest_keys(tmp_path: Path) -> None:
    ids = np.arange(1000)
    old = parquet(tmp_path / "a.parquet", {"id": ids, "v": ids * 1.0})
    new = parquet(tmp_path / "b.parquet", {"id": ids[::-1] + 500, "v": (ids[::-1] + 500) * 2.0})
    rows = diff_rows([old], [new], "id", examples=3)
    assert (rows.added, rows.removed, rows.changed, rows.unchanged) == (500, 500, 500, 0)
    assert [r["id"] for r in rows.examples["added"]] == [1000, 1001, 1002]
    assert [r["id"] for r in rows.examples["removed"]] == [0, 1, 2]
    assert rows.examples["changed"][0] == {
        "key": 500,
        "changes": {"v": {"old": 500.0, "new": 1000.0}},
    }
    none = diff_rows([old], [new], "id", examples=0)
    assert none.examples == {"added": [], "removed": [], "changed": []} and none.changed == 500


def test_a_value_becoming_null_is_a_change(tmp_path: Path) -> None:
    old = parquet(tmp_path / "a.parquet", {"id": [1, 2], "v": [1.0, float("nan")]})
    new = parquet(tmp_path / "b.parquet", {"id": [1, 2], "v": [None, float("nan")]})
    rows = diff_rows([old], [new], "id")
    assert (rows.changed, rows.unchanged) == (1, 1)
    assert rows.examples["changed"] == [{"key": 1, "changes": {"v": {"old": 1.0, "new": None}}}]


def test_diff_rows_across_formats_and_types(tmp_path: Path) -> None:
    old = write(tmp_path / "a.csv", "id,amount,when\n1,10,2024-01-01\n2,20,2024-01-02\n")
    new = parquet(
        tmp_path / "b.parquet",
        {"id": ["1", "2"], "amount": [10.0, 20.5], "when": ["2024-01-01", "2024-01-03"]},
    )
    rows = diff_rows([old], [new], "id")  # BIGINT key vs VARCHAR key: compared as text
    assert (rows.changed, rows.unchanged) == (1, 1)
    assert rows.examples["changed"] == [
        {
            "key": "2",
            "changes": {
                "amount": {"old": 20, "new": 20.5},
                "when": {"old": "2024-01-02", "new": "2024-01-03"},
            },
        }
    ]


def test_diff_rows_with_sql_like_column_names(tmp_path: Path) -> None:
    names = {"select": [1, 2], 'say "hi"': ["a", "b"], "größe": [1.0, 2.0]}
    old = parquet(tmp_path / "a.parquet", names)
    new = parquet(tmp_path / "b.parquet", {**names, 'say "hi"': ["a", "c"]})
    rows = diff_rows([old], [new], "select")
    assert rows.changed_columns == {'say "hi"': 1}
    assert rows.examples["changed"][0]["key"] == 2


def test_diff_rows_of_tables_without_rows(tmp_path: Path) -> None:
    old = write(tmp_path / "a.csv", "id,v\n")
    new = write(tmp_path / "b.csv", "id,v\n1,x\n")
    rows = diff_rows([old], [new], "id")
    assert (rows.added, rows.removed, rows.changed, rows.unchanged) == (1, 0, 0, 0)
    assert rows.examples["added"] == [{"id": 1, "v": "x"}]  # as the new table types it


def test_a_missing_key_column_is_named(tmp_path: Path) -> None:
    old = write(tmp_path / "a.csv", "id,v\n1,2\n")
    new = write(tmp_path / "b.csv", "ident,v\n1,2\n")
    with pytest.raises(InvalidInput, match="key column 'id' is not in the new table") as caught:
        diff_rows([old], [new], "id")
    assert "'ident'" in str(caught.value)


def test_a_duplicated_key_says_how_many_and_which(tmp_path: Path) -> None:
    old = write(tmp_path / "a.csv", "id,v\n1,a\n2,b\n")
    new = write(tmp_path / "b.csv", "id,v\n1,a\n1,b\n2,c\n2,d\n2,e\n3,f\n")
    with pytest.raises(InvalidInput) as caught:
        diff_rows([old], [new], "id")
    assert str(caught.value) == (
        "key column 'id' is not unique in the new table: 2 value(s) appear more than once "
        "(e.g. '2' x3, '1' x2)"
    )


def test_a_null_key_is_refused(tmp_path: Path) -> None:
    old = write(tmp_path / "a.csv", "id,v\n1,a\n,b\n")
    new = write(tmp_path / "b.csv", "id,v\n1,a\n")
    with pytest.raises(InvalidInput, match="1 NULL value"):
        diff_rows([old], [new], "id")


def test_malformed_files_are_reported_by_diff_rows(tmp_path: Path) -> None:
    good = write(tmp_path / "a.csv", "id,v\n1,a\n")
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"garbage")
    with pytest.raises(InvalidInput, match="cannot read") as caught:
        diff_rows([good], [bad], "id")
    assert str(bad) in str(caught.value)
    with pytest.raises(InvalidInput, match="examples"):
        diff_rows([good], [good], "id", examples=-1)
