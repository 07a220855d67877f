"""The project behind the dataset and model pages' tests, made through the core's APIs.

- dataset `credit` (breast cancer features, `id`, `segment`, `sex`, `y`): version 1
  validates against a suite inferred from it; version 2 fails it: `mean_radius` scaled
  by 1.3, `mean_texture` dropped, a column named `XSS_COLUMN` added, the first five rows
  gone, and one `segment` holding `XSS_VALUE` (a failing example of the in_set rule).
- model `churn` (described with `XSS_DESCRIPTION`, card tags holding markup): version 1
  a logistic regression trained in a run that read credit@1, evaluated and gated by a
  policy that asks for an approval, approved by ben, alias `champion`, served by
  deployment `churn-api`; version 2 a one-split tree, gated and failed, the
  deployment's canary at 10 %.

SQLite, five to ten seconds (training is on 569 rows; evaluation with its latency
budget, gates and profiles are the real ones), so built once per test process: the
pages only read it, and both test modules that use it ask to share a process (their
`xdist_group`). What the pages read is checked on PostgreSQL too, by the core's own
tests of those functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

XSS_VALUE = "<script>alert('segment')</script>"
XSS_COLUMN = "<img src=x onerror=alert(4)>"
XSS_DESCRIPTION = "Churn <b>risk</b> <script>alert('description')</script>"
XSS_CARD = "<img src=x onerror=alert('card')> retention offers"
FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area"]
POLICY = """
rules:
  - metrics.roc_auc >= 0.95
  - fairness.sex.demographic_parity_diff <= 0.3
require_approval: true
evaluation:
  data: credit@1
  target: y
  slices: [segment, "mean_radius > 15"]
  sensitive: [sex]
"""


@dataclass(frozen=True)
class DmProject:
    stores: Any
    root: Path
    run_id: str  # the run that trained churn/1 (it read credit@1)


def table() -> Any:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(3)
    return frame[FEATURES].assign(
        id=range(len(frame)),
        segment=rng.choice(["gold", "silver"], len(frame)),
        sex=rng.choice(["f", "m"], len(frame)),
        y=target,
    )


def fill(client: Any, root: Path) -> DmProject:
    """The project of the module docstring, through `client` (bound)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    import loopline as ll
    from loopline.promotion import policy_from_yaml

    first = table()
    csv = root / "credit.csv"
    first.to_csv(csv, index=False)
    ll.data.add(csv, name="credit", message="first cut")
    suite = ll.data.expect("credit@1", key_columns=("id",))
    ll.data.validate("credit@1", suite)
    second = first.iloc[5:].copy()
    second["mean_radius"] = second["mean_radius"] * 1.3
    second.loc[7, "segment"] = XSS_VALUE
    second = second.drop(columns=["mean_texture"]).assign(**{XSS_COLUMN: 1})
    second.to_csv(csv, index=False)
    ll.data.add(csv, name="credit", message="rescaled <radius>")
    ll.data.validate("credit@2", suite)

    run_ids = []
    for model in (LogisticRegression(max_iter=1000), DecisionTreeClassifier(max_depth=1)):
        with ll.start_run(experiment="churn") as run:
            frame = ll.data.load("credit@1")
            model.fit(frame[FEATURES], frame["y"])
            ll.models.log_model(model, name="churn", input_example=frame[FEATURES].head(5))
            run_ids.append(run.id)
    ll.registry.describe_model(
        "churn",
        description=XSS_DESCRIPTION,
        tags={"intended_use": XSS_CARD, "limitations": "small sample", "risk_category": "limited"},
    )
    policy = policy_from_yaml(POLICY)
    ll.promotion.promote("churn/1", alias="champion", reason="ready", policy=policy, actor="ana")
    ll.promotion.approve("churn/1", reason="risk review <ok>", actor="ben")
    ll.promotion.check_gates("churn/2", policy=policy)
    ll.serving.create_deployment("churn-api", "churn@champion", reason="first")
    ll.serving.update_deployment("churn-api", canary="churn/2", weight=10, reason="try the tree")
    return DmProject(client.stores, root, run_ids[0])


@pytest.fixture(scope="session")
def dm_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DmProject]:
    import loopline as ll
    from loopline.config import init_project

    root = tmp_path_factory.mktemp("ui-dm")
    init_project(root)
    with pytest.MonkeyPatch.context() as env:  # no LOOPLINE_SERVER or the like from a shell
        for name in list(os.environ):
            if name.startswith("LOOPLINE_") and name != "LOOPLINE_TEST_POSTGRES_URL":
                env.delenv(name)
        env.chdir(root)  # runs record no git state of the checkout the tests run in
        client = ll.Client(project=root)
        with client.bound():
            filled = fill(client, root)
    yield filled
    client.close()


@pytest.fixture(scope="module")
def dm_app(dm_project: DmProject) -> Any:
    from loopline.server import create_app

    return create_app(dm_project.stores)


@pytest.fixture(scope="module")
def dm_client(dm_app: Any) -> Any:
    from server._inprocess import app_client

    return app_client(dm_app)
