"""Export trained models to ONNX, quantize them, and check that they still agree.

Pure functions over bytes and DataFrames; nothing here touches the store.

Input convention (see :mod:`loopline.packaging._convert`): an all-numeric signature gives
one float32 input named ``"input"`` of shape ``[None, n_columns]`` in column order; a
signature with string columns gives one ``[None, 1]`` input per column, named as the
column (string tensors for strings, float32 otherwise). :func:`onnx_predict` builds its
feeds from the graph's declared inputs, so it also runs graphs that follow neither.

Classifiers are exported without ZipMap: the graph's outputs are a label tensor and an
``(n, n_classes)`` probability tensor. The classes, and the labels the graph emits for
them (xgboost emits indices 0..k-1), are kept in ``metadata_props`` under
``"loopline.classes"`` and ``"loopline.graph_labels"`` (JSON lists, same order).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, SignatureMismatch
from loopline.packaging import _convert

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from pandas import DataFrame, Series

__all__ = [
    "OnnxColumn",
    "ParityReport",
    "check_parity",
    "convert_to_onnx",
    "onnx_predict",
    "onnx_session",
    "quantize_dynamic",
]

MAX_PARITY_ROWS = 10_000
MAX_BATCH_ROWS = 1_000
ONE_ROW_REPEATS = 200
BATCH_REPEATS = 20
# Each latency measurement stops after this many seconds (but after at least 5 calls),
# so a slow model (a 16 ms forest) does not turn a parity check into minutes.
LATENCY_BUDGET_S = 1.0
QUANTIZE_DEFAULT_OPSET = 21

_NUMPY_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


@dataclass(frozen=True)
class OnnxColumn:
    """One model input column, in signature order, with loopline's signature type."""

    name: str
    type: str  # "double" | "float" | "long" | "integer" | "boolean" | "string"


@dataclass(frozen=True)
class ParityReport:
    """How closely an ONNX model reproduces the original, and how fast each one is.

    For classifiers `max_abs_diff_prediction` is 0.0 when every label agrees and 1.0
    otherwise; `passed` then requires the probabilities within `tolerance` and allows a
    label to differ only on rows where the original's two highest probabilities are
    closer than `tolerance` (a near tie that float32 rounding may flip).
    """

    rows: int
    max_abs_diff_prediction: float
    max_abs_diff_proba: float | None
    label_agreement: float | None
    tolerance: float
    passed: bool
    original_bytes: int
    onnx_bytes: int
    original_p50_ms_one_row: float
    onnx_p50_ms_one_row: float
    original_p50_ms_batch: float
    onnx_p50_ms_batch: float
    batch_rows: int

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict (a NaN-vs-number difference is `inf`)."""
        return asdict(self)


def convert_to_onnx(
    model: Any,
    flavor: str,
    columns: Sequence[OnnxColumn],
    *,
    classes: Sequence[Any] | None = None,
    target_opset: int | None = None,
) -> bytes:
    """Convert a fitted sklearn, xgboost or lightgbm model to serialized ONNX.

    `classes` are the labels the caller's predict returns, in probability-column order
    (default: the estimator's `classes_`). Raises InvalidInput for another flavor or
    a model the converter cannot handle, MissingExtra without the 'onnx' extra.
    """
    if flavor not in _convert.FLAVORS:
        raise InvalidInput(
            f"cannot export flavor '{flavor}' to ONNX: only sklearn, xgboost and lightgbm "
            "models can be converted"
        )
    _convert.validate_columns(columns)
    _convert.require_onnx()
    onnx_model = _convert.convert(model, flavor, columns, target_opset)
    if len(onnx_model.graph.output) >= 2:
        labels = _convert.graph_labels(model)
        wanted = labels if classes is None else [_convert.to_json_value(c) for c in classes]
        if labels is None and wanted is not None:
            labels = list(range(len(wanted)))
        if wanted is not None and labels is not None and len(wanted) != len(labels):
            raise InvalidInput(f"{len(wanted)} classes were given but the model has {len(labels)}")
        _convert.set_metadata(onnx_model, wanted, labels)
    return bytes(onnx_model.SerializeToString())


def quantize_dynamic(onnx_bytes: bytes) -> bytes:
    """Quantize weights to int8 (onnxruntime dynamic quantization); metadata is kept.

    Only weight-bearing operators (MatMul, Gemm, ...) change; the ONNX-ML operators that
    sklearn's linear models and all tree ensembles become come back unchanged.
    """
    _convert.require_onnx("onnx", "onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize

    original = _load_model(onnx_bytes)
    prepared = onnx.ModelProto()
    prepared.CopyFrom(original)
    if not any(opset.domain in ("", "ai.onnx") for opset in prepared.opset_import):
        # The quantizer needs a default-domain opset even when the graph uses only ONNX-ML.
        prepared.opset_import.append(onnx.helper.make_opsetid("", QUANTIZE_DEFAULT_OPSET))
    with tempfile.TemporaryDirectory(prefix="loopline-quantize-") as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(prepared.SerializeToString())
        no_nagging = _QuantizerNagFilter()
        logging.getLogger().addFilter(no_nagging)
        try:
            ort_quantize(
                source,
                target,
                weight_type=QuantType.QInt8,
                # ONNX-ML outputs defeat shape inference; their tensors are float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        except Exception as exc:
            raise InvalidInput(
                f"cannot quantize this ONNX model: {_convert.one_line(exc)}"
            ) from exc
        finally:
            logging.getLogger().removeFilter(no_nagging)
        quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    return bytes(quantized.SerializeToString())


class _QuantizerNagFilter(logging.Filter):
    """Drops onnxruntime's root-logger advice to pre-process first: its pre-processing
    (symbolic shape inference) fails on ONNX-ML graphs, so we deliberately skip it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            "onnxruntime" in record.pathname and str(record.msg).startswith("Please consider")
        )


