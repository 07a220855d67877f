"""Model signatures: the named, typed columns a model takes and returns.

    Signature(inputs=(ColumnSpec("age", "long"), ColumnSpec("income", "double", nullable=True)),
              outputs=(ColumnSpec("prediction", "long"),))

Types are the column types a client can send as JSON or a DataFrame holds: "double",
"float", "long", "integer", "boolean", "string" and "datetime". A signature without
inputs accepts any input (nothing to check against).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TYPES = ("double", "float", "long", "integer", "boolean", "string", "datetime")
NUMERIC = frozenset({"double", "float", "long", "integer"})


class SignatureWarning(UserWarning):
    """Model input that was accepted after an adjustment, e.g. extra columns dropped."""


@dataclass(frozen=True)
class ColumnSpec:
    """One named, typed column; `shape` is set for array outputs such as probabilities."""

    name: str
    type: str
    nullable: bool = False
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput(f"a column name must be a non-empty string, got {self.name!r}")
        if self.type not in TYPES:
            raise InvalidInput(
                f"column '{self.name}' has unknown type {self.type!r}",
                hint=f"use one of {', '.join(TYPES)}",
            )

    def to_dict(self, *, with_nullable: bool = True) -> dict[str, Any]:
        """The manifest form: {name, type, nullable} (+ shape for array outputs)."""
        body: dict[str, Any] = {"name": self.name, "type": self.type}
        if with_nullable:
            body["nullable"] = self.nullable
        if self.shape is not None:
            body["shape"] = list(self.shape)
        return body

    @classmethod
    def from_dict(cls, body: Any) -> ColumnSpec:
        """Parse the manifest form; InvalidInput when a key is missing or mistyped."""
        if not isinstance(body, Mapping) or "name" not in body or "type" not in body:
            raise InvalidInput(f"a signature column must be a mapping with name and type: {body!r}")
        shape = body.get("shape")
        if shape is not None and not (
            isinstance(shape, list) and all(isinstance(n, int) for n in shape)
        ):
            raise InvalidInput(f"column {body['name']!r} has an invalid shape {shape!r}")
        return cls(
            name=body["name"],
            type=body["type"],
            nullable=bool(body.get("nullable", False)),
            shape=None if shape is None else tuple(shape),
        )


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes (in order) and the outputs it returns."""

    inputs: tuple[ColumnSpec, ...] = field(default=())
    outputs: tuple[ColumnSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        # Accept lists from callers while keeping the dataclass hashable and immutable.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        names = [column.name for column in self.inputs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidInput(f"the signature names input columns twice: {duplicates}")

    @property
    def input_names(self) -> list[str]:
        """The input column names, in the order the model expects them."""
        return [column.name for column in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: {inputs: [...], outputs: [...]}."""
        return {
            "inputs": [column.to_dict() for column in self.inputs],
            "outputs": [column.to_dict(with_nullable=False) for column in self.outputs],
        }

    @classmethod
    def from_dict(cls, body: Any) -> Signature:
        """Parse the manifest form; InvalidInput when malformed."""
        if body is None:
            return cls()
        if not isinstance(body, Mapping):
            raise InvalidInput(f"a signature must be a mapping, got {type(body).__name__}")
        parts = []
        for key in ("inputs", "outputs"):
            columns = body.get(key) or []
            if not isinstance(columns, list):
                raise InvalidInput(f"signature {key} must be a list, got {type(columns).__name__}")
            parts.append(tuple(ColumnSpec.from_dict(column) for column in columns))
        return cls(inputs=parts[0], outputs=parts[1])


def infer_signature(input_example: Any, output: Any = None) -> Signature:
    """The signature of an example input (and, optionally, of the model's output on it).

    `input_example` is a pandas DataFrame, a 2-D numpy array (columns "f0".."fN-1"), a
    list of row dicts or a dict of columns. A column is nullable when the example holds
    a missing value in it. `output` is what the model's predict returned.
    """
    frame = example_frame(input_example)
    inputs = tuple(
        ColumnSpec(str(name), column_type(frame[name], str(name)), bool(frame[name].isna().any()))
        for name in frame.columns
    )
    outputs = () if output is None else output_specs(output)
    return Signature(inputs=inputs, outputs=outputs)


def example_frame(example: Any) -> pd.DataFrame:
    """An input example as a DataFrame with string column names."""
    import numpy as np
    import pandas as pd

    if isinstance(example, np.ndarray):
        if example.ndim != 2:
            raise InvalidInput(f"an input example array must be 2-D, got {example.ndim}-D")
        return pd.DataFrame(example, columns=[f"f{i}" for i in range(example.shape[1])])
    if isinstance(example, pd.DataFrame):
        frame = example
    elif isinstance(example, Mapping) or (
        isinstance(example, Sequence) and all(isinstance(row, Mapping) for row in example)
    ):
        frame = pd.DataFrame(example)
    else:
        raise InvalidInput(
            f"cannot infer a signature from {type(example).__name__}",
            hint="pass a DataFrame, a 2-D numpy array, a list of row dicts or a dict of columns",
        )
    if frame.columns.has_duplicates:
        twice = sorted({str(name) for name in frame.columns[frame.columns.duplicated()]})
        raise InvalidInput(f"the input example names columns more than once: {twice}")
    bad = [name for name in frame.columns if not isinstance(name, str)]
    if bad:
        raise InvalidInput(
            f"input example column names must be strings, got {bad[:3]!r}",
            hint="name the columns, or pass a numpy array to get f0..fN-1",
        )
    return frame


_INFERRED = {
    "floating": "double",
    "mixed-integer-float": "double",
    "decimal": "double",
    "integer": "long",
    "boolean": "boolean",
    "string": "string",
    "datetime": "datetime",
    "datetime64": "datetime",
}


def column_type(column: pd.Series[Any], name: str) -> str:
    """The signature type of one example column."""
    import pandas as pd

    kind = dtype_type(column.dtype)
    if kind is not None:
        return kind
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred in _INFERRED:
        return _INFERRED[inferred]
    if inferred == "empty":
        raise InvalidInput(f"cannot infer the type of column '{name}': every value is missing")
    raise InvalidInput(f"cannot infer the type of column '{name}': it holds {inferred} values")


def dtype_type(dtype: Any) -> str | None:
    """The signature type a dtype stands for, or None when the values must be inspected."""
    import pandas as pd

    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return None if dtype.categories.dtype.kind == "O" else dtype_type(dtype.categories.dtype)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    kind, size = getattr(dtype, "kind", "O"), getattr(dtype, "itemsize", 8)
    if kind == "f":
        return "float" if size <= 4 else "double"
    if kind in "iu":
        return "integer" if size <= 4 else "long"
    if kind == "b":
        return "boolean"
    if kind == "M":
        return "datetime"
    if kind == "U":
        return "string"
    return None


def output_specs(output: Any) -> tuple[ColumnSpec, ...]:
    """The output columns of a prediction: one `prediction` column, with a shape if 2-D."""
    import numpy as np
    import pandas as pd

    array: np.ndarray[Any, Any] = np.asarray(output)
    kind = dtype_type(array.dtype)
    if kind is None:
        kind = column_type(pd.Series(array.ravel()), "prediction")
    shape = (-1, *array.shape[1:]) if array.ndim > 1 else None
    return (ColumnSpec("prediction", kind, shape=shape),)


def label_type(classes: Sequence[Any]) -> str:
    """The signature type of class labels (JSON scalars)."""
    if all(isinstance(label, bool) for label in classes):
        return "boolean"
    if all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        return "long"
    if all(isinstance(label, int | float) for label in classes):
        return "double"
    return "string"
