"""Signature enforcement: turn model input into a DataFrame that matches the signature.

Speed matters here because every served prediction goes through it (budget: 100 µs
on one row, 5 % on 10,000 rows, over the model's own predict). The fast path costs
one Index comparison, one tuple of dtypes looked up in a cache of accepted dtype
combinations, and at most one numpy reduction for missing values; it neither
copies nor converts. Everything else (conversion, reordering, warnings, precise
error messages) happens in the slow path, which only input that needs it pays for.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, SignatureMismatch
from loopline.packaging._signature import ColumnSpec, SignatureWarning, dtype_type

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_MAX_PLANS = 64  # distinct dtype combinations remembered per model
_UNSEEN = object()


@dataclass(frozen=True)
class _Plan:
    """What the fast path still checks for one accepted combination of dtypes."""

    positions: tuple[int, ...]  # non-nullable columns whose dtype can hold a missing value
    index: np.ndarray[Any, Any] | None  # the same, for one numpy reduction over float frames
    every_column: bool  # positions covers every column


class InputChecker:
    """Checks and conforms model input against the input columns of a signature."""

    def __init__(self, inputs: tuple[ColumnSpec, ...]) -> None:
        import pandas as pd

        self.specs = inputs
        self.names = [spec.name for spec in inputs]
        self._known = set(self.names)
        self._index = pd.Index(self.names)  # the default string dtype compares fastest
        self._plans: dict[tuple[Any, ...], object] = {}

    def check(self, data: Any, *, scan_missing: bool = True) -> pd.DataFrame:
        """`data` as a DataFrame with the signature's columns, in order, of the right types.

        Raises SignatureMismatch for a missing column, a wrong type or a missing value
        in a column that is not nullable; warns (SignatureWarning) about extra columns.
        `scan_missing=False` skips the fast path's scan for missing values, for a model
        that refuses them itself (the caller checks again if the model raises).
        """
        frame = self._to_frame(data)
        if not self.specs:
            return frame
        if frame.columns.equals(self._index):
            dtypes = _dtypes(frame)
            plan = self._plans.get(dtypes, _UNSEEN)
            if plan is _UNSEEN:
                plan = self._plan(dtypes)
            if isinstance(plan, _Plan):
                if scan_missing:
                    self._check_missing(frame, plan)
                return frame
        return self._conform(frame)

    def _plan(self, dtypes: tuple[Any, ...]) -> _Plan | None:
        """The fast-path plan for these dtypes, or None if they need conversion."""
        import numpy as np

        plan = None
        if all(_accepts(spec.type, dtype) for spec, dtype in zip(self.specs, dtypes, strict=True)):
            positions = tuple(
                i
                for i, (spec, dtype) in enumerate(zip(self.specs, dtypes, strict=True))
                if not spec.nullable and getattr(dtype, "kind", "O") not in "iub"
            )
            uniform = len(set(dtypes)) == 1 and dtypes[0].kind == "f"
            index = np.array(positions, dtype=np.intp) if uniform else None
            plan = _Plan(positions, index, len(positions) == len(dtypes))
        if len(self._plans) < _MAX_PLANS:
            self._plans[dtypes] = plan
        return plan

    def _check_missing(self, frame: pd.DataFrame, plan: _Plan) -> None:
        if not plan.positions:
            return
        if plan.index is not None:
            import numpy as np

            # One reduction over the frame's float block, without a copy: min() is NaN if
            # any value is; ones @ values sums each column (NaN if it holds one, or +inf
            # and -inf, which the precise check below then clears).
            values = frame.to_numpy()
            if values.size == 0:
                return
            if plan.every_column:
                if not np.isnan(values.min()):
                    return
            elif not np.isnan((np.ones(len(values), values.dtype) @ values)[plan.index]).any():
                return
        for position in plan.positions:
            if frame.iloc[:, position].isna().any():
                raise _missing_error(self.specs[position])

    def _conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The slow path: select, reorder and convert columns, with precise errors."""
        if frame.columns.has_duplicates:
            twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise InvalidInput(f"the input names columns more than once: {twice}")
        present = set(frame.columns)
        for spec in self.specs:
            if spec.name not in present:
                raise SignatureMismatch(
                    f"missing column '{spec.name}' (expected {spec.type})", field=spec.name
                )
        extra = [str(name) for name in frame.columns if name not in self._known]
        if extra:
            warnings.warn(
                f"ignoring input columns that are not in the model's signature: {extra}",
                SignatureWarning,
                stacklevel=3,
            )
        frame = frame[self.names]
        changed: dict[str, pd.Series[Any]] = {}
        for spec in self.specs:
            column = frame[spec.name]
            converted = _CONVERTERS[spec.type](spec, column)
            if not spec.nullable and converted.isna().any():
                raise _missing_error(spec)
            if converted is not column:
                changed[spec.name] = converted
        return frame.assign(**changed) if changed else frame

    def _to_frame(self, data: Any) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, np.ndarray):
            self._check_width(data.ndim, data.shape[-1] if data.ndim else 0)
            columns = self._index if self.specs else None
            return pd.DataFrame(data, columns=columns, copy=False)
        try:
            if isinstance(data, Mapping):
                if all(np.ndim(value) == 0 for value in data.values()):
                    return pd.DataFrame([data])  # one row given as {column: value}
                return pd.DataFrame(dict(data))
            if isinstance(data, list | tuple) and data:
                if all(isinstance(row, Mapping) for row in data):
                    return pd.DataFrame(list(data))
                frame = pd.DataFrame(list(data))
                self._check_width(np.ndim(data[0]) + 1, frame.shape[1])
                if self.specs:
                    frame.columns = self._index
                return frame
        except ValueError as exc:
            raise InvalidInput(f"cannot read the model input: {exc}") from exc
        raise InvalidInput(
            f"cannot use {'an empty ' if isinstance(data, list | tuple) else ''}"
            f"{type(data).__name__} as model input",
            hint="pass a DataFrame, a list of row dicts, a dict of columns or a 2-D array",
        )

    def _check_width(self, ndim: int, width: int) -> None:
        """Positional rows must be 2-D and, under a signature, as wide as its inputs."""
        if ndim != 2:
            raise SignatureMismatch(f"expected rows of values (a 2-D array), got {ndim}-D input")
        if self.specs and width != len(self.names):
            preview = ", ".join(self.names[:5]) + (", ..." if len(self.names) > 5 else "")
            raise SignatureMismatch(
                f"expected {len(self.names)} columns ({preview}), received rows of {width} values"
            )


