"""Request rows checked against the model's signature at the JSON level, before any model
sees them, and kept as a `Block`: the rows' values column by column in signature order,
plus one float64 matrix when every input is numeric (what ONNX and scikit-learn take).

A row must hold every field of the signature. A field the signature does not name is
dropped, as `model.predict` drops an extra DataFrame column: the block records its name
(`Block.dropped`, `Block.dropped_row`) so that the service can name it in the response,
or refuse the request when the deployment asks for strict inputs (`extra_field_error`).
A missing field, a value of
the wrong JSON type (a string or a boolean for a number, a number for a string), null
where the column is not nullable, NaN unless it is, infinity anywhere, and a number the
column's type cannot hold (an integer past 64 bits in any number column, past 32 bits in
an `integer` one, past a 32-bit float's range in a `float` one), each raise InvalidField
naming the field and the row. JSON allows any integer, but Arrow and NumPy do not: a
value let through here would fail later, in the prediction log, off the response path.
The common case (numbers only) costs a C-level pass over the value types and a few
numpy operations; the precise check runs only when a value looks wrong or large.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, InvalidInput
from loopline.predictions import Block
from loopline.serving._redact import clip

if TYPE_CHECKING:
    import numpy as np

    from loopline.packaging import ColumnSpec

NUMBERS = frozenset({"double", "float", "long", "integer"})
WHOLE = frozenset({"long", "integer"})
# The integers each number column holds exactly (JSON integers beyond int64 never pass:
# neither NumPy nor Arrow can hold them as integers).
INT_RANGES = {
    "long": (-(2**63), 2**63 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "double": (-(2**63), 2**63 - 1),
    "float": (-(2**63), 2**63 - 1),
}
FLOAT32_MAX = 3.4028234663852886e38
# A matrix value at or above these magnitudes is looked at precisely (value_problem): the
# float64 matrix cannot tell 2**63 - 1 (fine for a long) from 2**63 (too large).
_INFER_VALUES = 512  # from this many values on, numpy's type discovery is the cheaper check
_BOOL_LOOKS = 64  # values equal to 0 or 1 checked one by one; more: every value's type
_INT_FLOAT = frozenset({int, float})
_DICT = {dict}
_LARGE = {"long": 2.0**63, "integer": 2.0**31, "double": 2.0**63, "float": FLOAT32_MAX}
_PYTHON_TYPES: dict[str, frozenset[type]] = {
    **{kind: frozenset({int, float}) for kind in NUMBERS},
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "datetime": frozenset({str}),
}
_NONE = type(None)


class InputSchema:
    """The signature's input columns, prepared for checking JSON rows quickly."""

    def __init__(self, specs: Sequence[ColumnSpec]) -> None:
        import numpy as np

        if not specs:
            raise InvalidInput(
                "the model has no input signature, so requests cannot be checked",
                hint="register it with input_example= so that its columns are known",
            )
        self.specs = tuple(specs)
        self.names = tuple(spec.name for spec in specs)
        self.name_set = frozenset(self.names)
        self.getter = _getter(self.names)
        self.allowed = tuple(
            _PYTHON_TYPES[spec.type] | ({_NONE} if spec.nullable else set()) for spec in specs
        )
        self.numeric = all(spec.type in NUMBERS or spec.type == "boolean" for spec in specs)
        self.only_numbers = all(spec.type in NUMBERS for spec in specs)
        self.number_types = frozenset().union(*self.allowed) if self.only_numbers else frozenset()
        # The numeric columns' values are checked on one float64 matrix (every column
        # when all are numeric); positions below are within that matrix.
        self.number_positions = [
            i for i, spec in enumerate(specs) if spec.type in NUMBERS or spec.type == "boolean"
        ]
        numbers = [specs[i] for i in self.number_positions]
        strict = [i for i, spec in enumerate(numbers) if not spec.nullable]
        self._all_strict = len(strict) == len(numbers)
        self._strict = np.array(strict, dtype=np.intp)
        self._nullable = np.array(
            [i for i, spec in enumerate(numbers) if spec.nullable and spec.type in NUMBERS],
            dtype=np.intp,
        )
        self._whole = np.array(
            [i for i, spec in enumerate(numbers) if spec.type in WHOLE], dtype=np.intp
        )
        self._large = np.array([_LARGE.get(spec.type, np.inf) for spec in numbers])

    def matrix_ok(self, matrix: np.ndarray[Any, Any]) -> bool:
        """Whether the numeric columns' matrix surely holds only allowed values (else look
        at the values precisely: `find_error`)."""
        import numpy as np

        strict = matrix if self._all_strict else matrix[:, self._strict]
        if strict.size and not np.isfinite(strict).all():
            return False
        if self._nullable.size and np.isinf(matrix[:, self._nullable]).any():
            return False
        if (np.abs(matrix) >= self._large).any():
            return False
        if self._whole.size:
            whole = matrix[:, self._whole]
            return bool(np.all((whole == np.floor(whole)) | np.isnan(whole)))
        return True


