"""The model registry through the public API, on SQLite and PostgreSQL: logging models
in runs, references, safe loading, aliases, status and the audit log; and once more
through the platform server (`through_the_server_too`, fixtures/remote.py)."""

from __future__ import annotations

import json
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from fixtures.remote import direct_only, through_the_server_too
from loopline.errors import (
    Conflict,
    CorruptedData,
    InvalidInput,
    NotFound,
    SignatureMismatch,
    UnsafeModel,
)
from loopline.project import Stores
from loopline.store import Direction, LinkKind, ModelStatus

pytestmark = through_the_server_too


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features = features.iloc[:, :6]
    features.columns = [c.replace(" ", "_") for c in features.columns]
    return features.assign(y=target)


@pytest.fixture(scope="module")
def classifier(frame: pd.DataFrame) -> object:
    features = frame.drop(columns="y")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(
        features, frame["y"]
    )


class Doubler:
    """A python-function model: anything with predict."""

    def predict(self, data: pd.DataFrame) -> object:
        return data.iloc[:, 0].to_numpy() * 2


def _log(model: object, frame: pd.DataFrame, name: str = "churn") -> ll.registry.ModelVersion:
    features = frame.drop(columns="y")
    with ll.start_run(experiment="churn"):
        return ll.models.log_model(model, name=name, input_example=features.head(5))


def test_log_model_registers_a_version_linked_to_its_run(
    project: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    features = frame.drop(columns="y")
    with ll.start_run(experiment="churn") as run:
        version = ll.models.log_model(classifier, name="churn", input_example=features.head(5))
    assert (version.ref, version.status, version.flavor) == (
        "churn/1",
        ModelStatus.CANDIDATE,
        "sklearn",
    )
    assert version.run_id == run.id
    assert [c["name"] for c in version.signature["inputs"]] == list(features.columns)
    outputs = project.metadata.runs.list_links(run.id, Direction.OUTPUT, LinkKind.MODEL_VERSION)
    assert [(link.name, link.ref) for link in outputs] == [("churn/1", version.id)]
    artifacts = ll.list_artifacts(run.id, "model")
    assert "model/loopline-model.yaml" in {link.name for link in artifacts}
    second = _log(classifier, frame)
    assert second.ref == "churn/2"
    assert [v.version for v in ll.registry.list_versions("churn")] == [2, 1]


def test_every_reference_form_loads_the_same_model(
    project: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    version = _log(classifier, frame)
    ll.registry.set_alias(version, "champion")
    features = frame.drop(columns="y")
    expected = classifier.predict(features)  # type: ignore[attr-defined]
    refs = [
        "churn",
        "churn/1",
        "churn@latest",
        "churn@champion",
        "models:/churn/1",
        "models:/churn@champion",
        f"runs:/{version.run_id}/model",
        f"runs:/{version.run_id[:8]}/model",  # type: ignore[index]
    ]
    for ref in refs:
        model = ll.models.load(ref)
        assert (model.predict(features) == expected).all(), ref


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("nope", NotFound),
        ("churn/9", NotFound),
        ("churn@nobody", NotFound),
        ("churn/0", InvalidInput),
        ("churn/x", InvalidInput),
        ("../etc/passwd", InvalidInput),
        ("churn@a@b", InvalidInput),
        ("", InvalidInput),
        ("runs:/ffffffff/model", NotFound),
        ("runs:/x/../../etc", InvalidInput),
    ],
)
def test_unknown_or_malformed_references_are_clear_errors(
    project: Stores, frame: pd.DataFrame, classifier: object, ref: str, error: type[Exception]
) -> None:
    _log(classifier, frame)
    with pytest.raises(error):
        ll.models.load(ref)


