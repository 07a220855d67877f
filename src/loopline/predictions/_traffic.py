"""A deployment's traffic over time, from its prediction log: requests, rows, latency,
shadow errors and feedback coverage per time bucket (what the web UI's deployment page
charts).

The log holds answered requests only: a request the server refused (a 4xx) or failed
on (a 5xx) never reaches it, and is counted in the server's /metrics instead
(`loopline_serving_requests_total{code}`), which keeps no history. What the log does
say about errors is the shadow's: a request whose shadow model failed.

Buckets are computed by DuckDB over the window's Parquet files, so the rows are never
held in Python; a request counts in the bucket of its arrival. Feedback coverage is the
share of a bucket's logged rows that have a label, whenever that label arrived (labels
come after their predictions: those of the window and after are read, newest per row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.predictions._window import resolve_stores, window
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from loopline.project import Stores

MAX_BUCKETS = 2000


@dataclass(frozen=True)
class Traffic:
    """A deployment's log in buckets of `bucket` from `since`: one value per bucket in
    each sequence (`starts[i]` is bucket i's start). `latency_p50`/`latency_p95` are
    milliseconds (None for a bucket without requests), `versions` counts the requests
    each model version answered, `labelled` the rows that have feedback."""

    deployment: str
    since: datetime
    until: datetime
    bucket: timedelta
    starts: tuple[datetime, ...]
    requests: tuple[int, ...]
    rows: tuple[int, ...]
    labelled: tuple[int, ...]
    latency_p50: tuple[float | None, ...]
    latency_p95: tuple[float | None, ...]
    shadowed: tuple[int, ...]
    shadow_errors: tuple[int, ...]
    versions: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests)

    @property
    def total_rows(self) -> int:
        return sum(self.rows)

    @property
    def coverage(self) -> float | None:
        """The share of the window's logged rows that have feedback (None: no rows)."""
        rows = self.total_rows
        return sum(self.labelled) / rows if rows else None


def read_traffic(
    deployment: str,
    *,
    since: datetime,
    until: datetime,
    bucket: timedelta,
    stores: Stores | None = None,
) -> Traffic:
    """`deployment`'s logged requests in [since, until), counted in buckets of `bucket`
    (see the module docstring). Raises InvalidInput for a bad name, a window that ends
    before it starts, a bucket that is not positive or more than MAX_BUCKETS buckets."""
    from loopline.predictions._reader import local_copies

    check_deployment_name(deployment)
    start, end = window(since, until)
    if start is None or end is None:
        raise InvalidInput("a traffic window needs both since and until")
    if not isinstance(bucket, timedelta) or bucket <= timedelta(0):
        raise InvalidInput(f"bucket must be a positive timedelta, got {bucket!r}")
    count = max(1, -(-(end - start) // bucket))
    if count > MAX_BUCKETS:
        raise InvalidInput(f"{count} buckets asked for; at most {MAX_BUCKETS}")
    opened = resolve_stores(stores)
    paths = local_copies(opened.metadata.predictions.files(deployment, start, end), opened)
    labels = opened.metadata.predictions.feedback(deployment, since=start)
    keys = ([f.request_id for f in labels], [f.row for f in labels])
    found = _aggregate(paths, keys, start, end, bucket) if paths else {}
    return _traffic(deployment, start, end, bucket, count, found)


def _aggregate(
    paths: list[Path],
    keys: tuple[list[str], list[int]],
    since: datetime,
    until: datetime,
    bucket: timedelta,
) -> dict[str, Any]:
    """The per-bucket figures DuckDB computes over the log files (bucket index -> ...)."""
    import duckdb
    import pyarrow as pa

    params: dict[str, Any] = {
        "files": [str(p) for p in paths],
        "since": since,
        "until": until,
        "since_us": int(since.timestamp() * 1_000_000),
        "bucket_us": int(bucket / timedelta(microseconds=1)),
    }
    labels = pa.table(
        {"request_id": pa.array(keys[0], pa.string()), "row": pa.array(keys[1], pa.int32())}
    )
    index = "CAST(floor((epoch_us(time) - $since_us) / $bucket_us) AS BIGINT)"
    rows = (
        '(SELECT request_id, "row", time, model_version, latency_ms, shadow_version, '
        "shadow_error FROM read_parquet($files, union_by_name = true) "
        "WHERE time >= $since AND time < $until)"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("labels", labels)
        con.execute(
            f"CREATE TEMP TABLE requests AS SELECT {index} AS bucket, "
            "any_value(model_version) AS version, max(latency_ms) AS latency, "
            "count(*) AS n, bool_or(shadow_version IS NOT NULL) AS shadowed, "
            "bool_or(shadow_error IS NOT NULL) AS failed "
            f"FROM {rows} GROUP BY request_id, time",
            params,
        )
        per_bucket = con.execute(
            "SELECT bucket, count(*), sum(n), quantile_cont(latency, 0.5), "
            "quantile_cont(latency, 0.95), count_if(shadowed), count_if(failed) "
            "FROM requests GROUP BY bucket"
        ).fetchall()
        per_version = con.execute(
            "SELECT bucket, version, count(*) FROM requests GROUP BY bucket, version"
        ).fetchall()
        labelled = _labelled(con, rows, index, params) if keys[0] else []
    return {"buckets": per_bucket, "versions": per_version, "labelled": labelled}


def _labelled(
    con: duckdb.DuckDBPyConnection, rows: str, index: str, params: dict[str, Any]
) -> list[Any]:
    return con.execute(
        f"SELECT {index} AS bucket, count(*) FROM {rows} AS logged "
        'JOIN labels USING (request_id, "row") GROUP BY bucket',
        params,
    ).fetchall()


def _traffic(
    deployment: str,
    since: datetime,
    until: datetime,
    bucket: timedelta,
    count: int,
    found: dict[str, Any],
) -> Traffic:
    zeros = [0] * count
    requests, rows, labelled = list(zeros), list(zeros), list(zeros)
    shadowed, failed = list(zeros), list(zeros)
    p50: list[float | None] = [None] * count
    p95: list[float | None] = [None] * count
    for at, n, logged, median, high, shadows, errors in found.get("buckets", []):
        if 0 <= at < count:
            requests[at], rows[at] = int(n), int(logged)
            p50[at], p95[at] = _number(median), _number(high)
            shadowed[at], failed[at] = int(shadows), int(errors)
    versions: dict[str, list[int]] = {}
    for at, version, n in found.get("versions", []):
        if 0 <= at < count:
            versions.setdefault(str(version), list(zeros))[at] = int(n)
    for at, n in found.get("labelled", []):
        if 0 <= at < count:
            labelled[at] = int(n)
    return Traffic(
        deployment=deployment,
        since=since,
        until=until,
        bucket=bucket,
        starts=tuple(since + bucket * i for i in range(count)),
        requests=tuple(requests),
        rows=tuple(rows),
        labelled=tuple(labelled),
        latency_p50=tuple(p50),
        latency_p95=tuple(p95),
        shadowed=tuple(shadowed),
        shadow_errors=tuple(failed),
        versions={name: tuple(values) for name, values in sorted(versions.items())},
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
