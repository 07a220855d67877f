"""Batch prediction on Ray (`predict_batch(executor="ray")`, `loopline predict --executor
ray`): the same output file as the local executor, on a real local Ray.

Ray starts once per test process (`local_ray`, tests/fixtures/ray.py) and `predict_batch`
uses it as the process's Ray; one subprocess runs the CLI, which starts and stops a Ray of
its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import loopline as ll
from fixtures.serving import ServingProject, open_serving_project
from loopline.cli.app import run as cli
from loopline.errors import InvalidField, InvalidInput, MissingExtra
from loopline.project import stores
from loopline.serving.batch import predict_batch
from loopline.store import Direction, LinkKind

pytestmark = pytest.mark.xdist_group("ray")

ROWS = 3000  # breast_cancer's 569 rows, repeated
CHUNK = 256  # 12 chunks: more than the actors hold in flight, so order is tested


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("serving")) as opened:
        yield opened


@pytest.fixture(scope="module")
def inputs(serving_project: ServingProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """features.csv / features.parquet (ROWS rows of breast_cancer) and plans.parquet
    (strings and nulls: the DataFrame path), in one folder."""
    folder = tmp_path_factory.mktemp("inputs")
    repeats = -(-ROWS // len(serving_project.features))
    features = pd.concat([serving_project.features] * repeats, ignore_index=True).head(ROWS)
    features.to_csv(folder / "features.csv", index=False)
    features.to_parquet(folder / "features.parquet", index=False)
    plans = pd.concat([serving_project.plans] * 10, ignore_index=True)
    plans.to_parquet(folder / "plans.parquet", index=False)
    return folder


def _predict_both(
    model: str, input: Path, out: Path, *, prefer_onnx: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local and the ray output of the same batch (each checked for its progress)."""
    outputs = []
    for executor in ("local", "ray"):
        seen: list[int] = []
        result = predict_batch(
            model,
            input,
            out / f"{input.name}-{executor}.parquet",
            chunk_size=CHUNK,
            prefer_onnx=prefer_onnx,
            executor=executor,
            progress=seen.append,
        )
        assert result.rows == sum(seen) and seen[0] == CHUNK
        outputs.append(pd.read_parquet(result.output))
    return outputs[0], outputs[1]


@pytest.mark.usefixtures("local_ray")
def test_ray_writes_the_same_output_as_local_for_csv_and_parquet(
    serving_project: ServingProject, inputs: Path, tmp_path: Path
) -> None:
    import ray

    cases = [
        ("churn/1", inputs / "features.csv", True),  # its ONNX export, in onnxruntime
        ("churn/1", inputs / "features.parquet", False),  # scikit-learn on the matrix
        ("plans/1", inputs / "plans.parquet", True),  # strings and nulls: a DataFrame
    ]
    for model, input, prefer_onnx in cases:
        local, on_ray = _predict_both(model, input, tmp_path, prefer_onnx=prefer_onnx)
        pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
        assert list(local["row_id"]) == list(range(len(local)))
    assert len(local) == 2000 and {"proba_0", "proba_1", "model_version"} <= set(local.columns)
    assert ray.is_initialized()  # the process's own Ray is left running

    ray_runs = ll.tracking.search_runs("batch-predict", "params.executor = 'ray'")
    assert sorted(run.params["model"] for run in ray_runs) == ["churn/1", "churn/1", "plans/1"]
    plans_run = next(run for run in ray_runs if run.params["model"] == "plans/1")
    links = stores().metadata.runs.list_links(plans_run.id, Direction.INPUT)
    assert [(link.kind, link.name) for link in links] == [(LinkKind.MODEL_VERSION, "plans/1")]
    assert plans_run.metrics["rows"] == 2000


