"""The retrain loop adds production rows to its reference only once."""

from __future__ import annotations

import pandas as pd

from loopline.loop.retrain import _not_in


def test_rows_already_in_the_reference_are_not_added_again() -> None:
    reference = pd.DataFrame(
        {"x": [1.0, 2.0, 2.0, 3.0], "c": ["a", "b", "b", "c"], "y": [0, 1, 1, 0]}
    )
    rows = pd.DataFrame({"x": [2.0, 4.0, 3.0, 3.0], "c": ["b", "d", "c", "z"], "y": [1, 1, 0, 0]})
    kept = _not_in(rows, reference)
    assert kept.to_dict("records") == [{"x": 4.0, "c": "d", "y": 1}, {"x": 3.0, "c": "z", "y": 0}]
    assert list(kept.index) == [1, 3]


def test_columns_of_other_types_share_nothing() -> None:
    reference = pd.DataFrame({"x": ["1", "2"], "y": [0, 1]})
    rows = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    assert len(_not_in(rows, reference)) == 2
