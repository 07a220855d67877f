"""Metric points: bulk append, the latest-value table, history reads (whole, as
MetricPoints, or a range of them as columns for charts), and the ids of the batches
applied.

A batch may carry an id (the tracking buffer gives each one a random id and keeps it when
it sends the batch again). Appending a batch first records its id in `metric_batches`, in
the same transaction as the points: a batch whose id is there already was committed
before (its answer was lost: a dropped connection, a killed server) and is acknowledged
without storing its points twice. Two deliveries of one batch at once are safe too: the
second insert of the id waits for the first transaction and finds the id when it commits
(PostgreSQL's unique index, SQLite's single writer). Ids are kept `BATCH_ID_DAYS`, far
past any client's retries (seconds) or a server outage a buffer waits through, and are
pruned by the writes themselves, at most every `PRUNE_EVERY_S` per process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from loopline.errors import Conflict
from loopline.store._schema import latest_metrics, metric_batches, metric_points
from loopline.store.records import (
    MetricPoint,
    MetricSeries,
    MetricSpan,
    ms_to_datetime,
    stored_float,
)

Point = tuple[str, str, float, int, int]
"""(run_id, key, value, step, timestamp_ms)"""

BATCH_ID_DAYS = 1
PRUNE_EVERY_S = 600.0


def claim_batch(conn: Connection, batch_id: str) -> bool:
    """Record `batch_id` as applied in this transaction; False if it was already."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(metric_batches).values(id=batch_id, applied_at=datetime.now(UTC))
    # RETURNING, not rowcount: an INSERT's rowcount is -1 through SQLAlchemy and psycopg
    claimed = stmt.on_conflict_do_nothing().returning(metric_batches.c.id)
    return conn.execute(claimed).first() is not None


def forget_old_batches(conn: Connection) -> None:
    """Drop the ids of batches applied more than BATCH_ID_DAYS ago."""
    before = datetime.now(UTC) - timedelta(days=BATCH_ID_DAYS)
    conn.execute(metric_batches.delete().where(metric_batches.c.applied_at < before))


