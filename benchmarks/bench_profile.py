"""Table profile benchmark: `loopline.data.profile.profile_table` on one Parquet file.

The table is 5,000,000 rows x 20 columns (14 float, 4 integer, 2 low-cardinality
strings), generated with numpy before timing. Figures, medians of 3 runs taken in
turns with their reference:
- profile_table (schema, counts, exact quantiles, histograms, top values) versus
  DuckDB's own `SUMMARIZE` of the same file (approximate quantiles and distincts);
- the same profile versus one plain aggregate scan (count, min, max, avg of every
  column): the floor for anything that reads every value.

Run: `python benchmarks/bench_profile.py [--small]` (`--small`: 500,000 rows).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table

ROWS = 500_000 if "--small" in sys.argv else 5_000_000


def make_table(path: Path) -> list[str]:
    """Write the benchmark table; return its column names."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns: dict[str, object] = {}
    for i in range(14):
        columns[f"f{i}"] = rng.normal(i, 1 + i, ROWS)
    for i in range(4):
        columns[f"i{i}"] = rng.integers(0, 10 ** (i + 2), ROWS)
    colors = np.array(["red", "green", "blue", "yellow", "black"])
    cities = np.array([f"city_{k}" for k in range(50)])
    columns["color"] = colors[rng.integers(0, len(colors), ROWS)]
    columns["city"] = cities[rng.integers(0, len(cities), ROWS)]
    pq.write_table(pa.table(columns), path)
    return list(columns)


def main() -> list[Row]:
    import duckdb

    from loopline.data.profile import profile_table

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.parquet"
        names = make_table(path)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        source = "read_parquet('" + str(path).replace("'", "''") + "')"
        plain = ", ".join(f"count({n}), min({n}), max({n})" for n in names)
        plain += ", " + ", ".join(f"avg({n})" for n in names if n[0] in "fi")

        def ours() -> None:
            assert profile_table([path]).row_count == ROWS

        def summarize() -> None:
            con.execute(f"SUMMARIZE SELECT * FROM {source}").fetchall()

        def scan() -> None:
            con.execute(f"SELECT {plain} FROM {source}").fetchall()

        ours_s, summarize_s, scan_s = median_times([ours, summarize, scan], repeat=3)
        con.close()
    label = f"profile_table, {ROWS:,} rows x 20 cols (Parquet)"
    rows = [
        Row(f"{label} vs SUMMARIZE", ours_s, summarize_s, "<= 10 s", "s"),
        Row(f"{label} vs one aggregate scan", ours_s, scan_s, "(context)", "s"),
    ]
    print_table("Table profiles", rows)
    return rows


if __name__ == "__main__":
    main()
