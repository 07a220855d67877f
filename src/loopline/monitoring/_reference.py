"""The reference a window is compared with: by default the dataset version that the served
model version's run read for training (its lineage), or a dataset version named as
NAME@V. The model's outputs on the reference (predictions, class probabilities) are what
the window's outputs are compared with: the model is loaded once and run on (a sample
of) the reference's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.project import Stores
    from loopline.registry import ModelVersion

MAX_OUTPUT_ROWS = 200_000  # rows of the reference the model is run on for its outputs


@dataclass(frozen=True)
class Reference:
    """A reference table (model inputs as columns) and the model's outputs on it."""

    ref: str  # the dataset version's reference, e.g. "credit@3"
    table: pa.Table
    prediction: np.ndarray | None = None
    probabilities: np.ndarray | None = None  # (rows, classes), of the same rows as `prediction`
    labels: np.ndarray | None = None  # the target's values on those rows, when known
    note: str | None = None  # why outputs are missing, when they are


def input_names(version: ModelVersion) -> list[str]:
    return [str(c.get("name")) for c in version.signature.get("inputs") or []]


def classes_of(version: ModelVersion) -> list[Any] | None:
    classes = version.manifest.get("classes")
    return list(classes) if isinstance(classes, list) and classes else None


def training_reference(version: ModelVersion, opened: Stores) -> str:
    """The dataset version the version's run read that holds every model input (the
    largest, when several do). Raises InvalidInput when there is none."""
    from loopline.store import Direction, LinkKind

    hint = "name a reference: --reference NAME@VERSION (reference='NAME@VERSION')"
    if version.run_id is None:
        raise InvalidInput(f"{version.ref} has no run, so its training data is unknown", hint=hint)
    wanted = set(input_names(version))
    candidates = []
    for link in opened.metadata.runs.list_links(
        version.run_id, Direction.INPUT, LinkKind.DATASET_VERSION
    ):
        try:
            found = opened.metadata.datasets.get_version_by_id(link.ref)
        except NotFound:
            continue
        columns = _columns_of(found.ref, opened)
        if wanted <= columns:
            candidates.append((found.row_count or 0, found.ref))
    if not candidates:
        raise InvalidInput(
            f"the run of {version.ref} read no dataset version with all of its inputs", hint=hint
        )
    return max(candidates)[1]


def _columns_of(ref: str, opened: Stores) -> set[str]:
    try:
        return set(_load(ref).column_names)
    except LooplineError:
        return set()


def _load(ref: str) -> pa.Table:
    from loopline.data import load

    return load(ref, as_="arrow")


def load_reference(
    spec: str,
    version: ModelVersion,
    opened: Stores,
    *,
    outputs: bool = True,
    target: str | None = None,
) -> Reference:
    """The reference named by `spec` ("training" or NAME@V) for `version`, with the
    version's outputs on it (unless `outputs` is False) and the values of the `target`
    column on the same rows (when the reference has it)."""
    ref = training_reference(version, opened) if spec == "training" else spec
    table = _load(ref)
    names = input_names(version)
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise InvalidInput(
            f"reference {ref} lacks the model's inputs {missing[:5]}"
            + (" ..." if len(missing) > 5 else ""),
            hint="name a reference with the columns the model takes",
        )
    inputs = table.select(names) if names else table
    if not outputs:
        return Reference(ref, inputs)
    rows = _sample_rows(inputs.num_rows)
    try:
        prediction, probabilities = _outputs(
            version, inputs if rows is None else inputs.take(rows), opened
        )
    except LooplineError as exc:
        return Reference(ref, inputs, note=f"the model's outputs on {ref} are unknown: {exc}")
    labels = None
    if target is not None and target in table.column_names:
        column = table.column(target)
        labels = (column if rows is None else column.take(rows)).to_numpy(zero_copy_only=False)
    return Reference(ref, inputs, prediction, probabilities, labels)


def _sample_rows(count: int) -> np.ndarray | None:
    import numpy as np

    if count <= MAX_OUTPUT_ROWS:
        return None
    return np.sort(np.random.default_rng(0).choice(count, MAX_OUTPUT_ROWS, replace=False))


def _outputs(
    version: ModelVersion, inputs: pa.Table, opened: Stores
) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    from loopline.models.loading import load_version

    model = load_version(version, opened=opened)
    frame = inputs.to_pandas()
    prediction = np.asarray(model.predict(frame))
    probabilities = np.asarray(model.predict_proba(frame), dtype=float) if model.has_proba else None
    return prediction, probabilities