def _dtypes(frame: pd.DataFrame) -> tuple[Any, ...]:
    """The column dtypes, in order.

    `frame.dtypes` builds a Series (about 15 µs, a sixth of the one-row budget); the
    block manager answers in 1 µs. Its API is private, so any surprise falls back.
    """
    manager = getattr(frame, "_mgr", None)
    try:
        dtypes = tuple(manager.get_dtypes())  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return tuple(frame.dtypes)
    return dtypes if len(dtypes) == frame.shape[1] else tuple(frame.dtypes)


def _missing_error(spec: ColumnSpec) -> SignatureMismatch:
    return SignatureMismatch(
        f"column '{spec.name}' has missing values but the signature says it is not nullable",
        field=spec.name,
    )


def _accepts(expected: str, dtype: Any) -> bool:
    """True when a column of `dtype` can go to the model as it is (fast path)."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, np.dtype):
        return dtype.kind in _NUMPY_KINDS[expected]
    if expected == "string":
        return isinstance(dtype, pd.StringDtype)
    return expected == "datetime" and isinstance(dtype, pd.DatetimeTZDtype)


_NUMPY_KINDS = {
    "double": "f",
    "float": "f",
    "long": "iu",
    "integer": "iu",
    "boolean": "b",
    "string": "",  # numpy str and object columns are inspected value by value
    "datetime": "M",
}


def _mismatch(spec: ColumnSpec, column: pd.Series[Any], received: str) -> Exception:
    """A precise type error: the first offending value of an object column, else the dtype."""
    if column.dtype == object:
        for label, value in column.items():
            if not _is_missing(value) and not _fits(spec.type, value):
                return SignatureMismatch(
                    f"column '{spec.name}' expects {spec.type} values, received {value!r} "
                    f"({_TYPE_NAMES.get(type(value), type(value).__name__)}) at row {label!r}",
                    field=spec.name,
                )
    return SignatureMismatch(
        f"column '{spec.name}' expects {spec.type} values, received {received} values "
        f"(dtype {column.dtype})",
        field=spec.name,
    )


_TYPE_NAMES = {str: "string", bool: "boolean", int: "long", float: "double"}


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like values: not a missing scalar
        return False


def _fits(expected: str, value: Any) -> bool:
    """Whether one Python value is acceptable for a column of the expected type."""
    import datetime

    import numpy as np

    number = isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)
    if expected in ("double", "float"):
        return number
    if expected in ("long", "integer"):
        return number and float(value).is_integer()
    if expected == "boolean":
        return isinstance(value, bool | np.bool_)
    if expected == "string":
        return isinstance(value, str)
    return isinstance(value, str | datetime.date | np.datetime64)


def _inferred(column: pd.Series[Any]) -> str:
    """The signature type a column's dtype stands for, looking at values for objects."""
    import pandas as pd

    kind = dtype_type(column.dtype)
    if kind is not None:
        return kind
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    return {"floating": "double", "mixed-integer-float": "double", "integer": "long"}.get(
        inferred, inferred
    )


