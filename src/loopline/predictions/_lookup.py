"""Finding one request in the prediction log without reading the whole log.

A request id says nothing about when it was answered (a uuid4, a W3C trace id, a
client's X-Request-Id), so no time window narrows the search. Instead every delivered
file has a filter of its request ids (_request_filter.py): the index hands back the one
block of each file's filter that the id picks, and only the files whose block may hold
the id are fetched and read (about 1 file in 500 is read needlessly). Files indexed
before filters existed are always read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.predictions._feedback import REQUEST_ID
from loopline.predictions._parquet import empty_predictions
from loopline.predictions._reader import local_copies, with_dropped_fields
from loopline.predictions._request_filter import probe
from loopline.predictions._window import resolve_stores
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores

log = logging.getLogger(__name__)


def check_request_id(request_id: object) -> str:
    """A request id is 1-64 letters, digits, '_' or '-'; raises InvalidInput otherwise."""
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        shown = request_id if not isinstance(request_id, str) else request_id[:80]
        raise InvalidInput(
            f"invalid request id {shown!r}",
            hint="a request id is 1-64 letters, digits, '_' or '-' (the X-Request-Id answer)",
        )
    return request_id


def read_request(
    request_id: str, *, deployment: str | None = None, stores: Stores | None = None
) -> pa.Table:
    """Every logged row of request `request_id` (of `deployment`, or of any deployment),
    ordered by deployment, time and row; an empty table when none is logged.

    Only delivered files are read (see read_predictions). Raises InvalidInput for a
    malformed request id or deployment name.
    """
    import duckdb

    check_request_id(request_id)
    if deployment is not None:
        check_deployment_name(deployment)
    opened = resolve_stores(stores)
    wanted = probe(request_id)
    indexed = opened.metadata.predictions.files_for_request(wanted.block_hash, deployment)
    candidates = [entry for entry, block in indexed if wanted.found_in(block)]
    log.debug(
        "request %s: %d of %d log files may hold it", request_id, len(candidates), len(indexed)
    )
    if not candidates:
        return empty_predictions()
    params: dict[str, Any] = {
        "files": [str(path) for path in local_copies(candidates, opened)],
        "id": request_id,
    }
    query = (
        "SELECT * FROM read_parquet($files, union_by_name = true) WHERE request_id = $id"
        ' ORDER BY deployment, time, "row"'
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(query, params=params)
        table = (
            relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        )
    return with_dropped_fields(table.replace_schema_metadata(None))
