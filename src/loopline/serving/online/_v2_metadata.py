"""The Open Inference Protocol's model metadata: what `GET /v2/models/{name}` answers
(inputs and outputs with their datatypes, and which runtime serves the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.serving.online._v2 import DATATYPES, MATRIX_INPUT, PREDICT, PREDICT_PROBA

if TYPE_CHECKING:
    from loopline.serving.runtime import ServedModel


def label_datatype(classes: list[Any] | None) -> str:
    """The V2 datatype of the labels a classifier returns (FP64 for a regressor)."""
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def v2_metadata(name: str, model: ServedModel) -> dict[str, Any]:
    """The model metadata response, saying which runtime serves it in `parameters`."""
    outputs = [{"name": PREDICT, "datatype": label_datatype(model.classes), "shape": [-1]}]
    if model.has_proba:
        width = len(model.classes) if model.classes else -1
        outputs.append({"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, width]})
    parameters: dict[str, Any] = {
        "model_version": model.version_ref,
        "runtime": model.runtime,
        "runtime_version": model.runtime_version_ref,
        "path": model.path,
    }
    if model.schema.numeric:
        parameters["matrix_input"] = {
            "name": MATRIX_INPUT,
            "datatype": "FP64",
            "shape": [-1, len(model.input_names)],
        }
    return {
        "name": name,
        "versions": [model.version_ref],
        "platform": "onnxruntime_onnx" if model.runtime == "onnxruntime" else model.runtime,
        "inputs": [
            {"name": spec.name, "datatype": DATATYPES[spec.type], "shape": [-1]}
            for spec in model.inputs
        ],
        "outputs": outputs,
        "parameters": parameters,
    }
