"""`--runtime auto|native|onnx`: a model served as logged runs in onnxruntime.

`auto` converts a version without an ONNX export at load, checks parity on its reference
rows and registers the export (so the next load reuses it); a version whose conversion
fails or disagrees with the original runs natively, and says why; `onnx` refuses it;
`native` never uses ONNX. Real models, real stores (SQLite and PostgreSQL), real
`loopline serve` processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fixtures.serving import free_port, stop_process, wait_ready, when_ready

LOOPLINE = str(Path(sys.executable).parent / "loopline")


def _features() -> tuple[pd.DataFrame, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame, data.target


def _fit(kind: str) -> Any:
    features, target = _features()
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=20, random_state=0).fit(features, target)
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=20, verbose=-1).fit(features, target)
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=20, max_depth=3).fit(features, target)


def _log(model: Any, name: str, example: pd.DataFrame) -> str:
    import loopline as ll

    return ll.models.log_model(model, name=name, input_example=example).ref


def _exports(opened: Any, ref: str) -> list[Any]:
    from loopline.registry import resolve

    source = resolve(ref, opened=opened)
    return [v for v in opened.metadata.models.versions_from_source(source.id) if v.flavor == "onnx"]


def _float32_losing_regression() -> tuple[Any, pd.DataFrame]:
    """A linear regression whose outputs (~1e9) float32 cannot carry to 1e-4: the ONNX
    form genuinely disagrees with the original, so its parity check fails."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(1000, 100, 200), "b": rng.normal(50, 5, 200)})
    target = 1e6 * frame["a"] + 3e5 * frame["b"] + rng.normal(0, 1, 200)
    return LinearRegression().fit(frame, target), frame


@pytest.mark.parametrize("kind", ["forest", "lightgbm", "xgboost"])
def test_auto_converts_a_logged_model_once_and_the_next_load_reuses_the_export(
    project: Any, kind: str
) -> None:
    from loopline.serving import load_served
    from loopline.serving._runtime import plan_runtime

    features, _ = _features()
    ref = _log(_fit(kind), kind, features.head(50))
    assert _exports(project, ref) == []

    first = plan_runtime(ref, "auto")
    assert first.runtime == "onnxruntime" and first.note == "converted at load"
    exports = _exports(project, ref)
    assert [v.id for v in exports] == [first.runtime_version.id]
    assert exports[0].extra["export"]["parity"]["passed"] is True

    again = plan_runtime(ref, "auto")  # the cached export: no second conversion
    assert again.runtime_version.id == first.runtime_version.id and again.note is None
    assert len(_exports(project, ref)) == 1

    onnx = load_served(ref, runtime="auto", warm_up=False)
    native = load_served(ref, runtime="native", warm_up=False)
    assert onnx.runtime == "onnxruntime" and native.runtime == kind.replace("forest", "sklearn")
    rows = features.iloc[100:160].to_dict(orient="records")
    fast, slow = onnx.predict_rows(rows), native.predict_rows(rows)
    assert list(fast.predictions) == list(slow.predictions)
    assert fast.probabilities is not None and slow.probabilities is not None
    np.testing.assert_allclose(fast.probabilities, slow.probabilities, atol=1e-4)


def test_auto_serves_natively_when_parity_fails_and_says_why(project: Any) -> None:
    from loopline.serving import load_served
    from loopline.serving._runtime import plan_runtime

    model, frame = _float32_losing_regression()
    ref = _log(model, "bigreg", frame.head(50))
    plan = plan_runtime(ref, "auto")
    assert plan.runtime == "sklearn" and plan.runtime_version.ref == ref
    assert plan.note is not None and "differs from the original" in plan.note
    assert "[native: the ONNX form of bigreg/1 differs" in plan.describe()
    assert _exports(project, ref) == []  # nothing registered when parity fails
    served = load_served(ref, runtime="auto", warm_up=False)
    assert served.runtime == "sklearn"
    expected = model.predict(frame.head(3))
    np.testing.assert_allclose(
        served.predict_rows(frame.head(3).to_dict(orient="records")).predictions, expected
    )


def test_auto_serves_natively_a_model_the_converter_cannot_handle(project: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    import loopline as ll
    from loopline.serving._runtime import plan_runtime

    features, target = _features()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=2000))
    model.fit(features, target)
    ref = ll.models.log_model(
        model, name="custom", input_example=features.head(20), trusted=["numpy.log1p"]
    ).ref
    plan = plan_runtime(ref, "auto")
    assert plan.runtime == "sklearn"
    assert plan.note is not None and "cannot export" in plan.note
    assert _exports(project, ref) == []


def test_native_never_uses_onnx(project: Any) -> None:
    from loopline.serving import load_served
    from loopline.serving._runtime import plan_runtime

    features, _ = _features()
    ref = _log(_fit("forest"), "forest", features.head(50))
    assert plan_runtime(ref, "native").runtime == "sklearn"
    assert load_served(ref, runtime="native", warm_up=False).runtime == "sklearn"
    assert _exports(project, ref) == []  # not even converted
    plan_runtime(ref, "auto")  # now there is an export; native still ignores it
    assert plan_runtime(ref, "native").runtime == "sklearn"


def test_onnx_converts_or_refuses(project: Any) -> None:
    from loopline.errors import InvalidInput
    from loopline.serving._runtime import plan_runtime

    features, _ = _features()
    good = _log(_fit("lightgbm"), "gbm", features.head(50))
    assert plan_runtime(good, "onnx").runtime == "onnxruntime"
    model, frame = _float32_losing_regression()
    bad = _log(model, "bigreg", frame.head(50))
    with pytest.raises(InvalidInput, match="cannot serve bigreg/1 with --runtime onnx"):
        plan_runtime(bad, "onnx")