def _getter(keys: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A C-speed function from a row (dict or list) to its values at `keys`, as a tuple."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


def rows_block(rows: Any, schema: InputSchema, where: str) -> Block:
    """A block from a list of {field: value} rows."""
    _check_rows(rows, where)
    getter, names = schema.getter, schema.name_set
    # Every row an object with exactly the inputs (as many keys, all found): checked at C
    # speed, since the row-by-row loop below cost as much as the model (100-row bodies).
    if set(map(type, rows)) == _DICT and sum(map(len, rows)) == len(rows) * len(names):
        try:
            picked = list(map(getter, rows))
        except KeyError:
            pass  # a field missing (and another one extra): the loop says which
        else:
            return _from_rows(picked, schema)
    values = []
    dropped: dict[str, None] = {}
    first_row: int | None = None
    for index, row in enumerate(rows):
        if type(row) is not dict:
            raise InvalidInput(
                f"row {index} of '{where}' must be an object of field: value pairs, got "
                f"{describe(row)}"
            )
        if row.keys() != names:
            if not names <= row.keys():
                raise _field_set_error(row.keys(), schema, index)
            first_row = index if first_row is None else first_row
            dropped.update(dict.fromkeys(str(key) for key in row if key not in names))
        values.append(getter(row))
    return _with_dropped(_from_rows(values, schema), tuple(dropped), first_row)


def positional_block(rows: Any, schema: InputSchema, where: str) -> Block:
    """A block from a list of rows given as arrays of values in signature order."""
    _check_rows(rows, where)
    width = len(schema.names)
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            got = f"{len(row)} values" if type(row) is list else describe(row)
            raise InvalidInput(
                f"row {index} of '{where}' must be an array of {width} values (the inputs "
                f"{_preview(schema.names)} in this order), got {got}"
            )
    return _from_rows(rows, schema)


def table_block(columns: Any, data: Any, schema: InputSchema, where: str) -> Block:
    """A block from split form: a list of column names and rows of values in that order.

    `where` prefixes the names in error messages ("dataframe_split" gives
    'dataframe_split.columns'); empty for top-level keys.
    """
    at = f"{where}." if where else ""
    if type(columns) is not list or not all(type(name) is str for name in columns):
        raise InvalidInput(f"'{at}columns' must be a list of column names")
    if len(set(columns)) != len(columns):
        twice = sorted({name for name in columns if columns.count(name) > 1})
        raise InvalidField(f"'{at}columns' names {clip(twice[0])!r} twice", field=twice[0])
    if not schema.name_set <= set(columns):
        raise _field_set_error(columns, schema, None)
    dropped = tuple(name for name in columns if name not in schema.name_set)
    _check_rows(data, f"{at}data")
    width = len(columns)
    for index, row in enumerate(data):
        if type(row) is not list or len(row) != width:
            got = f"{len(row)} values" if type(row) is list else describe(row)
            raise InvalidInput(
                f"row {index} of '{at}data' must be an array of {width} values, one per "
                f"column, got {got}"
            )
    if tuple(columns) == schema.names:
        return _from_rows(data, schema)
    pick = _getter(tuple(columns.index(name) for name in schema.names))
    return _with_dropped(_from_rows([pick(row) for row in data], schema), dropped, None)


def columns_block(columns: Any, schema: InputSchema, where: str) -> Block:
    """A block from a {column: [values...]} object."""
    if type(columns) is not dict:
        raise InvalidInput(f"'{where}' must be an object of column: [values]")
    dropped: tuple[str, ...] = ()
    if columns.keys() != schema.name_set:
        if not schema.name_set <= columns.keys():
            raise _field_set_error(columns.keys(), schema, None)
        dropped = tuple(str(name) for name in columns if name not in schema.name_set)
    values = [columns[name] for name in schema.names]
    lengths = {len(v) if type(v) is list else -1 for v in values}
    if -1 in lengths:
        name = next(n for n, v in zip(schema.names, values, strict=True) if type(v) is not list)
        raise InvalidField(f"column '{name}' of '{where}' must be an array of values", field=name)
    if len(lengths) != 1 or 0 in lengths:
        raise InvalidInput(f"the columns of '{where}' must be non-empty and of one length")
    return _with_dropped(from_columns(values, schema), dropped, None)


def _with_dropped(block: Block, dropped: tuple[str, ...], row: int | None) -> Block:
    block.dropped, block.dropped_row = dropped, row
    return block


def extra_field_error(block: Block, schema: InputSchema) -> InvalidField:
    """The 422 of a deployment with strict inputs, naming the first field it dropped."""
    where = "" if block.dropped_row is None else f"row {block.dropped_row}: "
    extra = block.dropped[0]
    return InvalidField(
        f"{where}field '{clip(extra)}' is not an input of this model",
        field=extra,
        row=block.dropped_row,
        hint=f"the model's inputs are {_preview(schema.names)}; this deployment refuses "
        "other fields (strict inputs)",
    )


def _check_rows(rows: Any, where: str) -> None:
    if type(rows) is not list:
        raise InvalidInput(f"'{where}' must be a list of rows, got {describe(rows)}")
    if not rows:
        raise InvalidInput(f"'{where}' holds no rows; send at least one")


def _from_rows(values: Sequence[Sequence[Any]], schema: InputSchema) -> Block:
    if schema.only_numbers:
        many = len(values) * len(schema.names) >= _INFER_VALUES
        matrix = _plain_numbers(values) if many else None
        if matrix is None and set(map(type, chain.from_iterable(values))) <= schema.number_types:
            # a few rows (numpy's fixed cost is more), nulls (NaN for matrix_ok), huge ints
            matrix = _matrix(values)
        if matrix is not None and schema.matrix_ok(matrix):
            return Block(schema.names, len(values), matrix, rows=values)
    return from_columns(list(zip(*values, strict=True)), schema, rows=values)


def _plain_numbers(values: Sequence[Sequence[Any]]) -> np.ndarray[Any, Any] | None:
    """The float64 matrix of rows whose values are all ints and floats, else None.

    numpy's own type discovery tells numbers from strings, nulls and huge integers (its
    dtype is then not a float or int one) at about half the cost of looking at each
    value's type; only a JSON true or false can hide in a number dtype, as 1 or 0, so
    the values equal to 0 or 1 are the only ones whose type is looked at.
    """
    import numpy as np

    try:
        inferred = np.array(values)
    except (OverflowError, ValueError, TypeError):
        return None
    if inferred.dtype.kind not in "fi" or inferred.ndim != 2:
        return None
    matrix = inferred if inferred.dtype == np.float64 else inferred.astype(np.float64)
    ones = np.flatnonzero((matrix == 0) | (matrix == 1)).tolist()
    width = matrix.shape[1]
    if len(ones) > _BOOL_LOOKS:
        if not set(map(type, chain.from_iterable(values))) <= _INT_FLOAT:
            return None
    elif any(type(values[i // width][i % width]) is bool for i in ones):
        return None
    return matrix


def from_columns(
    columns: Sequence[Sequence[Any]],
    schema: InputSchema,
    *,
    rows: Sequence[Sequence[Any]] | None = None,
) -> Block:
    """A block from the values of each column, in signature order, all of one length."""
    for allowed, column in zip(schema.allowed, columns, strict=True):
        if not set(map(type, column)) <= allowed:
            raise first_error(columns, schema)
    matrix = None
    if schema.number_positions:
        numbers = columns if schema.numeric else [columns[i] for i in schema.number_positions]
        matrix = _matrix(numbers)
        if matrix is None or not schema.matrix_ok(matrix.T):
            error = find_error(columns, schema)
            if error is not None or matrix is None:
                raise error or InvalidField("the input breaks the signature", field=schema.names[0])
        matrix = matrix.T.copy() if schema.numeric else None
    return Block(schema.names, len(columns[0]), matrix, rows=rows, columns=columns)


def _matrix(values: Sequence[Sequence[Any]]) -> np.ndarray[Any, Any] | None:
    import numpy as np

    try:
        return np.array(values, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # an integer too large for a double
        return None


def first_error(columns: Sequence[Sequence[Any]], schema: InputSchema) -> InvalidField:
    """The first bad value, row by row (this path runs only when something is wrong)."""
    error = find_error(columns, schema)
    return error or InvalidField("the input breaks the signature", field=schema.names[0])


def find_error(columns: Sequence[Sequence[Any]], schema: InputSchema) -> InvalidField | None:
    """The first bad value, row by row, or None when every value is acceptable (a large
    number that the matrix check could not judge exactly)."""
    for row in range(len(columns[0])):
        for spec, column in zip(schema.specs, columns, strict=True):
            problem = value_problem(spec, column[row])
            if problem is not None:
                return InvalidField(
                    f"row {row}: field '{spec.name}' {problem}", field=spec.name, row=row
                )
    return None


def value_problem(spec: ColumnSpec, value: Any) -> str | None:
    """What is wrong with one value for a column, or None when it is acceptable."""
    kind = type(value)
    if value is None:
        return None if spec.nullable else f"is null, but the column is not nullable ({spec.type})"
    if spec.type in NUMBERS:
        if kind is not int and kind is not float:
            return f"expects a number ({spec.type}), received {describe(value)}"
        if kind is float and math.isnan(value):
            return None if spec.nullable else "is NaN, but the column is not nullable"
        low, high = INT_RANGES[spec.type]
        if kind is int and not low <= value <= high:
            if spec.type in WHOLE:
                return (
                    f"holds {describe(value)}, outside the range of a {spec.type} column "
                    f"({low} to {high})"
                )
            return (
                f"holds {describe(value)}, an integer past 64 bits; send a large "
                f"{spec.type} as a decimal number (e.g. 1.5e30)"
            )
        try:
            number = float(value)
        except OverflowError:
            return f"holds {describe(value)}, too large for a {spec.type}"
        if math.isinf(number):
            return "is infinite; only finite numbers are accepted"
        if spec.type in WHOLE:
            if not number.is_integer():
                return f"expects a whole number ({spec.type}), received {value!r}"
            if kind is float and not low <= number < high + 1:
                return f"holds {describe(value)}, outside the range of a {spec.type} column"
        if spec.type == "float" and abs(number) > FLOAT32_MAX:
            return f"holds {describe(value)}, too large for a 32-bit float column"
        return None
    if spec.type == "boolean":
        return None if kind is bool else f"expects true or false, received {describe(value)}"
    return None if kind is str else f"expects a string ({spec.type}), received {describe(value)}"


def describe(value: Any) -> str:
    """A JSON value as a client would name it: 'the string "abc"', 'an array', ..."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:37] + '...'}"
    if kind is str:
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if kind is list:
        return "an array"
    if kind is dict:
        return "an object"
    return kind.__name__


def _field_set_error(given: Any, schema: InputSchema, row: int | None) -> InvalidField:
    """Name the first missing field, else the first extra one."""
    present = set(given)
    where = "" if row is None else f"row {row}: "
    for spec in schema.specs:
        if spec.name not in present:
            return InvalidField(
                f"{where}field '{spec.name}' ({spec.type}) is missing", field=spec.name, row=row
            )
    extra = next(str(name) for name in given if name not in schema.name_set)
    return InvalidField(
        f"{where}field '{clip(extra)}' is not an input of this model",
        field=extra,
        row=row,
        hint=f"the model's inputs are {_preview(schema.names)}",
    )


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
