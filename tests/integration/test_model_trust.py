"""Models that need trust: LightGBM/XGBoost inside scikit-learn pipelines load by
default; a model holding another type is refused at `log_model` unless its types are
trusted, the trust is recorded with the version and audited, and every later command
(predict, models evaluate, models export, gate, serve) loads it without a flag.
`--trust`/`--allow-pickle` cover versions logged before and pickles.

Real projects on SQLite and PostgreSQL, the real CLI (in-process and `loopline serve`
as a subprocess); the custom types are in tests/fixtures/trust_types.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import loopline as ll
from fixtures.serving import free_port, stop_process, wait_ready
from fixtures.trust_types import Doubler, Provenance, shift
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, NotFound, UnsafeModel
from loopline.models import register_package
from loopline.models._packages import store_package
from loopline.packaging import load_model, save_model
from loopline.packaging._predictors import BOOSTING_WRAPPER_TYPES
from loopline.project import Stores

PROVENANCE = "fixtures.trust_types.Provenance"
SHIFT = "fixtures.trust_types.shift"
TESTS = Path(__file__).resolve().parents[1]
LOOPLINE = str(Path(sys.executable).parent / "loopline")
FEATURES = ["mean_radius", "mean_texture", "mean_area", "mean_smoothness"]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame[FEATURES].assign(y=target)


def provenance_model(cancer: pd.DataFrame) -> Pipeline:
    """A fitted pipeline that keeps a Provenance object: a type skops does not know."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(cancer[FEATURES], cancer["y"])
    model.provenance_ = Provenance("risk")
    return model


def write_inputs(project: Stores, cancer: pd.DataFrame) -> Path:
    """The data as a CSV in the project, added as dataset credit@1."""
    csv = project.settings.root / "credit.csv"
    cancer.to_csv(csv, index=False)
    ll.data.add(csv, name="credit")
    return csv


def register_unchecked(model: Any, name: str, example: pd.DataFrame, project: Stores) -> str:
    """Register a model as a loopline from before log-time trust did: no check, nothing
    recorded."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "package"
        manifest = save_model(model, folder, input_example=example)
        package = store_package(folder, project)
        version = register_package(
            name, package.hash, manifest.to_dict(), size=package.size, opened=project
        )
    return version.ref


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines the last command printed to stderr."""
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------- default trust for boosting


def _boosting_pipelines() -> list[tuple[str, Any, pd.DataFrame, Any]]:
    """A pipeline around every LightGBM and XGBoost scikit-learn wrapper, with its data."""
    import lightgbm
    import xgboost

    diabetes, value = load_diabetes(return_X_y=True, as_frame=True)
    wine, label = load_wine(return_X_y=True, as_frame=True)
    ranks = (value > value.median()).astype(int)
    quiet: dict[str, Any] = {"n_estimators": 4, "verbose": -1}
    estimators = [
        (lightgbm.LGBMRegressor(**quiet), diabetes, value),
        (lightgbm.LGBMClassifier(**quiet), wine, label),
        (lightgbm.LGBMModel(objective="regression", **quiet), diabetes, value),
        (lightgbm.LGBMRanker(**quiet), diabetes, ranks),
        (xgboost.XGBRegressor(n_estimators=4), diabetes, value),
        (xgboost.XGBClassifier(n_estimators=4), wine, label),
        (xgboost.XGBRFRegressor(n_estimators=4), diabetes, value),
        (xgboost.XGBRFClassifier(n_estimators=4), wine, label),
        (xgboost.XGBModel(n_estimators=4), diabetes, value),
        (xgboost.XGBRanker(n_estimators=4), diabetes, ranks),
    ]
    pipelines = []
    for estimator, features, target in estimators:
        scale = ColumnTransformer([("num", StandardScaler(), list(features.columns))])
        model = make_pipeline(scale, estimator)
        pipelines.append((type(estimator).__name__, model, features, target))
    return pipelines


def _fit(name: str, model: Any, features: pd.DataFrame, target: Any) -> Any:
    if name == "LGBMRanker":
        return model.fit(features, target, lgbmranker__group=[221, 221])
    if name == "XGBRanker":
        return model.fit(features, target, xgbranker__qid=np.repeat([0, 1], 221))
    return model.fit(features, target)