def insert_points(conn: Connection, points: Sequence[Point]) -> None:
    """Append every point, then move each (run, key)'s latest value forward if newer."""
    rows = [(r, k, None if v != v else v, s, t) for r, k, v, s, t in points]  # NaN: NULL
    columns = "run_id, key, value, step, timestamp"
    # Metric logging is the hottest write path, so it skips SQLAlchemy's per-row dict
    # processing: COPY on PostgreSQL (10x executemany), the driver's executemany on SQLite
    # (3x). Only fixed table and column names reach the SQL text.
    if conn.dialect.name == "postgresql":
        import psycopg

        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {metric_points.name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.IntegrityError as exc:  # the driver's own, not SQLAlchemy's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "integrity"
            raise Conflict(f"log metrics: the write conflicts with stored data ({first})") from exc
    else:
        conn.exec_driver_sql(
            f"INSERT INTO {metric_points.name} ({columns}) VALUES (?, ?, ?, ?, ?)", rows
        )
    newest: dict[tuple[str, str], Point] = {}
    for point in points:
        slot = (point[0], point[1])
        held = newest.get(slot)
        if held is None or (point[3], point[4]) >= (held[3], held[4]):
            newest[slot] = point
    latest_rows = [
        {
            "run_id": run_id,
            "key": key,
            "value": None if math.isnan(value) else value,
            "step": step,
            "timestamp": ts,
        }
        for run_id, key, value, step, ts in newest.values()
    ]
    conn.execute(_upsert_latest(conn.dialect.name), latest_rows)


def _upsert_latest(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE, only when the incoming point is newer
    (a higher step, or the same step logged later): concurrent writers cannot move
    the latest value backwards."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(latest_metrics)
    incoming = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[latest_metrics.c.run_id, latest_metrics.c.key],
        set_={"value": incoming.value, "step": incoming.step, "timestamp": incoming.timestamp},
        where=or_(
            incoming.step > latest_metrics.c.step,
            and_(
                incoming.step == latest_metrics.c.step,
                incoming.timestamp >= latest_metrics.c.timestamp,
            ),
        ),
    )


def history(conn: Connection, run_id: str, key: str) -> list[MetricPoint]:
    stmt = (
        select(metric_points.c.value, metric_points.c.step, metric_points.c.timestamp)
        .where(metric_points.c.run_id == run_id, metric_points.c.key == key)
        .order_by(metric_points.c.step, metric_points.c.timestamp, metric_points.c.id)
    )
    return [
        MetricPoint(key=key, value=stored_float(value), step=step, timestamp=ms_to_datetime(ts))
        for value, step, ts in conn.execute(stmt)
    ]


ORDERS = {"step": "step, timestamp, id", "time": "timestamp, step, id"}
FINITE = (-math.inf, math.inf)  # `value > ? AND value < ?`: neither NULL (NaN) nor infinite


def series(conn: Connection, run_id: str, key: str, span: MetricSpan) -> MetricSeries:
    """The points of `key` in `span` (see MetricSpan): all of them, or with `buckets` the
    lowest and highest finite point of each bucket, chosen by the database.

    Read through the driver's cursor as plain tuples (SQLAlchemy's Row per point doubled
    the time of a 100,000-point read); thinning in SQL reads one row a bucket instead
    of every point (SQLite ~4x, PostgreSQL ~5x faster for 100,000 points than reading
    them all). Only fixed column names reach the SQL text; the values are parameters.
    """
    column = "step" if span.x == "step" else "timestamp"
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    where = f"FROM {metric_points.name} WHERE run_id = {mark} AND key = {mark}"
    arguments: list[object] = [run_id, key]
    for bound, operator in ((span.start, ">="), (span.end, "<=")):
        if bound is not None:
            where += f" AND {column} {operator} {mark}"
            arguments.append(bound)
    counted = None
    if span.buckets is not None:
        low, high, total, finite = _fetch(
            conn,
            f"SELECT MIN({column}), MAX({column}), COUNT(*), "
            f"COUNT(CASE WHEN value > {mark} AND value < {mark} THEN 1 END) {where}",
            [*FINITE, *arguments],
        )[0]
        counted = (total, finite)
        if finite > 2 * span.buckets:
            low = low if span.start is None else span.start
            high = high if span.end is None else span.end
            rows = _thinned(conn, where, arguments, column, span.buckets, (low, high))
            return _columns(key, rows, total, finite, thinned=True)
    sql = f"SELECT step, timestamp, value {where} ORDER BY {ORDERS[span.x]}"
    if span.limit is not None:
        sql += f" LIMIT {span.limit:d}"
    rows = _fetch(conn, sql, arguments)
    if counted is None:
        counted = (len(rows), sum(1 for row in rows if _is_finite(row[2])))
    return _columns(key, rows, *counted)


def _is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _thinned(
    conn: Connection,
    where: str,
    arguments: list[object],
    column: str,
    buckets: int,
    bounds: tuple[int, int],
) -> list[tuple[Any, ...]]:
    """(step, timestamp, value) of the lowest and the highest finite point of each of
    `buckets` equal slices of `bounds`, in x order: one grouped pass over the span.

    SQLite returns a bare column from the row that MIN() or MAX() picked (documented),
    so each extreme is one GROUP BY; PostgreSQL compares arrays element by element, so
    MIN(ARRAY[value, x, other]) is the lowest point with its x (the first of equal
    values), both extremes in one pass. Steps and times above 2**53 lose precision there
    (float8 arrays), far beyond any chart's resolution."""
    low, high = bounds
    scale = buckets / (high - low) if high > low else 0.0
    other = "timestamp" if column == "step" else "step"
    finite = "AND value > %s AND value < %s"
    if conn.dialect.name == "postgresql":
        bucket = f"LEAST(FLOOR(({column} - %s) * %s)::bigint, %s)"
        sql = (
            f"SELECT MIN(ARRAY[value, {column}, {other}]), MAX(ARRAY[value, {column}, {other}]) "
            f"{where} {finite} GROUP BY {bucket}"
        )
        found = []
        for lowest, highest in _fetch(conn, sql, [*arguments, *FINITE, low, scale, buckets - 1]):
            found += [_point(lowest, column), _point(highest, column)]
    else:
        bucket = f"MIN(CAST(({column} - ?) * ? AS INTEGER), ?)"
        finite = finite.replace("%s", "?")
        found = []
        for extreme in ("MIN", "MAX"):
            sql = f"SELECT step, timestamp, {extreme}(value) {where} {finite} GROUP BY {bucket}"
            found += _fetch(conn, sql, [*arguments, *FINITE, low, scale, buckets - 1])
    x = 0 if column == "step" else 1
    return sorted(set(found), key=lambda row: (row[x], row[1 - x], row[2]))


def _point(values: list[float], column: str) -> tuple[int, int, float]:
    """(step, timestamp, value) of a PostgreSQL [value, x, other] array."""
    value, x, other = values
    return (int(x), int(other), value) if column == "step" else (int(other), int(x), value)


def _fetch(conn: Connection, sql: str, arguments: list[object]) -> list[tuple[Any, ...]]:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, arguments)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _columns(
    key: str, rows: list[tuple[Any, ...]], total: int, finite: int, *, thinned: bool = False
) -> MetricSeries:
    if not rows:
        return MetricSeries(key, [], [], [], total, finite, thinned)
    steps, stamps, values = zip(*rows, strict=True)
    nan = math.nan  # a stored NULL (see the schema)
    return MetricSeries(
        key,
        list(steps),
        list(stamps),
        [nan if v is None else v for v in values],
        total,
        finite,
        thinned,
    )


def keys(conn: Connection, run_id: str) -> list[str]:
    stmt = (
        select(latest_metrics.c.key)
        .where(latest_metrics.c.run_id == run_id)
        .order_by(latest_metrics.c.key)
    )
    return list(conn.execute(stmt).scalars())


def latest(conn: Connection, run_ids: list[str]) -> Iterator[tuple[str, str, float]]:
    stmt = select(latest_metrics.c.run_id, latest_metrics.c.key, latest_metrics.c.value).where(
        latest_metrics.c.run_id.in_(run_ids)
    )
    row: Any
    for row in conn.execute(stmt):
        yield row[0], row[1], stored_float(row[2])
