"""A `Block`: checked input rows kept column by column in signature order, plus one
float64 matrix when every input is numeric. The server builds them from requests (see
serving/_inputs.py); the prediction log keeps and writes them."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class Block:
    """Checked input rows: `n_rows`, `columns()` in signature order, and `matrix` (float64,
    shape (n_rows, n_columns)) when every input is numeric, else None."""

    __slots__ = (
        "_columns",
        "_parts",
        "_rows",
        "dropped",
        "dropped_row",
        "matrix",
        "n_rows",
        "names",
    )

    def __init__(
        self,
        names: tuple[str, ...],
        n_rows: int,
        matrix: np.ndarray[Any, Any] | None,
        *,
        rows: Sequence[Sequence[Any]] | None = None,
        columns: Sequence[Sequence[Any]] | None = None,
        parts: Sequence[Block] | None = None,
    ) -> None:
        self.names = names
        self.n_rows = n_rows
        self.matrix = matrix
        self._rows = rows
        self._columns = columns
        self._parts = parts
        # fields the client sent that are not inputs, in the order first seen, and the row
        # of the first (None when given per column); only a parsed request sets them
        self.dropped: tuple[str, ...] = ()
        self.dropped_row: int | None = None

    def columns(self) -> Sequence[Sequence[Any]]:
        """The values of each column, as the client sent them (null stays None; a compact
        block gives its matrix's floats)."""
        if self._columns is None:
            if self._rows is None and self._parts is None and self.matrix is not None:
                return [self.matrix[:, i].tolist() for i in range(len(self.names))]
            if self._parts is not None:
                columns = [part.columns() for part in self._parts]
                self._columns = [list(chain.from_iterable(c)) for c in zip(*columns, strict=True)]
            else:
                assert self._rows is not None
                self._columns = list(zip(*self._rows, strict=True))
        return self._columns

    def first(self, name: str) -> Any:
        """The first row's value of column `name` (KeyError if there is no such column)."""
        index = self.names.index(name) if name in self.names else -1
        if index < 0 or self.n_rows == 0:
            raise KeyError(name)
        if self._rows is not None:
            return self._rows[0][index]
        return self.columns()[index][0]

    def rows(self) -> list[dict[str, Any]]:
        """The rows as {field: value} dicts (for the prediction log; not on the hot path)."""
        return [
            dict(zip(self.names, values, strict=True))
            for values in zip(*self.columns(), strict=True)
        ]

    def compact(self) -> Block:
        """The same rows without the per-row Python objects when a matrix holds them all
        (what the prediction log keeps for seconds: fewer objects for the garbage
        collector to walk)."""
        if self.matrix is None or len(self.names) != self.matrix.shape[1]:
            return self  # some inputs are not numbers: the rows are the only copy
        if self._rows is None and self._columns is None and self._parts is None:
            return self
        return Block(self.names, self.n_rows, self.matrix)

    def slice(self, start: int, stop: int) -> Block:
        """Rows [start, stop) as a block of their own."""
        matrix = None if self.matrix is None else self.matrix[start:stop]
        if self._rows is None and self._columns is None and self._parts is None:
            return Block(self.names, stop - start, matrix)
        columns = [column[start:stop] for column in self.columns()]
        return Block(self.names, stop - start, matrix, columns=columns)

    @staticmethod
    def concat(blocks: Sequence[Block]) -> Block:
        """One block holding the rows of several, in order (a micro-batch)."""
        if len(blocks) == 1:
            return blocks[0]
        import numpy as np

        first = blocks[0]
        matrix = None
        if first.matrix is not None:
            matrix = np.concatenate([block.matrix for block in blocks])
        return Block(first.names, sum(b.n_rows for b in blocks), matrix, parts=blocks)
