"""Table profiles: schema and statistics of CSV/Parquet files, computed by DuckDB."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.data.profile import (
    EXACT_DISTINCT_MAX_ROWS,
    QUANTILES,
    TableProfile,
    profile_table,
    read_table,
    tabular_files,
)
from loopline.errors import InvalidInput, NotFound


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def parquet(path: Path, columns: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def roundtrip(profile: TableProfile) -> TableProfile:
    text = json.dumps(profile.to_dict(), allow_nan=False)  # JSON-safe: no NaN/inf literals
    return TableProfile.from_dict(json.loads(text))


# --- finding files --------------------------------------------------------------------


def test_tabular_files_keeps_csv_and_parquet_searches_folders_and_sorts(tmp_path: Path) -> None:
    b = write(tmp_path / "b.csv", "x\n1\n")
    a = write(tmp_path / "a.TSV", "x\n1\n")
    part = parquet(tmp_path / "parts" / "p-0.parquet", {"x": [1]})
    gz = tmp_path / "parts" / "q.csv.gz"
    gz.write_bytes(gzip.compress(b"x\n1\n"))
    write(tmp_path / "parts" / ".hidden" / "h.csv", "x\n1\n")
    write(tmp_path / "notes.txt", "hello")
    found = tabular_files([b, a, tmp_path / "parts", tmp_path / "notes.txt", b])
    assert found == sorted([a, b, part, gz])


# --- statistics -----------------------------------------------------------------------


def test_numeric_statistics_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(10, 3, 5000)
    path = parquet(tmp_path / "t.parquet", {"x": values, "n": np.arange(5000) % 7})
    profile = profile_table([path])
    x = profile.column("x")
    assert profile.row_count == 5000
    assert (x.count, x.nulls, x.non_finite, x.distinct) == (5000, 0, 0, 5000)
    assert x.min == values.min() and x.max == values.max()
    assert x.mean == pytest.approx(values.mean(), rel=1e-12)
    assert x.std == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert x.quantiles is not None
    for name, q in QUANTILES.items():
        assert x.quantiles[name] == pytest.approx(np.quantile(values, q), rel=1e-12)
    assert x.histogram is not None
    edges, counts = x.histogram
    assert len(edges) == 21 and len(counts) == 20 and sum(counts) == 5000
    assert counts == np.histogram(values, bins=20, range=(values.min(), values.max()))[0].tolist()
    n = profile.column("n")
    assert (n.type, n.min, n.max, n.distinct) == ("BIGINT", 0, 6, 7)
    assert isinstance(n.min, int)
    assert profile.approximate == ()


def test_strings_booleans_and_dates_get_top_values_and_text_extremes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        "city,ok,day\n"
        "paris,true,2024-01-03\nrome,false,2024-01-01\nparis,true,\nberlin,true,2024-02-29\n"
        ",false,2024-01-02\nrome,true,2024-01-05\nparis,,2024-01-04\n",
    )
    profile = profile_table([path])
    types = {c.name: c.type for c in profile.columns}
    assert types == {"city": "VARCHAR", "ok": "BOOLEAN", "day": "DATE"}
    city, ok, day = profile.stats
    assert city.top_values == [("paris", 3), ("rome", 2), ("berlin", 1)]
    assert (city.min, city.max, city.nulls, city.distinct) == ("berlin", "rome", 1, 3)
    assert ok.top_values == [("true", 4), ("false", 2)]
    assert (day.min, day.max, day.top_values, day.histogram) == (
        "2024-01-01",
        "2024-02-29",
        None,
        None,
    )
    assert [c.nullable for c in profile.columns] == [True, True, True]


def test_constant_and_all_null_columns(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "t.parquet",
        {"c": [4.0, 4.0, 4.0], "nothing": pa.array([None, None, None], pa.float64())},
    )
    c, nothing = profile_table([path]).stats
    assert c.histogram == ([4.0, 4.0], [3])
    assert (c.std, c.min, c.max) == (0.0, 4.0, 4.0)
    assert (nothing.count, nothing.nulls, nothing.mean, nothing.histogram) == (0, 3, None, None)
    assert nothing.quantiles is None


def test_nan_and_inf_are_counted_apart_and_the_profile_stays_json_safe(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x\n1.0\nnan\ninf\n-inf\n3.0\n\n")
    profile = profile_table([path])
    x = profile.column("x")
    assert (x.type, x.count, x.nulls, x.non_finite) == ("DOUBLE", 5, 1, 3)
    assert (x.min, x.max, x.mean) == (1.0, 3.0, 2.0)  # over the finite values
    body = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert body["stats"][0]["non_finite"] == 3
    assert roundtrip(profile) == profile


def test_overflowing_statistics_render_as_strings_and_read_back(tmp_path: Path) -> None:
    path = parquet(tmp_path / "t.parquet", {"x": [1.7e308, 1.7e308, -1.7e308]})
    profile = profile_table([path])
    x = profile.column("x")
    assert x.mean == math.inf and x.std is not None and math.isnan(x.std)  # the sum overflows
    body = json.loads(json.dumps(profile.to_dict()))["stats"][0]
    assert (body["mean"], body["std"]) == ("inf", "nan")
    restored = roundtrip(profile).column("x")
    assert restored.mean == math.inf and restored.std is not None and math.isnan(restored.std)


def test_profile_round_trips_through_json(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "t.parquet",
        {
            "s": ["nan", "inf", "x", None],  # strings that look like special floats
            "f": [0.5, float("nan"), 2.5, None],
            "i": [1, 2, 3, 4],
            "d": pa.array([1, 2, None, 4], pa.decimal128(10, 2)),
            "when": pa.array([0, 1, 2, None], pa.timestamp("us", tz="UTC")),
            "tags": [[1], [2, 3], None, []],
        },
    )
    profile = profile_table([path])
    assert profile.column("s").min == "inf" and profile.column("s").max == "x"
    assert profile.column("d").max == 4.0
    assert profile.column("when").min == "1970-01-01 00:00:00+00"
    assert profile.column("tags").distinct == 3
    assert roundtrip(profile) == profile


def test_a_large_table_estimates_distinct_counts(tmp_path: Path) -> None:
    rows = EXACT_DISTINCT_MAX_ROWS + 1
    path = parquet(tmp_path / "t.parquet", {"id": np.arange(rows), "g": np.arange(rows) % 3})
    profile = profile_table([path])
    assert profile.approximate == ("distinct",)
    assert profile.column("id").distinct == pytest.approx(rows, rel=0.05)
    assert profile.column("g").distinct == 3


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=60,
    )
)
def test_statistics_agree_with_numpy_on_any_values(tmp_path: Path, values: list[float]) -> None:
    path = parquet(tmp_path / "h.parquet", {"x": values})
    x = profile_table([path]).column("x")
    data = np.array(values)
    assert x.mean == pytest.approx(data.mean(), rel=1e-9, abs=1e-6)
    assert (x.min, x.max, x.distinct) == (data.min(), data.max(), len(set(values)))
    assert x.quantiles is not None and x.histogram is not None
    assert x.quantiles["p50"] == pytest.approx(np.median(data), rel=1e-9, abs=1e-6)
    assert sum(x.histogram[1]) == len(values)


@pytest.mark.parametrize("values", [[0.0, 1.1e-309], [-5e-324, 5e-324, 0.0], [-1.7e308, 1.7e308]])
def test_ranges_too_narrow_or_wide_for_bins_give_one_bin(
    tmp_path: Path, values: list[float]
) -> None:
    # a subnormal range once made the bins' scale overflow to inf, which DuckDB refused
    x = profile_table([parquet(tmp_path / "r.parquet", {"x": values})]).column("x")
    assert (x.min, x.max) == (min(values), max(values))
    assert x.histogram is not None and sum(x.histogram[1]) == len(values)


# --- tables of several files ----------------------------------------------------------


def test_files_with_columns_in_any_order_form_one_table(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "id,x\n1,0.5\n2,1.5\n")
    b = write(tmp_path / "b.csv", "x,id\n2.5,3\n")
    c = parquet(tmp_path / "c.parquet", {"id": [4], "x": [3.5]})
    profile = profile_table([a, b, c])
    assert profile.row_count == 4
    assert [(s.name, s.type) for s in profile.columns] == [("id", "BIGINT"), ("x", "DOUBLE")]
    assert profile.column("x").mean == 2.0


def test_files_with_different_columns_name_the_differences(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "id,x,y\n1,2,3\n")
    b = write(tmp_path / "b.csv", "id,x,z\n1,2,3\n")
    with pytest.raises(InvalidInput) as caught:
        profile_table([a, b])
    assert str(caught.value) == (
        f"files of one table need the same columns: '{b}' lacks 'y' and has extra 'z' (vs '{a}')"
    )


def test_partition_folders_add_no_columns(tmp_path: Path) -> None:
    parquet(tmp_path / "year=2024" / "part.parquet", {"x": [1, 2]})
    profile = profile_table(tabular_files([tmp_path]))
    assert [c.name for c in profile.columns] == ["x"]


def test_gzipped_and_tab_separated_files(tmp_path: Path) -> None:
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,x\n2,y\n"))
    tsv = write(tmp_path / "t.tsv", "a\tb\n3\tz\n")
    profile = profile_table([gz, tsv])
    assert profile.row_count == 3
    assert profile.column("a").max == 3


# --- bad input ------------------------------------------------------------------------


def test_an_empty_csv_is_a_table_with_no_rows_and_no_columns(tmp_path: Path) -> None:
    profile = profile_table([write(tmp_path / "empty.csv", "")])
    assert (profile.row_count, profile.columns, profile.stats) == (0, (), ())
    assert roundtrip(profile) == profile


def test_an_empty_csv_among_others_adds_nothing(tmp_path: Path) -> None:
    full = write(tmp_path / "a.csv", "x\n1\n")
    profile = profile_table([full, write(tmp_path / "b.csv", "")])
    assert profile.row_count == 1


def test_a_header_only_csv_has_columns_and_no_rows(tmp_path: Path) -> None:
    profile = profile_table([write(tmp_path / "h.csv", "id,name\n")])
    assert profile.row_count == 0
    assert [c.name for c in profile.columns] == ["id", "name"]
    assert all(s.count == 0 and s.nulls == 0 for s in profile.stats)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a,b,c\n1,2,3\n4,5\n6,7,8\n", "line 3"),
        ('a,b,c\n1,"x,y",3\n2,"open,3\n3,z,4\n', "line 4: unexpected end of data"),
        ("a,b,c\n" + "1,2,3\n" * 30_000 + "4,5\n", "line 30002"),  # after DuckDB's sample
    ],
    ids=["ragged-row", "unterminated-quote", "ragged-row-late"],
)
def test_malformed_csv_is_invalid_input_naming_the_file(
    tmp_path: Path, text: str, line: str
) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InvalidInput, match="malformed CSV") as caught:
        profile_table([path])
    assert str(path) in str(caught.value) and line in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("rows_before", [3, 30_000], ids=["in-sample", "after-sample"])
def test_a_column_of_mixed_types_is_read_as_text(tmp_path: Path, rows_before: int) -> None:
    path = write(tmp_path / "m.csv", "a,b\n" + "1,x\n" * rows_before + "hello,y\n2.5,z\n")
    profile = profile_table([path])
    assert profile.column("a").type == "VARCHAR"
    assert profile.row_count == rows_before + 2
    assert profile.column("a").top_values == [("1", rows_before), ("2.5", 1), ("hello", 1)]


@pytest.mark.parametrize(
    "content", [b"", b"PAR1 this is not parquet at all"], ids=["0-bytes", "junk"]
)
def test_a_garbage_parquet_file_is_invalid_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match="cannot read") as caught:
        profile_table([path])
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_files_and_other_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        profile_table([tmp_path / "nope.csv"])
    with pytest.raises(InvalidInput, match="not a CSV or Parquet"):
        profile_table([write(tmp_path / "notes.txt", "a,b\n")])
    with pytest.raises(InvalidInput, match="no files"):
        profile_table([])


def test_unicode_and_sql_like_column_names_are_quoted(tmp_path: Path) -> None:
    names = ["select", 'say "hi"', "with space", "größe", "列", "a;b", "x) FROM t --"]
    header = ",".join('"' + n.replace('"', '""') + '"' for n in names)
    csv_file = write(tmp_path / "t.csv", header + "\n" + ",".join(map(str, range(7))) + "\n")
    pq_file = parquet(tmp_path / "t.parquet", {n: [i] for i, n in enumerate(names)})
    for path in (csv_file, pq_file):
        profile = profile_table([path])
        assert [c.name for c in profile.columns] == names
        assert [s.max for s in profile.stats] == list(range(len(names)))


def test_file_names_with_quotes_and_glob_characters_are_read_as_given(tmp_path: Path) -> None:
    write(tmp_path / "it's 1.csv", "x\n999\n")  # what "[1]" would match as a glob
    path = write(tmp_path / "it's [1].csv", "x\n1\n")
    star = parquet(tmp_path / "a*b?.parquet", {"x": [2]})
    assert profile_table([path]).column("x").max == 1
    assert profile_table([star]).column("x").max == 2


# --- reading --------------------------------------------------------------------------


def test_read_table_as_pandas_and_arrow(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "id,name\n1,x\n2,y\n")
    b = parquet(tmp_path / "b.parquet", {"name": ["z"], "id": [3]})
    frame = read_table([a, b])
    assert isinstance(frame, pd.DataFrame)
    assert frame.sort_values("id")["name"].tolist() == ["x", "y", "z"]
    table = read_table([a, b], as_="arrow")
    assert isinstance(table, pa.Table) and table.num_rows == 3
    assert read_table([write(tmp_path / "e.csv", "")]).empty
    with pytest.raises(InvalidInput, match="as_"):
        read_table([a], as_="polars")  # type: ignore[call-overload]


def test_read_table_reports_malformed_files(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "a,b,c\n" + "1,2,3\n" * 30_000 + "4,5\n")
    with pytest.raises(InvalidInput, match="malformed CSV"):
        read_table([path])
