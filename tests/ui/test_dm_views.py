"""What the model and dataset pages make of reports, cards and lineage trees other than
the fixture project's: a regression's report, an old or partial one, an exported version
whose run is missing, and figures at their edges. Plain data in, no server."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from loopline.server.ui import _figures
from loopline.server.ui._lineage import lineage_graph
from loopline.server.ui._model_views import card_view, evaluation_view


def test_a_regression_report_shows_metrics_and_a_residual_histogram() -> None:
    report = {
        "task": "regression",
        "target": "price",
        "rows": 50,
        "metrics": {"rmse": 1.5, "r2": 0.8},
        "slices": {"big": {"rows": 0, "metrics": None}},
        "fairness": {"region": {"mean_prediction_diff": 0.3, "groups": {"n": {"rows": 3}}}},
        "calibration": None,
        "curves": {"residuals": [{"lower": -1.0, "upper": 0.0, "count": 3},
                                 {"lower": 0.0, "upper": 1.0, "count": 6}]},
        "latency": {"p50_ms": 0.2},
    }  # fmt: skip
    view = evaluation_view(report)
    assert view.metrics == [("rmse", 1.5), ("r2", 0.8)] and view.charts == []
    assert view.slices is not None and view.slices.rows == [["big", 0]]
    assert view.fairness[0].summary == [("mean_prediction_diff", 0.3)]
    assert view.residuals is not None and [b.height for b in view.residuals.bars] == [31.0, 62.0]
    assert view.analysis == [("latency.p50_ms", 0.2)] and view.confusion is None


def test_a_partial_or_malformed_report_shows_what_it_has() -> None:
    view = evaluation_view({"curves": {"roc": {"fpr": [0, 1], "tpr": [1]}, "confusion": "?"}})
    assert view.charts == [] and view.confusion is None and view.slices is None
    assert view.facts == [] and view.fairness == [] and view.ece is None
    binary = evaluation_view(
        {"curves": {"pr": {"recall": [1.0, 0.5, 0.0], "precision": [0.5, 0.8, 1.0]}}}
    )
    [chart] = binary.charts
    data = json.loads(chart.data)
    assert data["x"] == [0.0, 0.5, 1.0] and data["series"][0]["values"] == [1.0, 0.8, 0.5]


def test_a_card_is_read_field_by_field_and_an_empty_one_is_empty() -> None:
    card = {
        "model_details": {"overview": "<b>x</b>", "owners": [{"name": "ana"}, "junk"]},
        "quantitative_analysis": {"performance_metrics": [
            {"type": "auc", "value": 0.9, "slice": ""}, {"type": "auc", "value": 0.8, "slice": "a"},
        ]},
        "considerations": {"limitations": [{"description": "small"}], "users": "not a list"},
    }  # fmt: skip
    view = card_view(card)
    assert view.overview == "<b>x</b>" and ("Owners", "ana") in view.details
    assert view.performance == [("auc", 0.9)]
    assert view.considerations == [("Limitations", ["small"])]
    empty = card_view({})
    assert (empty.overview, empty.details, empty.data, empty.performance) == ("", [], [], [])


def test_an_exported_version_whose_run_is_gone_still_draws_its_chain() -> None:
    source = {"ref": "churn/1", "flavor": "sklearn", "status": "archived", "source": None,
              "run": {"id": "f" * 32, "missing": True}}  # fmt: skip
    export = {"ref": "churn/2", "flavor": "onnx", "status": "production", "source": source,
              "run": None}  # fmt: skip
    deployment = SimpleNamespace(
        name="a b", spec=SimpleNamespace(weight=0.0, describe=lambda: "churn/2")
    )
    graph = lineage_graph(export, [(deployment, "model")])
    kinds = [node.kind for node in graph.nodes]
    assert kinds == ["run missing", "model", "model", "deployment"]
    assert [node.href for node in graph.nodes] == [
        None, "/models/churn/1", "/models/churn/2", "/deployments/a%20b",
    ]  # fmt: skip
    assert [node.current for node in graph.nodes] == [False, False, True, False]
    assert len(graph.edges) == 3
    alone = lineage_graph({"ref": "x/1", "source": None, "run": None}, [])
    assert len(alone.nodes) == 1 and alone.edges == ()


def test_a_wide_graph_is_centred_and_long_names_are_cut() -> None:
    datasets = [{"ref": f"d{i}@1", "rows": 1, "manifest": "m"} for i in range(3)]
    run = {"id": "r" * 32, "name": "n" * 60, "experiment": "e", "datasets": datasets}
    graph = lineage_graph({"ref": "m/1", "source": None, "run": run}, [])
    boxes, found_run = graph.nodes[:3], graph.nodes[3]
    assert [node.y for node in boxes] == [8, 68, 128] and found_run.y == 68
    assert found_run.shown_label == "n" * 23 + "…" and found_run.title.endswith(f"({'r' * 32})")


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (1234567, "1,234,567"), (2.0, "2"), (0.00012, "0.00012"), (12.3456, "12.35"),
     (float("nan"), "NaN"), (float("-inf"), "-∞"), ("<b>", "<b>"), (True, "True")],
)  # fmt: skip
def test_numbers_are_short_for_people(value: object, text: str) -> None:
    assert _figures.short(value) == text


def test_figures_at_their_edges() -> None:
    assert _figures.histogram([0.0, 1.0], []) is None
    assert _figures.histogram([0.0, float("inf")], [3]) is None
    assert _figures.histogram([0.0, 1.0, 2.0], [5]) is None  # edges do not fit the counts
    flat = _figures.histogram([0.0, 1.0], [0])
    assert flat is not None and flat.bars[0].height == 0
    assert _figures.value_bars([]) == ()
    [bar] = _figures.value_bars([("x" * 40, 2)])
    assert bar.shown == "x" * 31 + "…" and bar.value == "x" * 40
    assert [_figures.size(n) for n in (None, 512, 2048, 5 << 30)] == [
        "",
        "512 B",
        "2.0 KiB",
        "5.0 GiB",
    ]
