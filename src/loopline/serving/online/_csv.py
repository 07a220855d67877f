"""Request bodies by content type: JSON everywhere, and CSV on MLflow's `/invocations`.

`mlflow models serve` reads a `Content-Type: text/csv` body with `pandas.read_csv`: the
header row names the columns and each signature column is read as its type (MLflow
passes the signature's pandas types as `dtype=`). So does this module, and then hands
the table on as `{"dataframe_split": {"columns", "data"}}`, so that a CSV body passes the
same checks as a JSON one (every input present, types, nulls, the 64-bit range; columns
that are not inputs dropped or, with strict inputs, refused).

A body that is not UTF-8, whose header names a column twice (pandas would rename the
second `a.1` and drop it silently), whose rows do not tokenize, or whose cell does not
read as its column's type is refused with a 400 naming the problem; a charset other
than UTF-8, or any other content-type parameter, gets a 415 as in MLflow. The size
limit is the JSON one: the body is read by the same `read_body` before this runs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopline.errors import MalformedRequest, UnsupportedMediaType
from loopline.serving._redact import clip
from loopline.serving.online._json import check_content_type, parse_json

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.serving._inputs import InputSchema
    from loopline.serving.runtime import ServedModel

# decode(request) -> body(raw bytes, max depth, model) -> the request as JSON values (the
# V2 route's reader also gives its binary tensor data: `_v2.decode_v2`)
BodyReader = Callable[[bytes, int, "ServedModel"], Any]
Decode = Callable[["Request"], BodyReader]

CSV_MEDIA_TYPE = "text/csv"
# How pandas reads a signature column (a nullable whole number as a double: an empty
# cell is NaN, and the signature check accepts a whole double in a long column).
_DTYPES = {"double": "float64", "float": "float64", "long": "int64", "integer": "int64"}
_CSV_HINT = (
    "send a header row with the column names, then one row per line, as "
    "DataFrame.to_csv(index=False) writes it"
)


def decode_json(request: Request) -> BodyReader:
    """The reader of loopline's prediction route: JSON only (415 for any other type)."""
    check_content_type(request.headers.get("content-type"))
    return _json_body


def _json_body(raw: bytes, max_depth: int, model: ServedModel) -> Any:
    return parse_json(raw, max_depth=max_depth)


def decode_mlflow(request: Request) -> BodyReader:
    """MLflow's `/invocations`: JSON, or CSV as `mlflow models serve` reads it."""
    content_type = request.headers.get("content-type")
    media, _, parameters = (content_type or "").partition(";")
    if media.strip().lower() != CSV_MEDIA_TYPE:
        try:
            check_content_type(content_type)
        except UnsupportedMediaType as exc:
            raise UnsupportedMediaType(
                exc.message.replace("expected a JSON body", "expected a JSON or CSV body"),
                hint="send Content-Type: application/json or text/csv",
            ) from None
        return _json_body
    for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(
                f"unsupported Content-Type parameter {clip(parameter)!r}; CSV bodies are UTF-8",
                hint="send Content-Type: text/csv or text/csv; charset=utf-8",
            )
    return _csv_body


def _csv_body(raw: bytes, max_depth: int, model: ServedModel) -> Any:
    columns, data = read_csv(raw, model.schema)
    return {"dataframe_split": {"columns": columns, "data": data}}


def read_csv(raw: bytes, schema: InputSchema) -> tuple[list[str], list[list[Any]]]:
    """The column names and rows of a CSV body, each signature column read as its type
    (Python values: int, float, bool, str, None for an empty text cell)."""
    import pandas as pd

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"the CSV body is not valid UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise MalformedRequest("the request body is empty; expected a CSV header row")
    header = _header(text)
    dtypes = {spec.name: _dtype(spec.type, spec.nullable) for spec in schema.specs}
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype={name: dtypes[name] for name in header if name in dtypes},
            keep_default_na=True,
            low_memory=False,
        )
    except Exception as exc:  # pandas' many parser errors: all the client's body
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MalformedRequest(
            f"the CSV body does not read as a table of the model's inputs: {clip(first, 200)}",
            hint=_CSV_HINT,
        ) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the first values as an index
        raise MalformedRequest(
            "the CSV rows hold more values than the header names columns", hint=_CSV_HINT
        )
    values = [_python_values(frame[name]) for name in frame.columns]
    return [str(name) for name in frame.columns], [list(row) for row in zip(*values, strict=True)]


def _header(text: str) -> list[str]:
    """The header row's names; MalformedRequest for a name given twice."""
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise MalformedRequest("the CSV body has no readable header row", hint=_CSV_HINT) from exc
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise MalformedRequest(
                f"the CSV header names the column {clip(name)!r} twice", hint=_CSV_HINT
            )
        seen.add(name)
    return header


def _dtype(kind: str, nullable: bool) -> str:
    if kind in ("long", "integer") and nullable:
        return "float64"
    if kind == "boolean":
        return "boolean"  # pandas' nullable booleans: an empty cell is <NA>
    return _DTYPES.get(kind, "str")


def _python_values(column: Any) -> list[Any]:
    """A column's values as JSON would give them: text NaN (an empty cell) becomes None."""
    import pandas as pd

    values: list[Any] = column.tolist()
    if column.dtype == object or isinstance(column.dtype, pd.BooleanDtype):
        values = [None if v is pd.NA or (type(v) is float and v != v) else v for v in values]
    return values