def onnx_session(onnx_bytes: bytes) -> Any:
    """An onnxruntime InferenceSession on the CPU for these bytes.

    Raises InvalidInput for a model with external data, which onnxruntime would read
    from the working directory (see loopline.packaging._onnx).
    """
    _convert.require_onnx("onnx", "onnxruntime")
    import onnx
    import onnxruntime

    try:
        _refuse_external_data(onnx.load_from_string(onnx_bytes))
        return onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"onnxruntime cannot load this model: {_convert.one_line(exc)}") from exc


def onnx_predict(
    session: Any,
    data: DataFrame,
    columns: Sequence[OnnxColumn],
    classes: Sequence[Any] | None = None,
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Run the ONNX model on `data`: (labels or predictions, probabilities or None).

    Labels come back as the original classes (from `classes`, else the model's
    metadata); probabilities as an (n, n_classes) array in the same order.
    """
    import numpy as np

    feeds = _feeds(session, data, columns)
    try:
        outputs = session.run(None, feeds)
    except Exception as exc:
        raise InvalidInput(
            f"onnxruntime could not run the model on this input: {_convert.one_line(exc)}"
        ) from exc
    if len(outputs) == 1:
        prediction = np.asarray(outputs[0])
        if prediction.ndim == 2 and prediction.shape[1] == 1:
            prediction = prediction.ravel()
        return prediction, None
    meta = session.get_modelmeta().custom_metadata_map
    return _convert.decode_classifier(outputs[0], outputs[1], meta, classes)


def check_parity(
    original_predict: Callable[[DataFrame], NDArray[Any]],
    original_proba: Callable[[DataFrame], NDArray[Any]] | None,
    onnx_bytes: bytes,
    data: DataFrame,
    columns: Sequence[OnnxColumn],
    *,
    classes: Sequence[Any] | None = None,
    tolerance: float = 1e-4,
    original_size: int,
    seed: int = 0,
) -> ParityReport:
    """Compare the original model with its ONNX export on up to 10,000 rows of `data`.

    A classifier is recognised by the ONNX graph's probability output. Latency is the
    median of one-row calls (about 200) and of batch calls on up to 1,000 rows
    (about 20), each path timed the same way: `original_predict` against
    :func:`onnx_predict` (DataFrame in, labels out), stopping early after about a second.
    """
    import numpy as np

    if len(data) == 0:
        raise InvalidInput("cannot check ONNX parity on an empty DataFrame")
    sample = (
        data.sample(n=MAX_PARITY_ROWS, random_state=seed) if len(data) > MAX_PARITY_ROWS else data
    )
    session = onnx_session(onnx_bytes)
    onnx_out, onnx_proba = onnx_predict(session, sample, columns, classes)
    expected = np.asarray(original_predict(sample))
    proba_diff: float | None = None
    agreement: float | None = None
    if onnx_proba is None:
        pred_diff = _max_abs_diff(_as_float(expected, "original"), _as_float(onnx_out, "ONNX"))
        passed = pred_diff <= tolerance
    else:
        if expected.size != onnx_out.size:
            raise InvalidInput(
                f"the original gives {expected.size} labels, the ONNX model {onnx_out.size}"
            )
        same = np.asarray(expected.ravel(), dtype=object) == np.asarray(onnx_out, dtype=object)
        agreement = float(np.mean(same))
        pred_diff = 0.0 if bool(same.all()) else 1.0
        tied: NDArray[np.bool_] = np.zeros(len(same), dtype=bool)
        if original_proba is not None:
            proba = np.asarray(original_proba(sample), dtype=np.float64)
            proba_diff = _max_abs_diff(proba, _match_shape(onnx_proba, proba.shape))
            tied = _near_ties(proba, tolerance)
        passed = bool(np.all(same | tied)) and (proba_diff is None or proba_diff <= tolerance)
    one_row, batch = sample.iloc[:1], sample.iloc[:MAX_BATCH_ROWS]
    return ParityReport(
        rows=len(sample),
        max_abs_diff_prediction=pred_diff,
        max_abs_diff_proba=proba_diff,
        label_agreement=agreement,
        tolerance=tolerance,
        passed=passed,
        original_bytes=original_size,
        onnx_bytes=len(onnx_bytes),
        original_p50_ms_one_row=_p50_ms(lambda: original_predict(one_row), ONE_ROW_REPEATS),
        onnx_p50_ms_one_row=_p50_ms(
            lambda: onnx_predict(session, one_row, columns, classes), ONE_ROW_REPEATS
        ),
        original_p50_ms_batch=_p50_ms(lambda: original_predict(batch), BATCH_REPEATS),
        onnx_p50_ms_batch=_p50_ms(
            lambda: onnx_predict(session, batch, columns, classes), BATCH_REPEATS
        ),
        batch_rows=len(batch),
    )


def _load_model(onnx_bytes: bytes) -> Any:
    """The parsed model; InvalidInput if it is not one or keeps data in other files."""
    import onnx

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as exc:
        raise InvalidInput(f"these bytes are not an ONNX model: {_convert.one_line(exc)}") from exc
    _refuse_external_data(model)
    return model


def _refuse_external_data(model: Any) -> None:
    """InvalidInput if a tensor keeps its data in another file, which onnxruntime and the
    quantizer would read from the working directory (see loopline.packaging._onnx)."""
    from loopline.packaging._onnx import external_tensors

    external = external_tensors(model)
    if external:
        raise InvalidInput(
            f"the ONNX model keeps tensor {external[0]!r} in another file (external data); "
            "loopline only runs self-contained ONNX models"
        )


def _feeds(session: Any, data: DataFrame, columns: Sequence[OnnxColumn]) -> dict[str, Any]:
    """One array per graph input, cast to the input's declared element type."""
    names = [c.name for c in columns]
    for name in names:
        if name not in data.columns:
            raise SignatureMismatch(f"column '{name}' is missing from the input", field=name)
    inputs = session.get_inputs()
    if len(inputs) == 1 and inputs[0].name == _convert.SINGLE_INPUT:
        dtype = _NUMPY_DTYPES.get(inputs[0].type, "float32")
        # Selecting columns costs ~200 µs a call; skip it when they are already in order.
        frame = data if data.columns.tolist() == names else data[names]
        return {inputs[0].name: _to_numpy(frame, dtype, "the input columns")}
    feeds = {}
    for graph_input in inputs:
        if graph_input.name not in data.columns:
            raise SignatureMismatch(
                f"the ONNX model needs column '{graph_input.name}', which is missing",
                field=graph_input.name,
            )
        dtype = _NUMPY_DTYPES.get(graph_input.type, "float32")
        values = data[graph_input.name]
        if dtype == "object":
            array = values.astype(str).to_numpy(dtype=object)
        else:
            array = _to_numpy(values, dtype, f"column '{graph_input.name}'")
        feeds[graph_input.name] = array.reshape(-1, 1)
    return feeds


def _to_numpy(values: DataFrame | Series[Any], dtype: str, what: str) -> NDArray[Any]:
    import numpy as np

    try:
        return values.to_numpy(dtype=dtype, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} cannot be read as {dtype}: {_convert.one_line(exc)}") from exc


def _as_float(values: NDArray[Any], which: str) -> NDArray[np.float64]:
    import numpy as np

    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the {which} predictions are not numeric: {exc}") from exc


def _match_shape(proba: NDArray[Any], shape: tuple[int, ...]) -> NDArray[Any]:
    if proba.shape != shape:
        raise InvalidInput(
            f"the original gives probabilities of shape {shape}, the ONNX model {proba.shape}"
        )
    return proba


def _max_abs_diff(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Largest |a - b|; NaN on both sides counts as equal, NaN on one side as infinite."""
    import numpy as np

    if a.shape != b.shape:
        raise InvalidInput(f"the original gives {a.shape} predictions, the ONNX model {b.shape}")
    diff = np.abs(a - b)
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    diff[np.isnan(diff)] = np.inf
    return float(diff.max()) if diff.size else 0.0


def _near_ties(proba: NDArray[np.float64], tolerance: float) -> NDArray[np.bool_]:
    """Rows whose two highest probabilities differ by less than `tolerance`."""
    import numpy as np

    if proba.ndim != 2 or proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=bool)
    top_two = np.sort(proba, axis=1)[:, -2:]
    return np.asarray(top_two[:, 1] - top_two[:, 0] < tolerance)


def _p50_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of `call` in milliseconds, after one warm-up call."""
    call()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if len(times) >= 5 and time.perf_counter() - started > LATENCY_BUDGET_S:
            break
    return statistics.median(times) * 1000.0
