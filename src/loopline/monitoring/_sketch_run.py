"""How `run` takes the sketch path (see _sketches for the statistics).

A window with more rows than the policy's `exact_max_rows` (counted from the index's
per-file row counts, before anything is read) takes the sketch path when some of its
files have sketches, no segments are asked for and no shadow version answers beside the
served one (segments and shadows need rows the sketches do not keep). Then:

- the files wholly inside the window with a usable sketch are merged per version; the
  others (the two edge hours, files without a sketch) are read exactly and fed to the
  same accumulators, which take the merged windows in (`apply`);
- the labelled rows are still joined exactly (realised performance needs them whole:
  DuckDB reads only the joined columns of the files);
- what needs a window's rows is left out, with the reason in the report: the
  multivariate figure (the PCA reconstruction error), the estimated performance (CBPE
  needs a sample of probability rows), the expectation suite on a sample of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.monitoring._categorical import CategoricalWindow
from loopline.monitoring._numeric import NumericWindow
from loopline.monitoring._sections import ALL, VersionWatch
from loopline.monitoring._sketches import (
    MergedColumn,
    SketchPlan,
    categorical_window,
    numeric_window,
    plan,
)

if TYPE_CHECKING:
    from datetime import datetime

    from loopline.monitoring._log_window import WindowShape
    from loopline.project import Stores
    from loopline.store.predictions import PredictionLogFile

METHOD_SKETCH = "sketch"
LEFT_OUT = {
    "multivariate": "needs the window's rows (PCA reconstruction error)",
    "estimated performance": "CBPE needs a sample of the window's probability rows",
    "expectation suite": "needs a sample of the window's inputs",
}


@dataclass
class SketchWindow:
    """A window on the sketch path: the plan and what the report says of it."""

    plan: SketchPlan

    def describe(self) -> dict[str, Any]:
        """The report's `sketch` entry: files merged, files read exactly, notes."""
        return {
            "sketched_files": len(self.plan.sketched),
            "exact_files": len(self.plan.exact),
            "sketched_rows": sum(rows for rows, _ in self.plan.merged.values()),
            "notes": list(self.plan.notes),
            "left_out": dict(LEFT_OUT),
        }


def choose(
    deployment: str,
    files: list[PredictionLogFile],
    since: datetime,
    until: datetime,
    *,
    max_rows: int,
    segments: tuple[str, ...],
    config: dict[str, Any],
    opened: Stores,
) -> tuple[SketchWindow | None, str | None]:
    """(the sketch window, None), or (None, why the exact path) when the window has at
    most `max_rows` rows, asks for segments, has a shadow, or no usable sketch."""
    rows = sum(entry.rows for entry in files)
    if rows <= max_rows:
        return None, None
    if segments:
        return None, "segments need the window's rows"
    if config.get("shadow"):
        return None, "a shadow version is compared on the window's rows"
    index = opened.metadata.predictions.sketches(deployment, since, until)
    if not index:
        return None, "no file of the window has sketches"
    found = plan(files, index, since, until, opened)
    if not found.sketched:
        return None, "; ".join(found.notes) or "no file lies wholly inside the window"
    return SketchWindow(found), None


def combined_shape(exact: WindowShape, sketch: SketchWindow) -> WindowShape:
    """The shape of the whole window: the exactly read files' plus the merged sketches'."""
    from loopline.monitoring._log_window import WindowShape

    versions = dict(exact.versions)
    inputs = dict(exact.inputs)
    has_probabilities = exact.has_probabilities
    prediction_type = exact.prediction_type
    for version, (rows, columns) in sketch.plan.merged.items():
        versions[version] = versions.get(version, 0) + rows
        for name, column in columns.items():
            if name.startswith("input:"):
                kind = "numeric" if column.kind == "numeric" else "text"
                inputs.setdefault(name.removeprefix("input:"), kind)
            elif name.startswith("probability#"):
                has_probabilities = True
            elif name == "prediction" and prediction_type is None:
                prediction_type = "numeric" if column.kind == "numeric" else "text"
    return WindowShape(
        rows=sum(versions.values()),
        versions=dict(sorted(versions.items())),
        inputs=inputs,
        has_probabilities=has_probabilities,
        prediction_type=prediction_type,
    )


def windows_for(
    watches: dict[str, VersionWatch], sketch: SketchWindow
) -> dict[str, dict[str, NumericWindow | CategoricalWindow]]:
    """Version -> monitored column (as the watch names it) -> the window built from the
    merged sketches. Raises InvalidInput when a sketched column cannot stand for the rows
    (numbers sketched where the monitor compares categories with more than 1,000 values,
    text where it expects numbers): the caller then reads the whole window exactly."""
    found: dict[str, dict[str, NumericWindow | CategoricalWindow]] = {}
    for version, watch in watches.items():
        rows_columns = sketch.plan.merged.get(version)
        if rows_columns is None:
            continue
        columns = rows_columns[1]
        classes = sum(1 for name in columns if name.startswith("probability#"))
        if watch.classes is None or classes != len(watch.classes):
            # lists of another length than the classes: the exact path feeds none either
            columns = {n: c for n, c in columns.items() if not n.startswith("probability#")}
        windows: dict[str, NumericWindow | CategoricalWindow] = {}
        monitors = {f"input:{name}": m for name, m in watch.inputs.items()}
        monitors.update(watch.outputs)
        for name, monitor in monitors.items():
            merged = columns.get(_sketch_name(name, watch))
            if merged is None:
                continue
            try:
                windows[name] = _window(monitor.kind, monitor.reference, merged)
            except InvalidInput as exc:
                raise InvalidInput(f"{version} {name}: {exc}") from exc
        found[version] = windows
    return found


def _sketch_name(name: str, watch: VersionWatch) -> str:
    if name.startswith("probability[") and watch.classes is not None:
        label = name[len("probability[") : -1]
        labels = [str(c) for c in watch.classes]
        return f"probability#{labels.index(label)}" if label in labels else name
    return name


def _window(kind: str, reference: Any, merged: MergedColumn) -> NumericWindow | CategoricalWindow:
    if kind == "numeric":
        if merged.kind == "categorical":
            raise InvalidInput("text was sketched where numbers are expected")
        return numeric_window(reference, merged)
    return categorical_window(reference, merged)


def apply(watches: dict[str, VersionWatch], sketch: SketchWindow, windows: Any) -> None:
    """Merge the sketched windows into the watches (after the exact files were fed), and
    drop what only the exactly read files fed (a partial figure would mislead)."""
    for version, watch in watches.items():
        rows_columns = sketch.plan.merged.get(version)
        if rows_columns is not None:
            watch.rows[ALL] = watch.rows.get(ALL, 0) + rows_columns[0]
            mine = windows.get(version, {})
            for name, monitor in watch.inputs.items():
                if f"input:{name}" in mine:
                    monitor.window(ALL).merge(mine[f"input:{name}"])
            for name, monitor in watch.outputs.items():
                if name in mine:
                    monitor.window(ALL).merge(mine[name])
        watch.pca_windows.clear()
        watch.probability_parts.clear()
        watch.probability_rows = 0
        watch.input_sample.clear()
