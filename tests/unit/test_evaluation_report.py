"""The HTML evaluation report: self-contained, escaped, with every section and SVG plots."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from loopline.errors import InvalidInput
from loopline.evaluation.compute import evaluate_predictor
from loopline.evaluation.report import render_html
from loopline.project import Stores

EVIL = "<script>alert('x')</script>"


class Sklearn:
    """The Predictor interface over a fitted sklearn estimator and its feature columns."""

    def __init__(self, estimator: Any, columns: list[str], proba: bool = True) -> None:
        self.estimator, self.columns, self.proba = estimator, columns, proba

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(data[self.columns]))

    @property
    def has_proba(self) -> bool:
        return self.proba and hasattr(self.estimator, "predict_proba")

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(data[self.columns]))

    @property
    def classes(self) -> list[Any] | None:
        return list(self.estimator.classes_) if hasattr(self.estimator, "classes_") else None


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _tags(html: str) -> list[str]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def binary() -> tuple[Sklearn, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(0)
    columns = [c for c in frame.columns if c != "target"]
    frame[EVIL] = rng.choice(["<b>gold</b>", "silver & co"], size=len(frame))
    frame["sex"] = rng.choice(["f", "m"], size=len(frame))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.05))
    model.fit(frame[columns], frame["target"])
    return Sklearn(model, columns), frame


@pytest.fixture(scope="module")
def binary_html(binary: tuple[Sklearn, pd.DataFrame]) -> str:
    model, frame = binary
    report = evaluate_predictor(
        model,
        frame,
        target="target",
        slices=[EVIL, "`mean radius` > 15"],
        sensitive=[EVIL, "sex"],
        model_size_bytes=4096,
        latency_repeats=5,
    )
    return render_html(report, title=f"credit {EVIL}")


def test_binary_report_has_every_section_and_four_svg_plots(binary_html: str) -> None:
    for heading in (
        "Summary", "Metrics", "Slices", "Fairness", "Calibration", "Robustness",
        "Latency and size", "Plots",
    ):  # fmt: skip
        assert f"<h2>{heading}</h2>" in binary_html
    labels = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]*)"', binary_html)
    assert labels == ["ROC curve", "precision-recall curve", "reliability diagram",
                      "confusion matrix"]  # fmt: skip
    assert binary_html.count("<polyline") == 3
    assert "4,096" in binary_html  # model size
    assert binary_html.count('class="worst"') == 1


def test_plots_have_axes_with_ticks_and_labels(binary_html: str) -> None:
    roc = re.search(r'<svg class="plot".*?</svg>', binary_html, re.S)
    assert roc is not None
    for text in ("false positive rate", "true positive rate", ">0.2<", ">0.8<", ">1<"):
        assert text in roc.group()


def test_report_escapes_column_names_values_and_title(binary_html: str) -> None:
    assert "<script" not in binary_html and "<b>" not in binary_html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in binary_html
    assert "&lt;b&gt;gold&lt;/b&gt;" in binary_html and "silver &amp; co" in binary_html
    assert "script" not in _tags(binary_html)


def test_report_is_self_contained(binary_html: str) -> None:
    assert not re.search(r"(src|href)\s*=", binary_html)
    assert "http://" not in binary_html and "https://" not in binary_html
    assert {"svg", "style", "table"} <= set(_tags(binary_html))


def test_regression_report_plots_residuals() -> None:
    frame = load_diabetes(as_frame=True).frame
    columns = [c for c in frame.columns if c != "target"]
    model = Sklearn(LinearRegression().fit(frame[columns], frame["target"]), columns)
    report = evaluate_predictor(model, frame, target="target", slices=["age > 0"],
                                latency_repeats=5)  # fmt: skip
    html = render_html(report, title="diabetes")
    labels = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]*)"', html)
    assert labels == ["residuals"]
    assert "prediction - truth" in html and html.count("<rect") >= 10
    assert "regression has no probabilities" in html
    assert "mean absolute change" in html


def test_a_model_without_probabilities_still_renders(binary: tuple[Sklearn, pd.DataFrame]) -> None:
    model, frame = binary
    plain = Sklearn(model.estimator, model.columns, proba=False)
    html = render_html(evaluate_predictor(plain, frame, target="target", latency_repeats=5),
                       title="no proba")  # fmt: skip
    labels = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]*)"', html)
    assert labels == ["confusion matrix"]
    assert "the model gives no probabilities" in html


def test_render_html_rejects_what_is_not_a_report() -> None:
    with pytest.raises(InvalidInput, match="evaluation report"):
        render_html({"rows": 3}, title="x")
    with pytest.raises(InvalidInput, match="title"):
        render_html({"task": "binary"}, title=3)  # type: ignore[arg-type]


def test_a_sparse_report_renders_with_placeholders() -> None:
    html = render_html({"task": "multiclass", "rows": 10}, title="sparse")
    assert "No slices were requested." in html and "No plots" in html


def test_the_model_and_data_references_are_shown() -> None:
    report = {"task": "binary", "model": {"ref": "churn/4"}, "data": {"ref": "credit@3"}}
    html = render_html(report, title="t")
    assert "Model <strong>churn/4</strong> on <strong>credit@3</strong>" in html


def test_the_template_ships_inside_the_package() -> None:
    template = resources.files("loopline.evaluation") / "templates" / "evaluation.html.j2"
    assert template.is_file()


def test_worst_slice_is_not_marked_when_all_slices_tie() -> None:
    frame = load_diabetes(as_frame=True).frame
    columns = [c for c in frame.columns if c != "target"]
    model = Sklearn(LinearRegression().fit(frame[columns], frame["target"]), columns)
    twice = pd.concat([frame.assign(half="a"), frame.assign(half="b")], ignore_index=True)
    tied = evaluate_predictor(model, twice, target="target", slices=["half"], latency_repeats=2)
    html = render_html(tied, title="diabetes")
    assert "half=a" in html and "half=b" in html
    assert 'class="worst"' not in html and "Worst slice by" not in html
    apart = evaluate_predictor(model, frame, target="target", slices=["sex > 0", "sex <= 0"],
                               latency_repeats=2)  # fmt: skip
    assert render_html(apart, title="diabetes").count('class="worst"') == 1


def test_regression_evaluation_prints_no_blank_measure_in_the_cli(
    project: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopline as ll
    from loopline.cli.app import app

    monkeypatch.setenv("COLUMNS", "250")
    frame = load_diabetes(as_frame=True).frame
    columns = [c for c in frame.columns if c != "target"]
    csv = project.settings.root / "diabetes.csv"
    frame.assign(group=np.where(frame["sex"] > 0, "a", "b")).to_csv(csv, index=False)
    ll.data.add(csv, name="diabetes")
    with ll.start_run(experiment="regression"):
        model = LinearRegression().fit(frame[columns], frame["target"])
        ref = ll.models.log_model(model, name="diabetes", input_example=frame[columns].head(3)).ref
    args = ["models", "evaluate", ref, "diabetes@1", "-y", "target", "--sensitive", "group"]
    done = CliRunner().invoke(app, [*args, "-s", "group"])
    assert done.exit_code == 0, done.output
    # one space between words: the console may wrap a long line wherever its width is
    out = " ".join(done.output.split())
    assert "rmse" in out and "mae" in out
    assert "fairness group: mean prediction diff " in out
    assert "mean abs change / target std " in out and "latency one row p50 " in out
    for absent in ("demographic parity", "equalized odds", "calibration ECE", "flip rate"):
        assert absent not in out  # a regressor has none of these: left out, not blank
    # every measure's label is followed by its value, never by a separator or nothing
    labels = re.findall(r"\b(?:diff|ECE|rate|std|p50|p99) (\S*)", out)
    assert labels and all(re.match(r"-?[0-9]", value) for value in labels), labels
