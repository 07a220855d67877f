"""Reading the prediction log: the delivered Parquet files of a deployment over a time
window, fetched (verified) into a local cache and read as one table by DuckDB. The log's
schema is in the docstring of _spool."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.predictions._parquet import empty_predictions
from loopline.predictions._window import resolve_stores, window
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores
    from loopline.store.predictions import PredictionLogFile

log = logging.getLogger(__name__)


def prediction_log_files(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> list[Path]:
    """Local copies of the delivered log files of `deployment` that overlap [since, until).

    Files are fetched (verified) into `.loopline/cache/prediction-log/` and reused from
    there while their content still matches its hash. For queries of one's own:
    `duckdb.read_parquet([...], union_by_name=true)`.
    """
    check_deployment_name(deployment)
    since, until = window(since, until)
    opened = resolve_stores(stores)
    return local_copies(opened.metadata.predictions.files(deployment, since, until), opened)


def local_copies(files: Sequence[PredictionLogFile], opened: Stores) -> list[Path]:
    """Local copies of indexed log files, fetched (verified) into the cache if need be."""
    cache = opened.settings.state_dir / "cache" / "prediction-log"
    paths = []
    for entry in files:
        path = cache / f"{entry.blob_hash}.parquet"
        if not _cached(path, entry.blob_hash):
            opened.artifacts.get_file(entry.blob_hash, path)
        paths.append(path)
    return paths


def read_predictions(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> pa.Table:
    """The logged rows of `deployment` with `since <= time < until`, ordered by time.

    Only delivered files are read: rows still in a server's memory or spool (at most a
    few seconds' worth, unless a store is down) are not included. A deployment with no
    logged rows, known or not, gives an empty table with the base columns. Naive
    datetimes are taken as UTC.
    """
    since, until = window(since, until)
    paths = prediction_log_files(deployment, since=since, until=until, stores=stores)
    return read_log_files(paths, since=since, until=until)


def read_log_files(
    paths: Sequence[Path], *, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """The rows of some log files with `since <= time < until` (aware UTC datetimes, or
    None), ordered by time, as one table (DuckDB merges files whose columns differ)."""
    import duckdb

    if not paths:
        return empty_predictions()
    where: list[str] = []
    params: dict[str, Any] = {"files": [str(p) for p in paths]}
    if since is not None:
        where.append("time >= $since")
        params["since"] = since
    if until is not None:
        where.append("time < $until")
        params["until"] = until
    query = (
        "SELECT * FROM read_parquet($files, union_by_name = true)"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + ' ORDER BY time, request_id, "row"'
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(query, params=params)
        table = (
            relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        )
    return with_dropped_fields(table.replace_schema_metadata(None))


def with_dropped_fields(table: pa.Table) -> pa.Table:
    """`table` with a `dropped_fields` column (null where files older than it are read)."""
    import pyarrow as pa

    if "dropped_fields" in table.column_names:
        return table
    column = pa.nulls(table.num_rows, pa.list_(pa.string()))
    at = table.column_names.index("inputs") if "inputs" in table.column_names else -1
    if at < 0:
        return table.append_column("dropped_fields", column)
    return table.add_column(at, "dropped_fields", column)


def _cached(path: Path, digest: str) -> bool:
    import blake3

    try:
        data = path.read_bytes()
    except OSError:
        return False
    return bool(blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest() == digest)