def test_boosting_defaults_are_exactly_the_types_real_pipelines_hold(tmp_path: Path) -> None:
    seen: set[str] = set()
    for name, model, features, target in _boosting_pipelines():
        fitted = _fit(name, model, features, target)
        data = skops.io.dumps(fitted)
        found = set(skops.io.get_untrusted_types(data=data))
        assert found <= set(BOOSTING_WRAPPER_TYPES), (name, found)
        seen |= found
        folder = tmp_path / name
        save_model(fitted, folder, input_example=features.head(3))
        loaded = load_model(folder)  # no trusted=: the defaults cover it
        assert np.allclose(loaded.predict(features), fitted.predict(features)), name
    assert seen == set(BOOSTING_WRAPPER_TYPES)  # no name trusted that no pipeline needs


def test_a_custom_objective_function_stays_untrusted(tmp_path: Path) -> None:
    import lightgbm

    from fixtures.trust_types import squared_error

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    booster = lightgbm.LGBMRegressor(objective=squared_error, n_estimators=3, verbose=-1)
    model = make_pipeline(StandardScaler(), booster).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head(3))
    with pytest.raises(UnsafeModel) as refused:
        load_model(tmp_path / "pkg")
    assert refused.value.message.endswith("['fixtures.trust_types.squared_error']")


def test_a_lightgbm_pipeline_logs_and_loads_with_no_trust(project: Stores) -> None:
    import lightgbm

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    columns = ColumnTransformer([("num", StandardScaler(), list(features.columns))])
    booster = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1)
    model = make_pipeline(columns, booster).fit(features, target)
    version = ll.models.log_model(model, "diabetes", input_example=features.head(5))
    assert version.flavor == "sklearn" and "trusted" not in version.extra
    loaded = ll.models.load("diabetes/1")
    assert np.allclose(loaded.predict(features), model.predict(features))


# ------------------------------------------------------------ trust given at log time


def test_a_custom_type_is_refused_at_log_without_trust(
    project: Stores, cancer: pd.DataFrame
) -> None:
    model = make_pipeline(FunctionTransformer(shift), LogisticRegression(max_iter=1000))
    model.fit(cancer[FEATURES], cancer["y"])
    with pytest.raises(UnsafeModel) as refused:
        ll.models.log_model(model, "shifted", input_example=cancer[FEATURES].head(3))
    assert refused.value.message == (
        "model 'shifted' was not logged: its model.skops contains types that are not "
        f"trusted by default: ['{SHIFT}']"
    )
    assert refused.value.hint == (
        f"review them, then pass --trust TYPE (or trusted=['{SHIFT}'] in Python)"
    )
    with pytest.raises(NotFound):
        ll.models.load("shifted")  # nothing was registered
    version = ll.models.log_model(
        model, "shifted", input_example=cancer[FEATURES].head(3), trusted=[SHIFT]
    )
    assert version.ref == "shifted/1" and version.extra["trusted"] == [SHIFT]
    loaded = ll.models.load("shifted/1")  # the recorded trust, no argument
    assert np.array_equal(loaded.predict(cancer[FEATURES]), model.predict(cancer[FEATURES]))


