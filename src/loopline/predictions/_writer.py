"""Writing a group of log records so that one bad value never costs the others.

A log file holds a whole group (a deployment's records of one UTC hour), and one value
Arrow cannot hold (an integer past 64 bits, a string with a lone surrogate, ...) fails
the encoding of all of them: a writer that gave up there dropped every answer of the
flush around one poison request. So `spool_group` never lets an encoding error out:
when a group fails, it is split in halves until the requests that fail on their own
are found (about 2·log2(n) encodings for one bad request among n), those are written
as JSON lines to `rejected/<deployment>/` with the reason, and the others are encoded
again together (or, should they still fail together, in the pieces that did encode).
Every request ends up in exactly one place: a log file or a rejected line.

A rejected line holds the request as far as it can be written safely: strict JSON,
ASCII (a lone surrogate is kept as its `\\udXXX` escape), NaN and infinities as the
strings "NaN", "Infinity" and "-Infinity", numpy values as plain ones, and anything
else as its repr. `read_rejected` reads them back.

Only encoding errors are handled here: a disk that cannot be written (OSError) is the
caller's to report, the records are not bad.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.predictions._parquet import encode_spool_file, utc, write_atomically
from loopline.predictions._records import PredictionBatch
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.project import Stores

log = logging.getLogger(__name__)

MAX_REASON = 500
MAX_DEPTH = 64  # nesting kept in a rejected line; deeper values become their repr


@dataclass(frozen=True)
class Written:
    """What `spool_group` wrote: log files, and requests set aside with their reason."""

    files: list[Path]
    rows: int
    rejected: int


@dataclass
class _Piece:
    """Batches that encode together, and their encoding."""

    batches: list[PredictionBatch]
    data: bytes


def spool_group(
    spool: Path,
    rejected: Path,
    deployment: str,
    hour: datetime,
    batches: Sequence[PredictionBatch],
    *,
    stem: str | None = None,
    sync: bool = False,
) -> Written:
    """Write a group's records to `spool/<deployment>/` as log files, and those that
    cannot be encoded to `rejected/<deployment>/` as JSON lines.

    `stem` names the files (`<hour>Z-<stem>[-<n>]`; default: a random id): a caller that
    may write the same group again after a crash passes the same stem, so the second
    write replaces the first instead of adding to it. `sync` fsyncs every file.
    Raises OSError when a file cannot be written.
    """
    check_deployment_name(deployment)
    stem = stem or uuid.uuid4().hex
    prefix = f"{hour:%Y%m%dT%H}Z-{stem}"
    pieces, bad = _encode(deployment, hour, list(batches))
    if bad:
        log.error(
            "prediction log: %d of %d requests of '%s' cannot be written to the log (%s); "
            "they are kept in %s",
            len(bad),
            sum(len(b.request_ids) for b in batches),
            deployment,
            bad[0][1],
            rejected / deployment,
        )
    if len(pieces) > 1:  # the good requests together, when they go together
        good = [batch for piece in pieces for batch in piece.batches]
        try:
            pieces = [_Piece(good, encode_spool_file(deployment, hour, good))]
        except Exception:  # each piece did encode alone: write them one by one
            log.warning("prediction log: %d files for one group of '%s'", len(pieces), deployment)
    files = []
    for n, piece in enumerate(pieces):
        name = f"{prefix}.parquet" if n == 0 else f"{prefix}-{n}.parquet"
        files.append(write_atomically(spool / deployment, name, piece.data, sync=sync))
    if bad:
        lines = "".join(rejected_line(batch, reason) + "\n" for batch, reason in bad)
        write_atomically(rejected / deployment, f"{prefix}.jsonl", lines.encode(), sync=sync)
    rows = sum(len(b.predictions) for piece in pieces for b in piece.batches)
    return Written(files, rows, len(bad))


def _encode(
    deployment: str, hour: datetime, batches: list[PredictionBatch]
) -> tuple[list[_Piece], list[tuple[PredictionBatch, str]]]:
    """The batches in pieces that encode, and the single requests that do not."""
    try:
        return [_Piece(batches, encode_spool_file(deployment, hour, batches))], []
    except Exception as exc:  # whatever the values made Arrow raise
        error = exc
    if len(batches) == 1 and len(batches[0].request_ids) == 1:
        return [], [(batches[0], _reason(error))]
    try:
        parts = (
            batches if len(batches) > 1 else [PredictionBatch.of(r) for r in batches[0].records()]
        )
    except Exception as exc:  # a batch that cannot even be cut into requests
        return [], [(batch, _reason(exc)) for batch in batches]
    middle = len(parts) // 2
    pieces, bad = _encode(deployment, hour, parts[:middle])
    more_pieces, more_bad = _encode(deployment, hour, parts[middle:])
    return pieces + more_pieces, bad + more_bad


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def rejected_line(batch: PredictionBatch, reason: str) -> str:
    """One rejected request (a batch of one, or several that could not be cut apart) as
    a line of strict, ASCII JSON."""
    try:
        rows: Any = batch.block.rows()
    except Exception as exc:
        rows = f"<the inputs could not be read: {_reason(exc)}>"
    record = {
        "request_id": batch.request_ids[0] if len(batch.request_ids) == 1 else batch.request_ids,
        "time": [utc(t).isoformat() for t in batch.times],
        "deployment": batch.deployment,
        "model_version": batch.model_version,
        "runtime_version": batch.runtime_version,
        "endpoint": batch.endpoints,
        "latency_ms": batch.latency_ms,
        "inputs": rows,
        "prediction": batch.predictions,
        "probabilities": batch.probabilities,
        "shadow_version": batch.shadow_version,
        "shadow_prediction": batch.shadow_predictions,
        "shadow_probabilities": batch.shadow_probabilities,
        "shadow_error": batch.shadow_error,
        "dropped_fields": batch.dropped_fields,
        "reason": reason,
    }
    if len(batch.request_ids) == 1:
        record["time"], record["endpoint"] = record["time"][0], batch.endpoints[0]
        record["latency_ms"] = float(batch.latency_ms[0])
        record["dropped_fields"] = batch.dropped_fields[0] if batch.dropped_fields else None
    return json.dumps(_plain(record, 0), ensure_ascii=True, allow_nan=False)


def _plain(value: Any, depth: int) -> Any:
    """`value` as JSON can hold it (see the module docstring)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if depth >= MAX_DEPTH:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            return _plain(tolist(), depth + 1)
        except Exception:
            pass
    return repr(value)


def read_rejected(deployment: str, *, stores: Stores | None = None) -> list[dict[str, Any]]:
    """The requests of `deployment` that could not be written to the log, oldest file
    first, each with its `reason` (from `.loopline/prediction-log/rejected/`)."""
    check_deployment_name(deployment)
    if stores is None:
        from loopline.project import stores as current

        stores = current()
    folder = stores.settings.state_dir / "prediction-log" / "rejected" / deployment
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="ascii").splitlines():
            if line:
                found.append(json.loads(line))
    return found
