"""The cut of serving: the prediction log reads without the server, and serving's public
names resolve lazily from their sub-packages."""

from __future__ import annotations

import subprocess
import sys

SERVER_SIDE = [
    "fastapi",
    "starlette",
    "uvicorn",
    "loopline.serving",
    "loopline.packaging",
    "loopline.models",
    "loopline.registry",
]


def _loaded(code: str, names: list[str]) -> list[str]:
    script = f"{code}\nimport sys\nprint(','.join(n for n in {names!r} if n in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return [name for name in done.stdout.strip().split(",") if name]


def test_the_prediction_log_and_feedback_import_no_server_and_no_model_package() -> None:
    code = (
        "from loopline.predictions import read_predictions, read_feedback, PredictionLog\n"
        "from loopline.predictions import record_feedback, read_rejected, parse_since"
    )
    assert _loaded(code, SERVER_SIDE) == []


def test_deployments_load_neither_the_online_server_nor_batch_nor_exports() -> None:
    code = "from loopline.serving import deployments, servers"
    parts = [
        "fastapi",
        "loopline.serving.online",
        "loopline.serving.batch",
        "loopline.serving.export",
    ]
    assert _loaded(code, parts) == []


def test_every_public_serving_name_resolves() -> None:
    import loopline.predictions
    import loopline.serving

    for name in loopline.serving.__all__:
        assert getattr(loopline.serving, name) is not None
    assert loopline.serving.read_predictions is loopline.predictions.read_predictions
    assert loopline.serving.PredictionRecord is loopline.predictions.PredictionRecord
    assert set(dir(loopline.serving)) >= set(loopline.serving.__all__)