def test_predict_enforces_the_signature(
    project: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    _log(classifier, frame)
    model = ll.models.load("churn/1")
    features = frame.drop(columns="y").head(3)
    with pytest.raises(SignatureMismatch, match="mean_radius"):
        model.predict(features.drop(columns="mean_radius"))
    with pytest.raises(SignatureMismatch, match="mean_texture"):
        model.predict(features.assign(mean_texture=["a", "b", "c"]))


def test_a_tampered_blob_is_refused(
    project: Stores, holding_stores: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    version = _log(classifier, frame)
    package = json.loads(project.artifacts.get_bytes(version.package_hash))
    blob = package["files"]["model.skops"]["id"]
    stored = Path(holding_stores.artifacts.uri) / "blobs" / blob[:2] / blob[2:]
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    with pytest.raises(CorruptedData):
        ll.models.load("churn/1")


def test_a_tampered_cached_file_is_replaced_from_the_verified_store(
    project: Stores, frame: pd.DataFrame, classifier: object, caplog: pytest.LogCaptureFixture
) -> None:
    version = _log(classifier, frame)
    ll.models.load("churn/1")  # materializes the cache
    cached = project.settings.state_dir / "cache" / "models" / version.package_hash
    model_file = cached / "model.skops"
    raw = bytearray(model_file.read_bytes())
    raw[100] ^= 0xFF
    model_file.write_bytes(bytes(raw))
    with caplog.at_level("WARNING"):
        model = ll.models.load("churn/1")
    assert "damaged" in caplog.text
    assert model_file.read_bytes() != bytes(raw)
    features = frame.drop(columns="y")
    assert (model.predict(features) == classifier.predict(features)).all()  # type: ignore[attr-defined]
    # an edited manifest in the cache (hashes rewritten to match) is also caught
    manifest = cached / "loopline-model.yaml"
    manifest.write_text(manifest.read_text() + "\n# edited\n")
    ll.models.load("churn/1")
    assert "# edited" not in manifest.read_text()


def test_pickled_models_need_allow_pickle(project: Stores, frame: pd.DataFrame) -> None:
    _log(Doubler(), frame, name="doubler")
    with pytest.raises(UnsafeModel):
        ll.models.load("doubler/1")
    model = ll.models.load("doubler/1", allow_pickle=True)
    features = frame.drop(columns="y").head(4)
    assert list(model.predict(features)) == list(features.iloc[:, 0] * 2)


def test_status_moves_forward_and_archived_is_final(
    project: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    version = _log(classifier, frame)
    assert ll.registry.set_status(version, "staging").status == ModelStatus.STAGING
    with pytest.raises(Conflict, match="cannot move"):
        ll.registry.set_status(version, "candidate")
    ll.registry.set_alias(version, "champion")
    archived = ll.registry.archive(version, reason="superseded")
    assert archived.status == ModelStatus.ARCHIVED
    assert ll.registry.get_model("churn").aliases == {}  # archiving removed the alias
    with pytest.raises(Conflict, match="archived"):
        ll.registry.set_alias(version, "champion")
    with pytest.raises(Conflict):
        ll.promotion.promote(version, to="production", reason="no")
    with pytest.raises(InvalidInput):
        ll.registry.set_status(version, "shipped")


def test_concurrent_alias_moves_leave_one_champion_and_every_event(
    project: Stores, frame: pd.DataFrame, classifier: object
) -> None:
    versions = [_log(classifier, frame) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(versions))

    def move(version: ll.registry.ModelVersion) -> None:
        try:
            start.wait()
            for _ in range(5):
                ll.registry.set_alias(version, "champion", reason=f"to {version.version}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    champion = ll.registry.get_model("churn").aliases["champion"]
    assert champion in (1, 2)
    events = ll.registry.audit_log(object_id="churn@champion", limit=100)
    assert len(events) == 10
    # each event's "before" is the state the previous event left: the moves serialized
    chain = list(reversed(events))
    assert chain[0].before is None
    for earlier, later in pairwise(chain):
        assert later.before == earlier.after
    assert chain[-1].after == {"version": champion}


def test_audit_log_records_actor_reason_and_states(
    project: Stores, frame: pd.DataFrame, classifier: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_USER", "ana")
    version = _log(classifier, frame)
    ll.registry.set_alias(version, "challenger", reason="try it")
    ll.registry.describe(version, description="first", tags={"intended_use": "churn scoring"})
    events = ll.registry.audit_log(model="churn")
    actions = [e.action for e in events]
    assert actions == ["model_version.update", "alias.set", "model_version.create", "model.create"]
    assert all(e.actor == "ana" for e in events)
    assert events[1].reason == "try it" and events[1].after == {"version": 1}
    assert ll.registry.resolve("churn/1").tags == {"intended_use": "churn scoring"}


def test_bad_names_and_inputs_are_refused(
    project: Stores, frame: pd.DataFrame, classifier: object, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput):
        ll.models.log_model(classifier, name="../evil")
    with pytest.raises(InvalidInput):
        ll.models.log_model(classifier, name="a/b")
    with pytest.raises(InvalidInput):
        ll.models.log_model(classifier, name="ok", artifact_path="../../x")
    with pytest.raises(InvalidInput):
        ll.models.log_model(object(), name="ok")
    version = _log(classifier, frame)
    for alias in ("latest", "1abc", "a/b", "a b", ""):
        with pytest.raises(InvalidInput):
            ll.registry.set_alias(version, alias)
    with pytest.raises(InvalidInput):
        ll.registry.describe(version, tags={"k": 1})  # type: ignore[dict-item]


@direct_only("the client's artifact store: through a server, blobs are the server's")
def test_models_live_on_an_s3_artifact_store(
    project: Stores,
    frame: pd.DataFrame,
    classifier: object,
    s3_uri: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopline.project import configure

    monkeypatch.setenv("LOOPLINE_S3_ENDPOINT_URL", s3_uri.endpoint_url)
    opened = configure(project=project.settings.root, artifact_uri=s3_uri.uri)
    assert opened.artifacts.uri.startswith("s3://")
    version = _log(classifier, frame)
    assert opened.artifacts.exists(version.package_hash)
    model = ll.models.load(version.ref)
    features = frame.drop(columns="y")
    assert (model.predict(features) == classifier.predict(features)).all()  # type: ignore[attr-defined]


def test_a_lightgbm_model_with_string_labels_exports_to_onnx_with_its_labels(
    project: Stores, frame: pd.DataFrame
) -> None:
    import lightgbm

    labelled = frame.assign(y=np.where(frame["y"] == 1, "benign", "malignant"))
    features = labelled.drop(columns="y")
    booster = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(features, labelled["y"])
    source = _log(booster, labelled, name="lgbm")
    exported = ll.models.export(source, data=features)
    assert exported.parity.passed and exported.version.flavor == "onnx"
    onnx = ll.models.load(exported.version.ref)
    assert list(onnx.predict(features)) == list(booster.predict(features))
    assert set(onnx.predict(features)) <= {"benign", "malignant"}