def _to_float(spec: ColumnSpec, column: pd.Series[Any]) -> pd.Series[Any]:
    import numpy as np

    kind = _inferred(column)
    if kind in ("double", "float") and isinstance(column.dtype, np.dtype):
        return column
    if kind in ("double", "float", "long", "integer", "empty"):
        return column.astype("float64")  # int widens; pandas NA and None become NaN
    raise _mismatch(spec, column, kind)


def _to_int(spec: ColumnSpec, column: pd.Series[Any]) -> pd.Series[Any]:
    import numpy as np

    kind = _inferred(column)
    if kind in ("long", "integer") and isinstance(column.dtype, np.dtype):
        return column
    if kind not in ("double", "float", "long", "integer", "empty"):
        raise _mismatch(spec, column, kind)
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    present = values[~np.isnan(values)]
    fractional = present[present != np.floor(present)]
    if fractional.size:
        raise SignatureMismatch(
            f"column '{spec.name}' expects {spec.type} values, received numbers with a "
            f"fractional part such as {fractional[0]}",
            field=spec.name,
        )
    if present.size < values.size:  # missing values need a float column
        return column.astype("float64")
    return column.astype("int64")


def _to_bool(spec: ColumnSpec, column: pd.Series[Any]) -> pd.Series[Any]:
    import numpy as np

    kind = _inferred(column)
    if kind == "boolean" and isinstance(column.dtype, np.dtype):
        return column
    if kind not in ("boolean", "empty"):
        raise _mismatch(spec, column, kind)
    return column.astype("boolean" if column.isna().any() else "bool")


def _to_string(spec: ColumnSpec, column: pd.Series[Any]) -> pd.Series[Any]:
    kind = _inferred(column)
    if kind in ("string", "empty"):
        return column
    raise _mismatch(spec, column, kind)


def _to_datetime(spec: ColumnSpec, column: pd.Series[Any]) -> pd.Series[Any]:
    import pandas as pd

    if _accepts("datetime", column.dtype):
        return column
    kind = _inferred(column)
    if kind == "datetime":
        return pd.to_datetime(column)
    if kind not in ("string", "empty"):
        raise _mismatch(spec, column, kind)
    try:
        return pd.to_datetime(column, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise SignatureMismatch(
            f"column '{spec.name}' expects datetime values, received strings that are not "
            f"ISO 8601 dates: {exc}",
            field=spec.name,
        ) from exc


_CONVERTERS = {
    "double": _to_float,
    "float": _to_float,
    "long": _to_int,
    "integer": _to_int,
    "boolean": _to_bool,
    "string": _to_string,
    "datetime": _to_datetime,
}
