"""`evaluate`: run a registered model over a dataset version and keep the report.

The report (JSON) and its HTML rendering are blobs in the artifact store, indexed by a
row linked to the model version, so gates, model cards and `models show` read them
back without evaluating again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.config import current_user
from loopline.errors import InvalidInput
from loopline.models import load_version
from loopline.project import Stores, stores
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import EvaluationRecord

if TYPE_CHECKING:
    import pandas as pd

    from loopline.packaging import LoadedModel


@dataclass(frozen=True)
class Evaluation:
    """A stored evaluation: its record and the full report."""

    record: EvaluationRecord
    report: dict[str, Any]
    version: ModelVersion
    # the stores it was read from: its HTML is read there later, whichever client is current
    opened: Stores | None = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.report.get("metrics") or {})

    @property
    def slices(self) -> dict[str, Any]:
        return dict(self.report.get("slices") or {})

    def html(self) -> str:
        """The self-contained HTML report."""
        return (self.opened or stores()).artifacts.get_bytes(self.record.html_hash).decode()

    def save_html(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.html(), encoding="utf-8")
        return target


def evaluate(
    model: str | ModelRef | ModelVersion,
    data: str | pd.DataFrame,
    *,
    target: str,
    slices: Sequence[str] = (),
    sensitive: Sequence[str] = (),
    task: str | None = None,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
    opened: Stores | None = None,
) -> Evaluation:
    """Evaluate a model version on a dataset version (or a DataFrame) and store the report.

    Example:
        report = ll.evaluate("churn/4", "credit@3", target="y",
                             slices=["segment", "age > 60"], sensitive=["sex"])
        report.metrics["roc_auc"], report.slices["age > 60"]
    """
    from loopline.evaluation.compute import evaluate_predictor
    from loopline.evaluation.report import render_html

    opened = opened or stores()
    version = resolve(model, opened=opened)
    frame, data_ref, dataset_version_id = _frame(data)
    loaded = load_version(version, trusted=trusted, allow_pickle=allow_pickle, opened=opened)
    report = evaluate_predictor(
        SignatureColumns(loaded),
        frame,
        target=target,
        slices=list(slices),
        sensitive=list(sensitive),
        task=task,
        model_size_bytes=version.size_bytes,
    )
    report["model"] = {"ref": version.ref, "id": version.id, "flavor": version.flavor}
    report["data"] = {"ref": data_ref, "dataset_version_id": dataset_version_id}
    html = render_html(report, title=f"Evaluation of {version.ref} on {data_ref}")
    payload = json.dumps(report, allow_nan=False, sort_keys=True).encode()
    record = opened.metadata.reviews.add_evaluation(
        version.id,
        data_ref=data_ref,
        dataset_version_id=dataset_version_id,
        target=target,
        config_hash=config_hash(target, slices, sensitive, task),
        report_hash=opened.artifacts.put_bytes(payload).hash,
        html_hash=opened.artifacts.put_bytes(html.encode()).hash,
        metrics=dict(report.get("metrics") or {}),
        created_by=current_user(),
    )
    return Evaluation(record, report, version, opened)


class SignatureColumns:
    """The loaded model, fed only its signature's columns: evaluation frames also hold
    the target, slice and sensitive columns, which are not features."""

    def __init__(self, model: LoadedModel) -> None:
        self._model = model
        self._names = [column.name for column in model.signature.inputs]

    @property
    def has_proba(self) -> bool:
        return self._model.has_proba

    @property
    def input_names(self) -> list[str]:
        return list(self._names)

    @property
    def classes(self) -> list[Any] | None:
        return self._model.classes

    def predict(self, data: pd.DataFrame) -> Any:
        return self._model.predict(self._features(data))

    def predict_proba(self, data: pd.DataFrame) -> Any:
        return self._model.predict_proba(self._features(data))

    def _features(self, data: pd.DataFrame) -> pd.DataFrame:
        if not self._names or list(data.columns) == self._names:
            return data
        if all(name in data.columns for name in self._names):
            return data[self._names]
        return data  # the model's own check names what is missing


def latest_evaluation(
    model: str | ModelRef | ModelVersion,
    *,
    dataset_version_id: str | None = None,
    config: str | None = None,
    opened: Stores | None = None,
) -> Evaluation | None:
    """The newest stored evaluation of a version (optionally on one dataset version and
    with one configuration), or None."""
    opened = opened or stores()
    version = resolve(model, opened=opened)
    for record in opened.metadata.reviews.list_evaluations(version.id):
        if dataset_version_id is not None and record.dataset_version_id != dataset_version_id:
            continue
        if config is not None and record.config_hash != config:
            continue
        report = json.loads(opened.artifacts.get_bytes(record.report_hash))
        return Evaluation(record, report, version, opened)
    return None


def list_evaluations(model: str | ModelRef | ModelVersion) -> list[EvaluationRecord]:
    """A version's stored evaluations, newest first."""
    opened = stores()
    return opened.metadata.reviews.list_evaluations(resolve(model, opened=opened).id)


def config_hash(
    target: str, slices: Sequence[str], sensitive: Sequence[str], task: str | None
) -> str:
    """Names an evaluation's configuration, so equal evaluations can be reused."""
    text = json.dumps([target, list(slices), list(sensitive), task])
    return hashlib.sha256(text.encode()).hexdigest()


def _frame(data: Any) -> tuple[pd.DataFrame, str, str | None]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(data).to_numpy()
        digest = hashlib.sha256(hashed.tobytes()).hexdigest()
        return data, f"dataframe:{digest[:16]}", None
    if isinstance(data, str):
        from loopline import data as datasets

        version = datasets.resolve(data)
        return datasets.load(version.ref), version.ref, version.id
    raise InvalidInput(
        f"data must be a dataset reference like 'credit@3' or a pandas DataFrame, "
        f"got {type(data).__name__}"
    )