@pytest.mark.usefixtures("local_ray")
def test_keep_and_csv_output_match_local_on_ray(
    serving_project: ServingProject, inputs: Path, tmp_path: Path
) -> None:
    """Kept columns stay on the driver and rejoin the chunks Ray returns, in input order."""
    features = pd.read_parquet(inputs / "features.parquet")
    ids = [f"row-{n}" for n in np.random.default_rng(5).permutation(len(features))]
    keyed = tmp_path / "keyed.parquet"
    features.assign(id=ids).to_parquet(keyed, index=False)
    outputs = []
    for executor in ("local", "ray"):
        result = predict_batch(
            "churn/1",
            keyed,
            tmp_path / f"{executor}.csv",
            chunk_size=CHUNK,
            executor=executor,
            keep=["id"],
        )
        outputs.append(pd.read_csv(result.output))
    local, on_ray = outputs
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
    assert list(on_ray["id"]) == ids and list(on_ray.columns[:2]) == ["row_id", "id"]


@pytest.mark.usefixtures("local_ray")
def test_a_bad_input_fails_clearly_and_leaves_no_output(
    serving_project: ServingProject, inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "preds.parquet"
    broken = pd.read_parquet(inputs / "features.parquet")
    broken.loc[1234, "mean_texture"] = np.nan  # a null where the signature allows none
    bad_value = tmp_path / "bad_value.parquet"
    broken.to_parquet(bad_value, index=False)
    with pytest.raises(InvalidField, match="row 1234: field 'mean_texture'") as caught:
        predict_batch("churn/1", bad_value, out, chunk_size=CHUNK, executor="ray")
    assert caught.value.row == 1234 and caught.value.field == "mean_texture"
    assert not out.exists() and list(out.parent.iterdir()) == []

    missing = tmp_path / "missing_column.csv"
    broken.drop(columns=["worst_area"]).to_csv(missing, index=False)
    with pytest.raises(InvalidField, match="worst_area"):
        predict_batch("churn/1", missing, out, chunk_size=CHUNK, executor="ray")
    assert list(out.parent.iterdir()) == []


def test_an_unknown_executor_is_refused(
    serving_project: ServingProject,
    inputs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "preds.parquet"
    with pytest.raises(InvalidInput, match="unknown executor 'spark'"):
        predict_batch("churn/1", inputs / "features.csv", out, executor="spark")
    with pytest.raises(InvalidInput, match="only used with the ray executor"):
        predict_batch("churn/1", inputs / "features.csv", out, ray_address="auto")
    code = cli(
        [
            "predict",
            "churn/1",
            "--input",
            str(inputs / "features.csv"),
            "--output",
            str(out),
            "--executor",
            "spark",
        ]
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == InvalidInput.exit_code
    assert len(errors) == 1 and errors[0].startswith("Error: unknown executor 'spark'")
    assert not out.exists()


@pytest.mark.usefixtures("serving_project")
def test_without_ray_the_ray_executor_names_the_extra(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without Ray
    with pytest.raises(MissingExtra) as caught:
        predict_batch("churn/1", inputs / "features.csv", tmp_path / "p.parquet", executor="ray")
    assert caught.value.hint == "pip install 'loopline[ray]'"


@pytest.mark.slow
def test_cli_starts_a_local_ray_and_writes_what_local_writes(
    serving_project: ServingProject, inputs: Path, tmp_path: Path
) -> None:
    local = predict_batch("churn/1", inputs / "features.parquet", tmp_path / "local.parquet")
    on_ray = tmp_path / "ray.parquet"
    command = [
        str(Path(sys.executable).parent / "loopline"),
        "predict",
        "churn/1",
        "--input",
        str(inputs / "features.parquet"),
        "--output",
        str(on_ray),
        "--chunk-size",
        "500",
        "--executor",
        "ray",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    done = subprocess.run(
        command, cwd=serving_project.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"predicted {ROWS:,} rows with churn/1" in done.stdout
    assert "Traceback" not in done.stderr
    assert pq.read_table(on_ray).equals(pq.read_table(local.output))
