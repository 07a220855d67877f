"""The journal's file format: frames of JSON entries (see _journal for why and when).

A segment is a run of frames: `LLJ1`, the payload's length and CRC-32, a flag (o:
written by orjson, j: by the json module, for values orjson refuses: integers past 64
bits, lone surrogates; and for infinities, which orjson writes as null), and the payload,
a JSON array of entries. A frame cut short by a crash fails its length or CRC check and
ends the segment. Entries are PredictionBatches (`encode_batch`: numpy arrays as dtype,
shape and values, the input block as its matrix or its columns), or a shadow's late
answer for a request of the same segment (`shadow_answer`); `decode_batches` turns a
segment's frames back into PredictionBatches with the shadows' answers merged in.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.predictions._records import PredictionBatch

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"LLJ1"
HEADER = struct.Struct("<4sIIc")  # magic, payload length, CRC-32, flag
NO_SHADOW_ANSWER = "the shadow's answer was not recorded (the server stopped before it came)"


def append_frame(fd: int, entries: list[tuple[bytes, bool]]) -> None:
    """Write entries as one frame, in one write() call."""
    strict = all(by_orjson for _, by_orjson in entries)
    payload = b"[" + b",".join(data for data, _ in entries) + b"]"
    header = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), b"o" if strict else b"j")
    frame = header + payload
    written = os.write(fd, frame)
    while written < len(frame):  # a regular file takes it all at once; just in case
        written += os.write(fd, frame[written:])


def read_frames(path: Path) -> Iterator[list[Any]]:
    """The entries of each whole frame of a segment; stops at the first torn one."""
    data = path.read_bytes()
    at = 0
    while at + HEADER.size <= len(data):
        magic, length, crc, flag = HEADER.unpack_from(data, at)
        payload = data[at + HEADER.size : at + HEADER.size + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            if at + HEADER.size + length < len(data):
                log.warning("journal %s is damaged at byte %d; the rest is skipped", path, at)
            return
        if flag == b"o":
            import orjson

            yield orjson.loads(payload)
        else:
            yield json.loads(payload)
        at += HEADER.size + length


def encode_entry(body: dict[str, Any]) -> tuple[bytes, bool]:
    """An entry's JSON, and whether orjson wrote it (else the json module did)."""
    import orjson

    if not body.pop("inf", False):
        try:
            data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=_orjson_default)
            return data, True
        except TypeError:  # an int past 64 bits, a lone surrogate
            pass
    text = json.dumps(body, default=_json_default, ensure_ascii=True, allow_nan=True)
    return text.encode("ascii"), False


def _orjson_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):  # a dtype orjson does not take, or not contiguous
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return repr(value)  # an object a model returned: its text rather than nothing


def _array(values: np.ndarray[Any, Any] | None) -> dict[str, Any] | None:
    import numpy as np

    if values is None:
        return None
    values = np.asarray(values)
    return {"dt": values.dtype.str, "sh": list(values.shape), "v": values}


def _infinite(values: np.ndarray[Any, Any] | None) -> bool:
    """Whether an array holds an infinity (which orjson would write as null)."""
    import numpy as np

    return values is not None and values.dtype.kind in "fc" and bool(np.isinf(values).any())


def _from_array(spec: dict[str, Any] | None) -> np.ndarray[Any, Any] | None:
    import numpy as np

    if spec is None:
        return None
    dtype, shape = np.dtype(spec["dt"]), tuple(spec["sh"])
    if dtype.kind == "O":
        flat = np.empty(len(spec["v"]), dtype=object)
        for i, value in enumerate(spec["v"]):
            flat[i] = value
        return flat if len(shape) == 1 else np.array(spec["v"], dtype=object).reshape(shape)
    return np.array(spec["v"], dtype=dtype).reshape(shape)


def encode_batch(batch: PredictionBatch, *, shadow_pending: bool = False) -> dict[str, Any]:
    """A PredictionBatch as a JSON-ready dict (numpy arrays as dtype, shape and values)."""
    block = batch.block
    whole = block.matrix is not None and block.matrix.shape[1] == len(block.names)
    body = {
        "k": "b",
        "d": batch.deployment,
        "mv": batch.model_version,
        "rv": batch.runtime_version,
        "ids": batch.request_ids,
        "t": batch.times,
        "ep": batch.endpoints,
        "lat": _array(batch.latency_ms),
        "rc": _array(batch.row_counts),
        "names": list(block.names),
        "n": block.n_rows,
        "m": _array(block.matrix) if whole else None,
        "c": None if whole else [list(c) for c in block.columns()],
        "p": _array(batch.predictions),
        "pr": _array(batch.probabilities),
        "sv": batch.shadow_version,
        "sp": _array(batch.shadow_predictions),
        "spr": _array(batch.shadow_probabilities),
        "se": batch.shadow_error,
        "df": batch.dropped_fields,
        "pending": shadow_pending,
    }
    arrays = (batch.predictions, batch.probabilities, batch.shadow_predictions, block.matrix)
    body["inf"] = any(_infinite(a) for a in (*arrays, batch.shadow_probabilities))
    return body


def shadow_answer(
    predictions: np.ndarray[Any, Any] | None,
    probabilities: np.ndarray[Any, Any] | None,
    error: str | None,
) -> dict[str, Any]:
    """What `Journal.commit_shadow` records of a shadow's answer."""
    return {
        "sp": _array(predictions),
        "spr": _array(probabilities),
        "se": error,
        "inf": _infinite(predictions) or _infinite(probabilities),
    }


def decode_batches(frames: Iterator[list[Any]]) -> list[PredictionBatch]:
    """The PredictionBatches of a segment's frames, with their shadows' answers merged
    in (a shadow that never answered is named in `shadow_error`)."""
    from loopline.predictions._block import Block

    entries = [entry for frame in frames for entry in frame]
    answers = {e["id"]: e for e in entries if e.get("k") == "s"}
    batches = []
    for e in entries:
        if e.get("k") != "b":
            continue
        matrix = _from_array(e["m"])
        columns = e["c"]
        block = Block(tuple(e["names"]), int(e["n"]), matrix, columns=columns)
        batch = PredictionBatch(
            deployment=e["d"],
            model_version=e["mv"],
            runtime_version=e["rv"],
            request_ids=list(e["ids"]),
            times=[datetime.fromisoformat(t) for t in e["t"]],
            endpoints=list(e["ep"]),
            latency_ms=_required(e["lat"]),
            row_counts=_required(e["rc"]),
            block=block,
            predictions=_required(e["p"]),
            probabilities=_from_array(e["pr"]),
            shadow_version=e["sv"],
            shadow_predictions=_from_array(e["sp"]),
            shadow_probabilities=_from_array(e["spr"]),
            shadow_error=e["se"],
            dropped_fields=_dropped(e.get("df")),  # absent from older segments
        )
        if e.get("pending"):
            answer = answers.get(batch.request_ids[0])
            if answer is None:
                batch = replace(batch, shadow_error=NO_SHADOW_ANSWER)
            else:
                batch = replace(
                    batch,
                    shadow_predictions=_from_array(answer["sp"]),
                    shadow_probabilities=_from_array(answer["spr"]),
                    shadow_error=answer["se"],
                )
        batches.append(batch)
    return batches


def _dropped(given: list[list[str]] | None) -> list[tuple[str, ...]] | None:
    return None if given is None else [tuple(names) for names in given]


def _required(spec: dict[str, Any]) -> np.ndarray[Any, Any]:
    found = _from_array(spec)
    assert found is not None
    return found
