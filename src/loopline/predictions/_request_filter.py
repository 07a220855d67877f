"""A membership filter of the request ids in one prediction-log file, so that tracing a
request reads only the file (or the few files) that may hold it, not the whole log.

Each file gets a blocked Bloom filter: `blocks` blocks of 64 bytes (512 bits), about 16
bits per request id. An id's hash picks one block and sets `HASHES` bits inside it; to
ask whether a file may hold an id, the index hands back that one 64-byte block of each
file (a substring in SQL), so a lookup moves ~64 bytes per file whatever the log's size.
Measured false-positive rate: about 1 in 1,000 files (none is ever missed).

The hash is ours (64-bit multiply-xorshift over the id's first 64 UTF-8 bytes and its
length), computed with numpy over a whole file's ids at once, so a filter means the same
thing in every process and version. An id longer than 64 bytes shares its hash with the
ids of the same length and prefix: a false positive at worst, never a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.store.predictions import FILTER_BLOCK_BYTES as BLOCK_BYTES
from loopline.store.predictions import RequestFilter

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

BLOCK_BITS = BLOCK_BYTES * 8
BITS_PER_ID = 16
HASHES = 8
ID_BYTES = 64  # the part of an id that is hashed (request ids are 1-64 characters)
_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)
_MULTIPLY = 0xBF58476D1CE4E5B9
_FINAL = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)


@dataclass(frozen=True)
class Probe:
    """Where an id's bits are: `block_hash` % blocks picks the block (a 31-bit number, so
    that SQL integer arithmetic computes it); `mask` is the 64 bytes the block must have
    set."""

    block_hash: int
    mask: bytes

    def found_in(self, block: bytes | None) -> bool:
        """True when `block` (the 64 bytes the probe picked; None: a file without a
        filter) may hold the id."""
        if block is None or len(block) != BLOCK_BYTES:
            return True
        have = int.from_bytes(block, "little")
        want = int.from_bytes(self.mask, "little")
        return have & want == want


def build_filter(request_ids: pa.Array | pa.ChunkedArray) -> RequestFilter:
    """The filter of a file's request ids (a string column; nulls count as "")."""
    import numpy as np
    import pyarrow.compute as pc

    block_hash, bit_hash = _hashes(request_ids)
    count = pc.count_distinct(request_ids).as_py() if len(block_hash) else 0
    blocks = max(1, -(-count * BITS_PER_ID // BLOCK_BITS))
    table = np.zeros((blocks, BLOCK_BITS), dtype=bool)
    rows = (block_hash % np.uint64(blocks)).astype(np.int64)
    table[rows[:, None], _bit_positions(bit_hash)] = True
    bits = np.packbits(table, axis=1, bitorder="little")
    return RequestFilter(blocks=blocks, bits=bits.tobytes())


def file_filter(path: Path) -> RequestFilter:
    """The filter of the request ids of a log file (reads only its request_id column)."""
    import pyarrow.parquet as pq

    return build_filter(pq.read_table(path, columns=["request_id"]).column("request_id"))


def probe(request_id: str) -> Probe:
    """Where `request_id`'s bits are in any file's filter."""
    import numpy as np
    import pyarrow as pa

    block_hash, bit_hash = _hashes(pa.array([request_id], pa.string()))
    block = np.zeros(BLOCK_BITS, dtype=bool)
    block[_bit_positions(bit_hash)[0]] = True
    mask = np.packbits(block, bitorder="little").tobytes()
    return Probe(block_hash=int(block_hash[0]), mask=mask)


def _hashes(request_ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray[Any, Any], ...]:
    """Two 64-bit hashes per id: the block's (reduced to 31 bits) and the bits'."""
    import numpy as np

    words, lengths = _padded_words(request_ids)
    found = []
    for seed in _SEEDS:
        mixed = np.full(len(lengths), seed, dtype=np.uint64) ^ (lengths * np.uint64(_MULTIPLY))
        for column in range(words.shape[1]):
            mixed = (mixed ^ words[:, column]) * np.uint64(_MULTIPLY)
            mixed ^= mixed >> np.uint64(31)
        found.append(_finish(mixed))
    return found[0] >> np.uint64(33), found[1]


def _finish(mixed: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(_FINAL[0])
    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(_FINAL[1])
    mixed ^= mixed >> np.uint64(33)
    return mixed


def _bit_positions(bit_hash: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """HASHES positions in 0..511 per id (double hashing within the block)."""
    import numpy as np

    first = bit_hash & np.uint64(BLOCK_BITS - 1)
    step = (bit_hash >> np.uint64(9)) | np.uint64(1)  # odd: HASHES distinct positions
    steps = np.arange(HASHES, dtype=np.uint64)
    return ((first[:, None] + steps[None, :] * step[:, None]) % np.uint64(BLOCK_BITS)).astype(
        np.int64
    )


def _padded_words(request_ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray[Any, Any], ...]:
    """Each id's first 64 UTF-8 bytes, zero-padded, as 8 little-endian uint64 words per
    row, and each id's byte length (uint64)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(request_ids, pa.ChunkedArray):
        request_ids = request_ids.combine_chunks()
    binary = pc.fill_null(request_ids.cast(pa.large_binary()), b"")
    count = len(binary)
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int64)[
        binary.offset : binary.offset + count + 1
    ]
    data_buffer = binary.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else None
    lengths = np.diff(offsets)
    matrix = np.zeros((count, ID_BYTES), dtype=np.uint8)
    if data is not None and data.size:
        columns = np.arange(ID_BYTES)
        inside = columns[None, :] < np.minimum(lengths, ID_BYTES)[:, None]
        positions = offsets[:-1, None] + columns[None, :]
        matrix[inside] = data[positions[inside]]
    return matrix.view("<u8"), lengths.astype(np.uint64)