def test_trust_is_recorded_and_audited_with_who_trusted_what(
    project: Stores, cancer: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    model = provenance_model(cancer)
    version = ll.models.log_model(
        model, "churn", input_example=cancer[FEATURES].head(3), trusted=[PROVENANCE]
    )
    events = ll.registry.audit_log(model="churn", action="model_version.trust")
    assert [(e.object_id, e.after) for e in events] == [("churn/1", {"trusted": [PROVENANCE]})]
    assert events[0].actor == version.created_by
    assert cli(["audit", "ls", "--model", "churn", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"action": "model_version.trust", "object": "churn/1"}.items() <= listed[0].items()
    assert listed[0]["after"] == {"trusted": [PROVENANCE]}
    assert cli(["audit", "ls", "--model", "churn"]) == 0
    assert "churn" in capsys.readouterr().out  # the table (cells wrap on a narrow console)
    assert cli(["models", "show", "churn/1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trusted"] == [PROVENANCE]
    assert cli(["models", "show", "churn/1"]) == 0
    assert re.search(rf"trusted +{re.escape(PROVENANCE)}", capsys.readouterr().out)
    loaded = ll.models.load("churn/1")
    assert loaded.raw.provenance_.team == "risk"


def test_explicit_trust_adds_to_the_recorded_list(project: Stores, cancer: pd.DataFrame) -> None:
    model = make_pipeline(FunctionTransformer(shift), LogisticRegression(max_iter=1000))
    model.fit(cancer[FEATURES], cancer["y"])
    model.provenance_ = Provenance("risk")
    example = cancer[FEATURES].head(3)
    with pytest.raises(UnsafeModel, match=PROVENANCE):
        ll.models.log_model(model, "both", input_example=example, trusted=[SHIFT])
    ref = register_unchecked(model, "both", example, project)  # as if logged before
    with pytest.raises(UnsafeModel):
        ll.models.load(ref, trusted=[SHIFT])
    assert ll.models.load(ref, trusted=[SHIFT, PROVENANCE]).raw.provenance_.team == "risk"


def test_later_commands_load_a_trusted_version_with_no_flag(
    project: Stores, cancer: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_inputs(project, cancer)
    ll.models.log_model(
        provenance_model(cancer),
        "churn",
        input_example=cancer[FEATURES].head(3),
        trusted=[PROVENANCE],
    )
    output = tmp_path / "preds.csv"
    assert cli(["predict", "churn/1", "--input", str(csv), "--output", str(output)]) == 0
    assert len(pd.read_csv(output)) == len(cancer)
    assert "with churn/1" in capsys.readouterr().out
    assert cli(["models", "evaluate", "churn/1", "credit@1", "-y", "y", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["roc_auc"] > 0.9
    policy = tmp_path / "gates.yaml"
    policy.write_text(
        "rules:\n  - metrics.accuracy >= 0.5\nevaluation:\n  slices: ['mean_radius > 15']\n"
    )
    # a slice makes a new evaluation configuration: gate evaluates (loads) the model again
    assert (
        cli(["gate", "churn/1", "--policy", str(policy), "--data", "credit@1", "-y", "y", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert cli(["models", "export", "churn/1", "--data", "credit@1"]) == 0
    assert "registered churn/2 (onnx, from churn/1)" in capsys.readouterr().out


def test_the_cli_trust_flag_loads_a_version_logged_before(
    project: Stores, cancer: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_inputs(project, cancer)
    ref = register_unchecked(provenance_model(cancer), "legacy", cancer[FEATURES].head(3), project)
    output = tmp_path / "preds.parquet"
    predict = ["predict", ref, "--input", str(csv), "--output", str(output)]
    assert cli(predict) == 9
    lines = errors(capsys)
    assert lines == [
        f"Error: model.skops contains types that are not trusted by default: ['{PROVENANCE}']",
        f"Hint: review them, then pass --trust TYPE (or trusted=['{PROVENANCE}'] in Python)",
    ]
    assert cli([*predict, "--trust", PROVENANCE]) == 0
    assert len(pd.read_parquet(output)) == len(cancer)
    evaluate = ["models", "evaluate", ref, "credit@1", "-y", "y", "--json"]
    assert cli(evaluate) == 9
    capsys.readouterr()
    assert cli([*evaluate, "--trust", PROVENANCE]) == 0
    capsys.readouterr()
    export = ["models", "export", ref, "--data", "credit@1"]
    assert cli(export) == 9
    capsys.readouterr()
    assert cli([*export, "--trust", PROVENANCE]) == 0
    assert "registered legacy/2 (onnx, from legacy/1)" in capsys.readouterr().out


def test_gate_and_promote_take_the_trust_flag(
    project: Stores, cancer: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_inputs(project, cancer)
    ref = register_unchecked(provenance_model(cancer), "legacy", cancer[FEATURES].head(3), project)
    policy = tmp_path / "gates.yaml"
    policy.write_text("rules:\n  - metrics.accuracy >= 0.5\n")
    gate = ["gate", ref, "--policy", str(policy), "--data", "credit@1", "-y", "y"]
    assert cli(gate) == 9
    assert errors(capsys)[0].startswith("Error: model.skops contains types")
    assert cli([*gate, "--trust", PROVENANCE]) == 0
    capsys.readouterr()
    promote = [
        "models",
        "promote",
        ref,
        "--to",
        "staging",
        "--policy",
        str(policy),
        "--data",
        "credit@1",
        "-y",
        "y",
        "--trust",
        PROVENANCE,
    ]
    assert cli(promote) == 0  # the stored evaluation is reused or run with the trust
    assert "legacy/1 is now staging" in capsys.readouterr().out


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("trusted", "message"),
    [
        ("fixtures.trust_types.Provenance", "trusted must be a list of type names"),
        ([1], "trusted must hold type names (strings), got int 1"),
        ([None], "trusted must hold type names (strings), got NoneType None"),
        (True, "trusted must be a list of type names"),
        ([""], "'' is not a type name"),
        (["Provenance"], "'Provenance' is not a type name"),
        (["fixtures.*"], "'fixtures.*' is not a type name"),
        (["os.system; rm"], "is not a type name"),
    ],
)
def test_malformed_trust_is_refused_before_anything_is_logged(
    project: Stores, cancer: pd.DataFrame, trusted: Any, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        ll.models.log_model(
            provenance_model(cancer),
            "churn",
            input_example=cancer[FEATURES].head(3),
            trusted=trusted,
        )
    assert message in refused.value.message
    with pytest.raises(NotFound):
        ll.models.load("churn")  # nothing was registered
    ll.models.log_model(
        provenance_model(cancer),
        "churn",
        input_example=cancer[FEATURES].head(3),
        trusted=[PROVENANCE],
    )
    with pytest.raises(InvalidInput) as refused:
        ll.models.load("churn", trusted=trusted)
    assert message in refused.value.message


@pytest.mark.parametrize("bad", ["", "Provenance", "a..b", "../etc/passwd"])
def test_a_malformed_trust_flag_is_one_error_line(
    project: Stores,
    cancer: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    bad: str,
) -> None:
    csv = write_inputs(project, cancer)
    ref = register_unchecked(provenance_model(cancer), "legacy", cancer[FEATURES].head(3), project)
    output = tmp_path / "preds.csv"
    code = cli(["predict", ref, "--input", str(csv), "--output", str(output), "--trust", bad])
    assert code == 2
    lines = errors(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad!r} is not a type name")
    assert not output.exists()


def test_a_pickle_needs_the_allow_pickle_flag(
    project: Stores, cancer: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_inputs(project, cancer)
    ll.models.log_model(Doubler(), "doubler", input_example=cancer[FEATURES].head(3))
    output = tmp_path / "preds.csv"
    predict = ["predict", "doubler/1", "--input", str(csv), "--output", str(output)]
    assert cli(predict) == 9
    lines = errors(capsys)
    assert lines[0].startswith("Error: the package at ") and "holds a pickle" in lines[0]
    assert lines[1:] == [
        "Hint: only for packages you trust: pass --allow-pickle (or allow_pickle=True in Python)"
    ]
    assert cli([*predict, "--allow-pickle"]) == 0
    predicted = pd.read_csv(output)["prediction"].to_numpy()
    assert np.allclose(predicted, cancer[FEATURES[0]].to_numpy() * 2.0)


def test_a_malformed_recorded_trust_is_corrupted_data(
    project: Stores, cancer: pd.DataFrame
) -> None:
    from loopline.errors import CorruptedData
    from loopline.models import recorded_trust

    version = ll.models.log_model(
        provenance_model(cancer),
        "churn",
        input_example=cancer[FEATURES].head(3),
        trusted=[PROVENANCE],
    )
    for bad in ("x", [3], ["not a name"], True):
        altered = dataclasses.replace(version, extra={"trusted": bad})
        with pytest.raises(CorruptedData, match="malformed trusted list"):
            recorded_trust(altered)


# ----------------------------------------------------------------------- serving


def serve(
    root: Path, ref: str, *extra: str, command: str = ""
) -> tuple[subprocess.Popen[str], str]:
    """`loopline serve` (or `loopline deploy serve`) in a subprocess that can import the
    custom types."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["LOOPLINE_STORE_URI"] = os.environ["LOOPLINE_STORE_URI"]
    port = free_port()
    process = subprocess.Popen(
        [LOOPLINE, *command.split(), "serve", ref, "--port", str(port), *extra],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def served_versions(project: Stores, cancer: pd.DataFrame) -> Path:
    """churn/1 logged with trust; legacy/1 registered without (as before)."""
    example = cancer[FEATURES].head(3)
    ll.models.log_model(
        provenance_model(cancer), "churn", input_example=example, trusted=[PROVENANCE]
    )
    register_unchecked(provenance_model(cancer), "legacy", example, project)
    return project.settings.root


@pytest.mark.slow
# What these check is how a served or Ray-loaded model trusts its types, which no store
# back-end changes (the records they read are tested on both): one back-end keeps ~45 s
# of server and Ray start-ups out of CI.
@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_serve_loads_a_trusted_version_with_no_flag_and_a_legacy_one_with_trust(
    served_versions: Path, cancer: pd.DataFrame
) -> None:
    rows = cancer[FEATURES].head(2).to_dict(orient="records")
    refused, _ = serve(served_versions, "legacy@latest")
    assert refused.wait(timeout=90) == 9, stop_process(refused)
    output = stop_process(refused)
    assert PROVENANCE in output and "--trust TYPE" in output and "Traceback" not in output
    for ref, flags in (("churn@latest", ()), ("legacy@latest", ("--trust", PROVENANCE))):
        process, url = serve(served_versions, ref, *flags)
        try:
            wait_ready(url, timeout=90)
            name = ref.split("@")[0]
            answer = httpx.post(f"{url}/v1/deployments/{name}/predict", json={"inputs": rows})
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["predictions"]) == 2
        finally:
            output = stop_process(process)
        assert f"deployment '{name}' serves {name}/1" in output, output


def test_stored_deployments_load_recorded_trust_and_take_more(
    served_versions: Path, cancer: pd.DataFrame
) -> None:
    """What `deploy serve` runs in each worker: the trusted version loads as it is; the
    version logged before needs the trust `deploy serve --trust` passes."""
    from loopline.serving.deployments import create_deployment
    from loopline.serving.online._stored import StoredDeployments

    create_deployment("scoring", "churn/1", runtime="native")
    create_deployment("old", "legacy/1", runtime="native")
    loaded = StoredDeployments(["scoring"]).load({})
    assert loaded["scoring"].primary.version_ref == "churn/1"
    assert loaded["scoring"].primary.trusted == (PROVENANCE,)
    with pytest.raises(UnsafeModel, match=PROVENANCE):
        StoredDeployments(["old"]).load({})
    loaded = StoredDeployments(["old"], trusted=[PROVENANCE]).load({})
    assert loaded["old"].primary.version_ref == "legacy/1"


@pytest.mark.slow
def test_deploy_serve_passes_the_trust_flag_to_its_workers(
    served_versions: Path, cancer: pd.DataFrame
) -> None:
    from loopline.serving.deployments import create_deployment

    create_deployment("old", "legacy/1", runtime="native")
    rows = cancer[FEATURES].head(2).to_dict(orient="records")
    process, url = serve(served_versions, "old", "--trust", PROVENANCE, command="deploy")
    try:
        wait_ready(url, timeout=90)
        answer = httpx.post(f"{url}/v1/deployments/old/predict", json={"inputs": rows})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "legacy/1"
    finally:
        stop_process(process)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
# What these check is how a served or Ray-loaded model trusts its types, which no store
# back-end changes (the records they read are tested on both): one back-end keeps ~45 s
# of server and Ray start-ups out of CI.
@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("local_ray")  # its workers have tests/ on their path
def test_batch_predict_on_ray_loads_with_the_recorded_trust(
    served_versions: Path, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    from loopline.serving.batch import predict_batch

    source = tmp_path / "rows.parquet"
    cancer[FEATURES].to_parquet(source)
    _predict_on_ray_with_recorded_trust(predict_batch, source, tmp_path, len(cancer))


def _predict_on_ray_with_recorded_trust(
    predict_batch: Any, source: Path, tmp_path: Path, rows: int
) -> None:
    local = predict_batch("churn/1", source, tmp_path / "local.parquet", prefer_onnx=False)
    on_ray = predict_batch(
        "churn/1", source, tmp_path / "ray.parquet", prefer_onnx=False, executor="ray"
    )
    assert on_ray.rows == local.rows == rows
    expected = pd.read_parquet(local.output)["prediction"]
    assert pd.read_parquet(on_ray.output)["prediction"].equals(expected)
    with pytest.raises(UnsafeModel, match=PROVENANCE):
        predict_batch("legacy/1", source, tmp_path / "x.parquet", prefer_onnx=False, executor="ray")
    trusted = predict_batch(
        "legacy/1",
        source,
        tmp_path / "legacy.parquet",
        prefer_onnx=False,
        executor="ray",
        trusted=[PROVENANCE],
    )
    assert pd.read_parquet(trusted.output)["prediction"].equals(expected)
