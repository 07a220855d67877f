"""Batch prediction (`predict_batch`, `loopline predict`) over Parquet, CSV and dataset
versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from loopline.cli.app import run as cli
from loopline.errors import Conflict, InvalidField, InvalidInput, NotFound
from loopline.project import Stores
from loopline.serving.batch import predict_batch
from loopline.store import Direction, LinkKind, RunStatus

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area", "worst_concavity"]
CHUNK = 100  # breast_cancer's 569 rows make six chunks


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(3)
    return frame[FEATURES].assign(segment=rng.choice(["gold", "silver"], len(frame)), y=target)


def _register(project: Stores, table: pd.DataFrame) -> str:
    """Version the table as credit@1 and register churn/1 trained on it."""
    csv = project.settings.root / "credit.csv"
    table.to_csv(csv, index=False)
    ll.data.add(csv, name="credit")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with ll.start_run(experiment="churn"):
        frame = ll.data.load("credit@1")
        model.fit(frame[FEATURES], frame["y"])
        return ll.models.log_model(model, name="churn", input_example=frame[FEATURES].head(5)).ref


def _check_output(path: Path, table: pd.DataFrame, ref: str) -> None:
    out = pd.read_parquet(path)
    loaded = ll.models.load(ref)
    expected = loaded.predict(table[FEATURES])
    assert list(out["row_id"]) == list(range(len(table)))
    assert out["row_id"].dtype == np.int64
    np.testing.assert_array_equal(out["prediction"].to_numpy(), np.asarray(expected))
    assert set(out["model_version"]) == {"churn/1"}
    proba = np.asarray(loaded.predict_proba(table[FEATURES]))
    assert [c for c in out.columns if c.startswith("proba_")] == ["proba_0", "proba_1"]
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), proba, atol=1e-6)


def test_parquet_csv_and_dataset_inputs_match_the_model(
    project: Stores, table: pd.DataFrame, tmp_path: Path
) -> None:
    ref = _register(project, table)
    parquet = tmp_path / "in.parquet"
    table.to_parquet(parquet, index=False)
    csv = tmp_path / "in.csv"
    table.to_csv(csv, index=False)
    seen: list[int] = []
    totals: list[int] = []
    result = predict_batch(
        "churn@latest",
        parquet,
        tmp_path / "p.parquet",
        chunk_size=CHUNK,
        progress=seen.append,
        on_total=totals.append,
    )
    assert result.rows == len(table) and result.model_version == "churn/1"
    assert seen == [100, 100, 100, 100, 100, 69] and totals == [len(table)]
    _check_output(result.output, table, ref)
    _check_output(
        predict_batch(ref, str(csv), tmp_path / "c.parquet", chunk_size=CHUNK).output, table, ref
    )
    from_data = predict_batch(ref, "credit@1", tmp_path / "d.parquet", chunk_size=CHUNK)
    _check_output(from_data.output, table, ref)
    assert not list(tmp_path.glob(".*.partial"))  # temporary files are renamed

    assert from_data.run_id is not None
    run = ll.tracking.get_run(from_data.run_id)
    assert run.experiment == "batch-predict" and run.status == RunStatus.FINISHED
    assert run.params["model"] == "churn/1" and run.params["chunk_size"] == "100"
    assert run.metrics["rows"] == len(table) and run.metrics["rows_per_second"] > 0
    links = project.metadata.runs.list_links(from_data.run_id, Direction.INPUT)
    kinds = {(link.kind, link.name) for link in links}
    assert (LinkKind.DATASET_VERSION, "credit") in kinds
    assert (LinkKind.MODEL_VERSION, "churn/1") in kinds
    model_link = next(link for link in links if link.kind == LinkKind.MODEL_VERSION)
    assert model_link.ref == ll.registry.resolve(ref).id


def test_inside_an_active_run_the_batch_links_to_it(
    project: Stores, table: pd.DataFrame, tmp_path: Path
) -> None:
    ref = _register(project, table)
    with ll.start_run(experiment="scoring") as run:
        result = predict_batch(ref, "credit@1", tmp_path / "out.parquet", chunk_size=CHUNK)
    assert result.run_id == run.id
    kinds = {link.kind for link in project.metadata.runs.list_links(run.id, Direction.INPUT)}
    assert {LinkKind.DATASET_VERSION, LinkKind.MODEL_VERSION} <= kinds


def test_bad_inputs_raise_clear_errors_and_leave_no_output(
    project: Stores, table: pd.DataFrame, tmp_path: Path
) -> None:
    ref = _register(project, table)
    good = tmp_path / "in.parquet"
    table.to_parquet(good, index=False)
    out = tmp_path / "out" / "preds.parquet"
    with pytest.raises(NotFound):
        predict_batch("nope@latest", good, out)
    with pytest.raises(NotFound, match=r"missing\.parquet"):
        predict_batch(ref, tmp_path / "missing.parquet", out)
    with pytest.raises(NotFound):
        predict_batch(ref, "nodata@1", out)
    (tmp_path / "in.txt").write_text("x\n")
    with pytest.raises(InvalidInput, match=r"parquet or \.csv"):
        predict_batch(ref, tmp_path / "in.txt", out)
    with pytest.raises(InvalidInput, match="chunk_size"):
        predict_batch(ref, good, out, chunk_size=0)

    missing = tmp_path / "missing_column.csv"
    table.drop(columns=["worst_area"]).to_csv(missing, index=False)
    with pytest.raises(InvalidField, match="worst_area") as caught:
        predict_batch(ref, missing, out, chunk_size=CHUNK)
    assert caught.value.field == "worst_area"
    assert not out.exists() and list(out.parent.iterdir()) == []
    failed = ll.tracking.search_runs("batch-predict")
    assert [r.status for r in failed] == [RunStatus.FAILED]

    broken = table.copy()
    broken.loc[250, "mean_texture"] = np.nan  # null in Parquet; the column is not nullable
    bad_value = tmp_path / "bad_value.parquet"
    broken.to_parquet(bad_value, index=False)
    with pytest.raises(InvalidField, match="row 250: field 'mean_texture'") as row_error:
        predict_batch(ref, bad_value, out, chunk_size=CHUNK)
    assert row_error.value.row == 250
    assert not out.exists() and list(out.parent.iterdir()) == []

    predict_batch(ref, good, out, chunk_size=CHUNK)
    with pytest.raises(Conflict, match="already exists"):
        predict_batch(ref, good, out)
    assert predict_batch(ref, good, out, overwrite=True).rows == len(table)


def test_cli_predicts_and_reports_errors_on_one_line(
    project: Stores, table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(project, table)
    out = tmp_path / "preds.parquet"
    code = cli(
        [
            "predict",
            "churn@latest",
            "--input",
            "credit@1",
            "--output",
            str(out),
            "--chunk-size",
            "200",
            "--native",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{len(table):,}" in printed and "churn/1" in printed and "rows/s" in printed
    assert len(pd.read_parquet(out)) == len(table)

    code = cli(["predict", "churn@latest", "--input", "credit@1", "--output", str(out)])
    assert code != 0
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("Error:") and "already exists" in errors[0]
    code = cli(
        [
            "predict",
            "churn@latest",
            "--input",
            str(tmp_path / "no.csv"),
            "--output",
            str(tmp_path / "x.parquet"),
        ]
    )
    assert code != 0
    assert "no input file" in capsys.readouterr().err


def _read_any(path: Path) -> pd.DataFrame:
    """The output read with its format's own reader."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    if path.suffix.lower() == ".jsonl":
        import json

        lines = path.read_text(encoding="utf-8").splitlines()
        return pd.DataFrame([json.loads(line) for line in lines])
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".CSV"])
def test_output_format_follows_the_extension(
    project: Stores, table: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    ref = _register(project, table)
    good = tmp_path / "in.parquet"
    table.to_parquet(good, index=False)
    out = tmp_path / f"preds{suffix}"
    predict_batch(ref, good, out, chunk_size=CHUNK)
    head = out.read_bytes()[:4]
    assert (head == b"PAR1") == (suffix == ".parquet")  # a .csv is not Parquet inside
    got = _read_any(out)
    loaded = ll.models.load(ref)
    assert list(got["row_id"]) == list(range(len(table)))
    np.testing.assert_array_equal(got["prediction"], np.asarray(loaded.predict(table[FEATURES])))
    proba = np.asarray(loaded.predict_proba(table[FEATURES]))
    np.testing.assert_allclose(got[["proba_0", "proba_1"]].to_numpy(), proba, atol=1e-9)
    assert set(got["model_version"]) == {"churn/1"}


def test_keep_carries_the_id_column_in_input_order(
    project: Stores, table: pd.DataFrame, tmp_path: Path
) -> None:
    ref = _register(project, table)
    rng = np.random.default_rng(7)
    ids = [f"c-{n}" for n in rng.permutation(10_000)[: len(table)]]  # not sorted
    csv = tmp_path / "in.csv"
    table.assign(id=ids).to_csv(csv, index=False)
    out = tmp_path / "preds.csv"
    predict_batch(ref, csv, out, chunk_size=CHUNK, keep=["id", "mean_radius", "id"])
    got = pd.read_csv(out)
    assert list(got.columns[:3]) == ["row_id", "id", "mean_radius"]
    assert list(got["id"]) == ids
    np.testing.assert_allclose(got["mean_radius"], table["mean_radius"])

    parquet = tmp_path / "in.parquet"
    table.assign(id=ids).to_parquet(parquet, index=False)
    code = cli(
        [
            *["predict", ref, "--input", str(parquet), "--output", str(tmp_path / "p.jsonl")],
            *["--keep", "id", "--keep", "segment", "--chunk-size", str(CHUNK)],
        ]
    )
    assert code == 0
    got = _read_any(tmp_path / "p.jsonl")
    assert list(got["id"]) == ids and list(got["segment"]) == list(table["segment"])


def test_unknown_output_extension_is_refused_before_anything_is_written(
    project: Stores, table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _register(project, table)
    good = tmp_path / "in.parquet"
    table.to_parquet(good, index=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidInput, match=r"preds\.txt.*\.parquet, \.csv or \.jsonl"):
        predict_batch(ref, good, out / "preds.txt")
    capsys.readouterr()
    code = cli(["predict", ref, "--input", str(good), "--output", str(out / "preds.xlsx")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines()[0].startswith("Error:")
    assert "Traceback" not in captured.err and ".jsonl" in captured.err
    assert list(out.iterdir()) == []
    with pytest.raises(NotFound):  # no run either
        ll.tracking.search_runs("batch-predict")


def test_output_path_that_is_a_directory_is_refused(
    project: Stores, table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _register(project, table)
    good = tmp_path / "in.parquet"
    table.to_parquet(good, index=False)
    folder = tmp_path / "preds.parquet"  # a directory named like a file
    folder.mkdir()
    (folder / "kept.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(InvalidInput, match="is a directory"):
            predict_batch(ref, good, folder, overwrite=overwrite)
    capsys.readouterr()
    code = cli(["predict", ref, "--input", str(good), "--output", str(tmp_path), "--overwrite"])
    assert code == 2 and "is a directory" in capsys.readouterr().err
    assert (folder / "kept.txt").read_text() == "mine"


def test_unknown_keep_column_names_it_and_the_input_columns(
    project: Stores, table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _register(project, table)
    out = tmp_path / "out" / "preds.csv"
    for name in ("in.csv", "in.parquet"):
        path = tmp_path / name
        if name.endswith(".csv"):
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
        with pytest.raises(InvalidInput, match=r"no column 'idd' to keep.*mean_radius, ") as e:
            predict_batch(ref, path, out, keep=["idd"])
        assert "segment" in e.value.message
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(InvalidInput, match="'prediction'"):
        predict_batch(ref, tmp_path / "in.csv", out, keep=["prediction"])
    capsys.readouterr()
    code = cli(
        [
            *["predict", ref, "--input", str(tmp_path / "in.csv"), "--output", str(out)],
            *["--keep", "customer"],
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no column 'customer' to keep" in err and "Traceback" not in err