@pytest.mark.parametrize("value", ["x", "", "ONNX", "auto ", "../native", "nan"])
def test_an_unknown_runtime_is_refused(project: Any, value: str) -> None:
    from loopline.errors import InvalidInput
    from loopline.serving._runtime import plan_runtime
    from loopline.serving.deployments import create_deployment

    features, _ = _features()
    ref = _log(_fit("forest"), "forest", features.head(10))
    with pytest.raises(InvalidInput, match="unknown runtime"):
        plan_runtime(ref, value)
    with pytest.raises(InvalidInput, match="unknown runtime"):
        create_deployment("scoring", ref, runtime=value)


def test_a_deployment_stores_its_runtime(project: Any) -> None:
    from loopline.serving.deployments import (
        DeploymentSpec,
        create_deployment,
        get_deployment,
        update_deployment,
    )

    features, _ = _features()
    ref = _log(_fit("forest"), "forest", features.head(10))
    assert create_deployment("scoring", ref).spec.runtime == "auto"
    assert update_deployment("scoring", runtime="onnx").spec.runtime == "onnx"
    assert get_deployment("scoring").spec.runtime == "onnx"
    native = update_deployment("scoring", runtime="native").spec
    assert native.runtime == "native" and native.prefer_onnx is False
    assert update_deployment("scoring", prefer_onnx=True).spec.runtime == "auto"
    # a deployment stored before runtimes existed keeps its meaning
    older = DeploymentSpec.from_dict({"model": {"model": ref}, "prefer_onnx": False})
    assert older.runtime == "native"


def _cli(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["COLUMNS"] = "300"
    return subprocess.run(
        [LOOPLINE, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "forest/1", "--runtime", "x"],
        ["serve", "forest/1", "--runtime", "onnx", "--native"],
        ["deploy", "serve", "scoring", "--runtime", "fast"],
        ["deploy", "create", "scoring", "--model", "forest/1", "--runtime", "gpu"],
    ],
)
def test_cli_bad_runtime_is_one_error_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    root = _sqlite_project(tmp_path, with_forest=False)
    result = _cli(root, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_serve_runtime_onnx_refuses_a_model_that_fails_parity(tmp_path: Path) -> None:
    root = _sqlite_project(tmp_path, with_forest=False)
    model, frame = _float32_losing_regression()
    _with_project(root, lambda: _log(model, "bigreg", frame.head(50)))
    result = _cli(root, "serve", "bigreg/1", "--runtime", "onnx", "--port", str(free_port()))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Error: cannot serve bigreg/1 with --runtime onnx" in result.stderr
    assert "prediction service on" not in out and "Traceback" not in out


def test_loopline_serve_converts_once_for_two_workers_and_reports_the_runtime(
    tmp_path: Path,
) -> None:
    root = _sqlite_project(tmp_path, with_forest=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [LOOPLINE, "serve", "forest/1", "--port", str(port), "--workers", "2"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_ready(url, timeout=120)
        metadata = when_ready("GET", f"{url}/v2/models/forest")
        assert metadata.json()["parameters"]["runtime"] == "onnxruntime"
        assert metadata.json()["parameters"]["runtime_version"] == "forest/2"
    finally:
        output = stop_process(process)
    assert (
        "deployment 'forest' serves forest/1 with onnxruntime (ONNX export forest/2) "
        "[converted at load]" in output
    ), output
    assert output.count("converting forest/1 to ONNX") == 1, output  # not once per worker
    assert _with_project(root, lambda: _version_refs("forest")) == ["forest/1", "forest/2"]
    shown = _cli(root, "models", "show", "forest/2")
    assert shown.returncode == 0 and "ONNX export of forest/1" in shown.stdout, shown.stdout
    # served again: the cached export is planned, nothing converts
    again = _with_project(root, lambda: _plan("forest/1"))
    assert again.runtime_version.ref == "forest/2" and again.note is None


def _plan(ref: str) -> Any:
    from loopline.serving._runtime import plan_runtime

    return plan_runtime(ref, "auto")


def _version_refs(name: str) -> list[str]:
    from loopline.project import stores

    return sorted(v.ref for v in stores().metadata.models.list_versions(name))


def _with_project(root: Path, call: Any) -> Any:
    from loopline.project import close, configure

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LOOPLINE_")}
    configure(project=root)
    try:
        return call()
    finally:
        close()
        os.environ.update(saved)


def _sqlite_project(tmp_path: Path, *, with_forest: bool) -> Path:
    from loopline.config import init_project

    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    if with_forest:
        features, _ = _features()
        _with_project(root, lambda: _log(_fit("forest"), "forest", features.head(50)))
    return root


@pytest.mark.parametrize("threads", ["1", "2", "0", "abc", "-3", ""])
def test_onnx_sessions_take_the_thread_setting_and_ignore_bad_values(
    project: Any, monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    from loopline.serving import load_served

    features, _ = _features()
    ref = _log(_fit("lightgbm"), "gbm", features.head(50))
    default = load_served(ref, runtime="onnx", warm_up=False)
    monkeypatch.setenv("LOOPLINE_ONNX_THREADS", threads)
    tuned = load_served(ref, runtime="onnx", warm_up=False)
    assert tuned.runtime == "onnxruntime"
    rows = features.iloc[:100].to_dict(orient="records")
    expected, got = default.predict_rows(rows), tuned.predict_rows(rows)
    assert list(got.predictions) == list(expected.predictions)
    assert got.probabilities is not None and expected.probabilities is not None
    np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-6)
