"""What an artifact's preview shows, decided by its name and first bytes, always bounded.

An artifact comes from whoever logged it, so nothing of it is ever markup in our page:
an image is an <img> of its bytes served as that image type (never SVG, which can hold
scripts: SVG and everything else is shown as text or offered as a download); a table
(CSV, TSV, Parquet) shows its first ROWS rows and COLUMNS columns; JSON is re-printed
indented; text is shown as text; an HTML report only inside a sandboxed iframe, from a
route whose own Content-Security-Policy sandboxes it (artifacts.py). Every template
escapes what a preview holds.

Bounds: a preview reads at most HEAD bytes (the table or text shown is that head), a
Parquet file is read whole up to PARQUET_MAX, a JSON file up to JSON_MAX; a blob over
SCAN_MAX gets no preview (reading a head verifies the whole blob's hash first).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.store import BlobReader

HEAD = 256 * 1024
ROWS = 100
COLUMNS = 50
CELL = 300  # characters of one table cell
JSON_MAX = 1 << 20
PARQUET_MAX = 64 << 20
SCAN_MAX = 256 << 20
REPORT_MAX = 32 << 20

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
}
"""Raster images, served with their type (and nosniff) for an <img>. No SVG."""
HTML_SUFFIXES = (".html", ".htm")
DELIMITERS = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Preview:
    """How a page shows an artifact: `kind` is image, html, table, json, text or none;
    `note` says in one line what is left out (or why there is no preview)."""

    kind: str
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def suffix_of(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def image_type(name: str) -> str | None:
    """The content type an artifact is served with for an <img>, None if not an image."""
    return IMAGE_TYPES.get(suffix_of(name))


def is_report(name: str) -> bool:
    return suffix_of(name) in HTML_SUFFIXES


def preview(name: str, reader: BlobReader) -> Preview:
    """The preview of the artifact `name` whose bytes `reader` reads (see the module)."""
    suffix = suffix_of(name)
    if suffix in IMAGE_TYPES:
        return Preview("image")
    if suffix in HTML_SUFFIXES:
        if reader.size > REPORT_MAX:
            return Preview("none", note=f"an HTML report over {size_text(REPORT_MAX)}")
        return Preview("html")
    if reader.size > SCAN_MAX:
        return Preview("none", note=f"too large to preview (over {size_text(SCAN_MAX)})")
    if suffix in PARQUET_SUFFIXES:
        return _parquet(reader)
    if suffix == ".json" and reader.size <= JSON_MAX:
        return _json(reader.read())
    head = read_head(reader, HEAD)
    cut = reader.size > len(head)
    if suffix in DELIMITERS:
        return _table(head, cut, DELIMITERS[suffix])
    text = _text(head, cut)
    if text is None:
        return Preview("none", note="binary content")
    note = f"the first {size_text(len(head))} of {size_text(reader.size)}" if cut else ""
    if suffix == ".svg":
        note = "SVG is shown as its source (as an image it could run scripts)" + (
            f"; {note}" if note else ""
        )
    return Preview("text", text=text, note=note)


def read_head(reader: BlobReader, limit: int) -> bytes:
    """The first `limit` bytes of the blob, verified (the whole blob is hashed)."""
    return b"".join(reader.pieces(0, min(limit, reader.size)))


def size_text(size: int | None) -> str:
    """A byte count as people read it: 812 B, 3.4 KB, 12.0 MB, 1.5 GB (powers of 1000)."""
    if size is None:
        return ""
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{size} B"  # pragma: no cover - the loop returns


def _text(head: bytes, cut: bool) -> str | None:
    """`head` as text, or None when it is not UTF-8 text (a NUL, or bytes that do not
    decode; a character split by the cut at the end is dropped)."""
    if b"\0" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8", errors="replace")
        return None


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _table(head: bytes, cut: bool, delimiter: str) -> Preview:
    text = _text(head, cut)
    if text is None:
        return Preview("none", note="not UTF-8 text")
    if cut:  # the last line may be cut in the middle
        text = text[: text.rfind("\n") + 1] if "\n" in text else text
    try:
        lines = list(_first_rows(csv.reader(io.StringIO(text), delimiter=delimiter)))
    except csv.Error as exc:
        return Preview("text", text=text, note=f"not a table this preview reads ({exc})")
    if not lines:
        return Preview("text", text=text, note="no rows")
    header, rows = lines[0], lines[1:]
    notes = []
    if cut or len(rows) > ROWS:
        notes.append(f"the first {min(len(rows), ROWS)} rows")
    if len(header) > COLUMNS:
        notes.append(f"the first {COLUMNS} of {len(header)} columns")
    return Preview(
        "table",
        header=[_cell(item) for item in header[:COLUMNS]],
        rows=[[_cell(item) for item in row[:COLUMNS]] for row in rows[:ROWS]],
        note=", ".join(notes),
    )


def _first_rows(reader: object) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in reader:  # type: ignore[attr-defined]
        rows.append(row)
        if len(rows) > ROWS + 1:  # the header, ROWS rows, and one to know there are more
            break
    return rows


def _json(data: bytes) -> Preview:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        text = _text(data[:HEAD], len(data) > HEAD)
        if text is None:
            return Preview("none", note="neither JSON nor text")
        return Preview("text", text=text, note="not valid JSON: shown as text")
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    if len(pretty) > HEAD:
        return Preview("json", text=pretty[:HEAD], note=f"the first {HEAD:,} characters")
    return Preview("json", text=pretty)


def _parquet(reader: BlobReader) -> Preview:
    if reader.size > PARQUET_MAX:
        return Preview("none", note=f"a Parquet file over {size_text(PARQUET_MAX)}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(reader.read()))
        names = parquet.schema_arrow.names
        batch = next(parquet.iter_batches(batch_size=ROWS, columns=names[:COLUMNS]), None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        return Preview("none", note=f"not a Parquet file this preview reads ({exc})")
    total = parquet.metadata.num_rows
    rows = [] if batch is None else batch.to_pylist()
    notes = [f"the first {len(rows)} of {total:,} rows"] if total > len(rows) else []
    if len(names) > COLUMNS:
        notes.append(f"the first {COLUMNS} of {len(names)} columns")
    shown = names[:COLUMNS]
    return Preview(
        "table",
        header=[_cell(name) for name in shown],
        rows=[[_cell(row.get(name)) for name in shown] for row in rows],
        note=", ".join(notes),
    )
