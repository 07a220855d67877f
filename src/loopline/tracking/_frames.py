"""Tables a user hands to `log_table` and `log_input`, as Arrow tables.

Both accept a pandas DataFrame or a dict of columns and go through Arrow, so a value
Arrow cannot hold (an integer past int64, a column mixing numbers and text, a column
name that is not a string) is refused here, at the call, with the column named, rather
than stored in a form no reader can load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa


def arrow_table(data: object, caller: str, *, keep_index: bool) -> pa.Table:
    """`data` (a DataFrame or a dict of equal-length columns) as an Arrow table.

    `keep_index`: store a DataFrame's index as Arrow does (a named or non-default index
    becomes a column, a RangeIndex metadata) so that reading the table back restores it.

    Raises:
        InvalidInput: `data` is neither, a column name is not a string or repeats, or a
            column holds values Arrow cannot hold.
    """
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, Mapping):
        _check_names(list(data.keys()), caller)
        try:
            data = pd.DataFrame(dict(data))
        except UnicodeError as exc:  # pandas' string dtype is Arrow's: same refusal
            raise _unicode_error(caller, exc) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"{caller}: the dict is not a table of columns: {exc}") from exc
    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(
            f"{caller} takes a pandas DataFrame or a dict of columns, got {type(data).__name__}"
        )
    _check_names(list(data.columns), caller)
    try:
        return pa.Table.from_pandas(data, preserve_index=None if keep_index else False)
    except UnicodeError as exc:
        raise _unicode_error(caller, exc) from exc
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"{caller}: a column holds values Arrow cannot store: {_first_line(exc)}",
            hint="give each column one type (numbers, text, booleans, dates); "
            "integers must fit in 64 bits",
        ) from exc


def _check_names(names: list[object], caller: str) -> None:
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(
                f"{caller}: column names must be strings, got {type(name).__name__} {name!r}",
                hint="rename the columns, e.g. df.columns = df.columns.astype(str)",
            )
    if len(set(names)) != len(names):
        repeated = sorted({str(n) for n in names if names.count(n) > 1})
        raise InvalidInput(f"{caller}: column names repeat: {repeated}")


def _unicode_error(caller: str, exc: UnicodeError) -> InvalidInput:
    return InvalidInput(f"{caller}: a text value is not valid Unicode (a lone surrogate): {exc}")


def _first_line(exc: BaseException) -> str:
    """pyarrow's message, whose args may be several strings, on one line."""
    text = "; ".join(str(arg) for arg in exc.args) or type(exc).__name__
    return text.strip().splitlines()[0]
