"""`loopline ui`: the local project's pages on 127.0.0.1, as a real process, and the
one-line refusals (a port in use, a project whose records are on a server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fixtures.serving import free_port, stop_process
from fixtures.waiting import eventually
from loopline.cli.app import run

SRC = Path(__file__).resolve().parents[2] / "src"
LOOPLINE = [sys.executable, "-c", "from loopline.cli import main; main()"]


@pytest.fixture
def folder(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A project with one run of experiment "churn", the working directory."""
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings

    init_project(tmp_path)
    clean_env.chdir(tmp_path)
    opened = open_stores(project_settings(tmp_path))
    runs = opened.metadata.runs
    runs.create_run(runs.get_or_create_experiment("churn").id, name="first", user="ana")
    opened.close()
    return tmp_path


@pytest.mark.slow
def test_loopline_ui_serves_the_project_on_loopback_and_opens_a_browser(folder: Path) -> None:
    port = free_port()
    opened = folder / "browser-was-asked-for.txt"
    write_url = f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    # a display, and a "browser" (webbrowser runs $BROWSER) that writes down its URL
    env.update(PYTHONPATH=str(SRC), DISPLAY=":404", BROWSER=f'{sys.executable} -c "{write_url}" %s')
    process = subprocess.Popen(
        [*LOOPLINE, "ui", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        home = eventually(
            lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=2),
            until=lambda answer: answer.status_code == 200,
            timeout=60,
            ignoring=(httpx.TransportError,),
            message="loopline ui did not answer",
        )
        assert 'href="/experiments/churn">churn</a>' in home.text
        table = httpx.get(f"http://127.0.0.1:{port}/experiments/churn", timeout=5)
        assert ">first</a>" in table.text
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 303 and login.headers["location"] == "/"  # no sign-in
        eventually(opened.exists, timeout=30, message="no browser was opened")
        assert opened.read_text() == f"http://127.0.0.1:{port}/"
    finally:
        output = stop_process(process)
    assert f"loopline UI of {folder} at http://127.0.0.1:{port}/" in output.replace("\n", "")
    assert "Traceback" not in output


def test_a_port_in_use_is_a_one_line_error(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run(["ui", "--port", str(port), "--no-browser"])
    err = capsys.readouterr().err
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in err
    assert "Traceback" not in err


def test_a_project_on_a_server_is_sent_to_that_server(
    folder: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("LOOPLINE_SERVER", "https://loopline.example.com")
    assert run(["ui", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "records are on the server at https://loopline.example.com" in err


def test_the_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ui", "--help"]) == 0
    assert "Example: loopline ui --port 5001" in capsys.readouterr().out
