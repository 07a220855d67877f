"""Export a registered version to ONNX: convert, check parity on reference data, and
register the result as a new version (flavor onnx) linked to its source."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, ParityFailed
from loopline.models._examples import example_rows
from loopline.models._packages import store_package
from loopline.models.loading import load_version
from loopline.models.logging import register_package
from loopline.packaging import save_model
from loopline.project import Stores, stores
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import Direction, LinkKind

if TYPE_CHECKING:
    import pandas as pd

    from loopline.packaging import LoadedModel
    from loopline.packaging.export import ParityReport

FORMATS = ("onnx",)
QUANTIZE = ("dynamic",)


@dataclass(frozen=True)
class ExportResult:
    source: ModelVersion
    version: ModelVersion
    parity: ParityReport


def export(
    ref: str | ModelRef | ModelVersion,
    *,
    format: str = "onnx",
    quantize: str | None = None,
    data: str | pd.DataFrame | None = None,
    tolerance: float = 1e-4,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
) -> ExportResult:
    """Convert a version to ONNX, check parity, register the ONNX model as a new version.

    Reference data for the parity check: `data` (a dataset version or a DataFrame), else
    the first tabular dataset version the source's run read, else the input example kept
    when the source was logged. The source loads as `load` loads it (`trusted` adds to
    the types recorded with it; `allow_pickle`).

    Raises:
        InvalidInput: unknown format, a flavor with no converter, no reference data.
        ParityFailed: predictions differ beyond `tolerance` (nothing is registered).

    Example:
        result = ll.models.export("churn/4", quantize="dynamic")
        result.version.ref, result.parity.max_abs_diff_proba
    """
    from loopline.packaging.export import OnnxColumn, check_parity, convert_to_onnx
    from loopline.packaging.export import quantize_dynamic as quantize_model

    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}; supported: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise InvalidInput(f"unknown quantization {quantize!r}; supported: dynamic")
    if not tolerance >= 0 or tolerance == float("inf"):
        raise InvalidInput(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    opened = stores()
    source = resolve(ref, opened=opened)
    loaded = load_version(source, trusted=trusted, allow_pickle=allow_pickle, opened=opened)
    columns = [OnnxColumn(c.name, c.type) for c in loaded.signature.inputs]
    if not columns:
        raise InvalidInput(f"{source.ref} has no input signature; log it with input_example=")
    onnx_bytes = convert_to_onnx(loaded.raw, source.flavor, columns, classes=loaded.classes)
    if quantize == "dynamic":
        onnx_bytes = quantize_model(onnx_bytes)
    frame = _reference_frame(source, data, [c.name for c in columns], opened)
    parity = check_parity(
        loaded.predict,
        loaded.predict_proba if loaded.has_proba else None,
        onnx_bytes,
        frame,
        columns,
        classes=loaded.classes,
        tolerance=tolerance,
        original_size=source.size_bytes,
    )
    if not parity.passed:
        raise ParityFailed(
            f"the ONNX form of {source.ref} differs from the original: max |Δ| predictions "
            f"{parity.max_abs_diff_prediction:.3g}, probabilities "
            f"{parity.max_abs_diff_proba if parity.max_abs_diff_proba is not None else '-'} "
            f"(tolerance {tolerance:g})",
            hint="raise --tolerance if the difference is acceptable, or skip --quantize",
        )
    version = _register(source, loaded, onnx_bytes, parity, quantize, opened)
    return ExportResult(source, version, parity)


def _register(
    source: ModelVersion,
    loaded: LoadedModel,
    onnx_bytes: bytes,
    parity: ParityReport,
    quantize: str | None,
    opened: Stores,
) -> ModelVersion:
    with tempfile.TemporaryDirectory(prefix="loopline-onnx-") as scratch:
        folder = Path(scratch) / "package"
        manifest = save_model(
            onnx_bytes,
            folder,
            flavor="onnx",
            signature=loaded.signature,
            metadata={"classes": loaded.classes, "source": source.ref, "quantize": quantize},
        )
        package = store_package(folder, opened)
    return register_package(
        source.model,
        package.hash,
        manifest.to_dict(),
        size=package.size,
        opened=opened,
        run_id=source.run_id,
        source_version_id=source.id,
        extra={
            "export": {
                "format": "onnx",
                "quantize": quantize,
                "source": source.ref,
                "parity": parity.to_dict(),
            }
        },
        description=f"ONNX export of {source.ref}"
        + (f" ({quantize} quantized)" if quantize else ""),
    )


def _reference_frame(
    source: ModelVersion, data: Any, columns: list[str], opened: Stores
) -> pd.DataFrame:
    import pandas as pd

    from loopline import data as datasets

    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, str):
        frame = datasets.load(data)
    elif data is None:
        frame = _training_data(source, opened)
    else:
        raise InvalidInput(f"data must be a dataset reference or a DataFrame, got {data!r}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the reference data lacks the model's columns {missing}")
    return frame[columns]


def _training_data(source: ModelVersion, opened: Stores) -> pd.DataFrame:
    """The first tabular dataset the source's run read, else its kept input example."""
    from loopline import data as datasets

    if source.run_id is not None:
        links = opened.metadata.runs.list_links(
            source.run_id, Direction.INPUT, LinkKind.DATASET_VERSION
        )
        for link in links:
            version = opened.metadata.datasets.get_version_by_id(link.ref)
            if version.row_count is not None:
                return datasets.load(version.ref)
    example = example_rows(source)
    if example is not None:
        return example
    raise InvalidInput(
        f"no reference data for the parity check of {source.ref}: its run recorded no "
        "tabular dataset and it keeps no input example",
        hint="pass data='NAME@VERSION' (or --data)",
    )
