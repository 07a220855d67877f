"""drift() reads dataset versions ("NAME@V") of a real project."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline import data
from loopline.errors import NotFound
from loopline.monitoring import drift
from loopline.project import Stores


def test_drift_between_two_versions_of_a_dataset(project: Stores) -> None:
    path = project.settings.root / "data" / "credit.csv"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    first = pd.DataFrame({"age": rng.normal(40, 10, 3000), "segment": rng.choice(["a", "b"], 3000)})
    first.to_csv(path, index=False)
    assert data.add(path).version.ref == "credit@1"
    second = first.assign(age=rng.normal(50, 10, 3000))
    second.to_csv(path, index=False)
    data.add(path)
    report = drift("credit@1", "credit@2")
    assert report.drifted == ["age"]
    assert report.features["segment"].current_rows == 3000
    assert drift("credit@1", second).drifted == ["age"]
    with pytest.raises(NotFound):
        drift("credit@9", second)
