"""`loopline serve`: one real subprocess (two workers), and its help text."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from fixtures.serving import (
    ServingProject,
    free_port,
    open_serving_project,
    stop_process,
    wait_ready,
    when_ready,
)
from loopline.cli import _serving

# Runs the real CLI; registers `serve` itself until cli/app.py does.


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("serving")) as opened:
        yield opened


def test_loopline_serve_starts_answers_and_stops(serving_project: ServingProject) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    entry = str(Path(sys.executable).parent / "loopline")
    command = [entry, "serve", "churn@latest", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "2", "--name", "scoring"],
        cwd=serving_project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_ready(url, timeout=90)
        body = {"inputs": serving_project.rows(2)}
        answer = when_ready("POST", f"{url}/v1/deployments/scoring/predict", body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "churn/1"
        assert len(answer.json()["predictions"]) == 2
        metadata = when_ready("GET", f"{url}/v2/models/scoring")
        assert metadata.json()["platform"] == "onnxruntime_onnx"
        mlflow = when_ready("POST", f"{url}/invocations", {"inputs": serving_project.rows(1)})
        assert mlflow.status_code == 200 and len(mlflow.json()["predictions"]) == 1
        for _ in range(20):  # a new connection each: both workers answer some
            answer = when_ready("POST", f"{url}/v1/deployments/scoring/predict", body)
            assert answer.status_code == 200, answer.text
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]
        # every scrape, whichever worker answers it, counts the requests of both
        counted = 'loopline_serving_requests_total{code="200",deployment="scoring",endpoint="v1"'
        for text in scrapes:
            line = next(x for x in text.splitlines() if x.startswith(counted))
            assert float(line.rsplit(" ", 1)[1]) == 21.0, line
    finally:
        output = stop_process(process)
    assert "deployment 'scoring' serves churn/1 with onnxruntime (ONNX export churn/2)" in output
    assert f"http://127.0.0.1:{port} (2 workers)" in output


def test_loopline_serve_help_has_an_example() -> None:
    app = typer.Typer()
    app.command("serve")(_serving.serve)
    app.command("other")(lambda: None)
    helped = CliRunner().invoke(app, ["serve", "--help"])
    assert helped.exit_code == 0
    assert "Example: loopline serve churn@champion" in helped.output
    assert "--native" in helped.output and "--workers" in helped.output
