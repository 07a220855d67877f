"""`loopline monitor watch`: policies on their schedule, alerts de-duplicated, delivered to
a real webhook receiver on 127.0.0.1 (allow-listed) and a file, resolved when the check
passes again; a watcher killed with SIGKILL mid-cycle neither skips nor repeats a window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fixtures.monitoring import Monitored, log_rows, make_frame, monitored_project
from fixtures.waiting import eventually
from loopline.project import Stores

EVERY = timedelta(minutes=10)


class Receiver:
    """A webhook receiver: keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _aligned(moment: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // EVERY) * EVERY


def _policy(monitored: Monitored, receiver: Receiver, tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"""deployment: {monitored.deployment}
window: 1h
every: 10m
min_rows: 100
cooldown: 1h
actions:
  - when: any
    do: alert
    webhook: "{receiver.url}"
    allow_hosts: ["127.0.0.1"]
  - when: any
    do: alert
    file: alerts.jsonl
"""
    )
    return path


@pytest.fixture
def monitored(project: Stores) -> Monitored:
    return monitored_project(project)


def test_alerts_open_once_respect_the_cooldown_and_resolve(
    monitored: Monitored, receiver: Receiver, tmp_path: Path
) -> None:
    from loopline.loop import watch_once
    from loopline.monitoring.policy import load_policy

    policy = load_policy(
        _policy(monitored, receiver, tmp_path), project_root=monitored.stores.settings.root
    )
    policies = {monitored.deployment: policy}
    t = _aligned(datetime.now(UTC))
    log_rows(
        monitored, make_frame(2000, seed=5, shift={"x1": 0.8}), start=t - timedelta(minutes=30)
    )

    first = watch_once(now=t + timedelta(seconds=1), policies=policies)[0]
    assert len(first.windows) == 1 and first.opened == ["drift"] and first.sent == 1
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert "drift" in body["text"] and body["loopline"]["deployment"] == monitored.deployment
    lines = (monitored.stores.settings.root / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["check"] == "drift"

    again = watch_once(now=t + timedelta(seconds=2), policies=policies)[0]
    assert again.windows == [] and again.sent == 0  # nothing due, nothing repeated

    later = watch_once(now=t + EVERY + timedelta(seconds=1), policies=policies)[0]
    assert len(later.windows) == 1 and later.opened == [] and later.sent == 0  # cool-down
    assert len(receiver.bodies) == 1

    log_rows(monitored, make_frame(2000, seed=6), start=t + timedelta(minutes=15), prefix="u")
    recovered = watch_once(now=t + 4 * EVERY + timedelta(seconds=1), policies=policies)[0]
    assert len(recovered.windows) == 3  # the missed windows, oldest first
    assert recovered.resolved == ["drift"]
    alerts = monitored.stores.metadata.monitoring.alerts(monitored.deployment)
    assert [(a.check, a.status, a.sends) for a in alerts] == [("drift", "resolved", 1)]
    actions = {
        e.action
        for e in monitored.stores.metadata.audit.list_events(object_id=monitored.deployment)
    }
    assert {"monitor.alert.opened", "monitor.alert.sent", "monitor.alert.resolved"} <= actions
    assert receiver.url not in json.dumps([a.summary for a in alerts])


def test_cli_lists_alerts(
    monitored: Monitored, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.app import run as cli

    path = _policy(monitored, receiver, tmp_path)
    t = _aligned(datetime.now(UTC))
    log_rows(
        monitored, make_frame(2000, seed=5, shift={"x3": 0.8}), start=t - timedelta(minutes=30)
    )
    assert cli(["monitor", "watch", "--once", "--policy", str(path)]) == 0
    assert "alerts opened: drift" in capsys.readouterr().out
    assert cli(["monitor", "alerts", "credit", "--open", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["check"], a["status"], a["sends"]) for a in listed] == [("drift", "open", 1)]
    assert receiver.url not in json.dumps(listed)
    assert cli(["monitor", "alerts", "../etc"]) != 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_watcher_killed_mid_cycle_neither_skips_nor_repeats_a_window(
    monitored: Monitored, receiver: Receiver, tmp_path: Path
) -> None:
    from loopline.loop import watch_once
    from loopline.monitoring.policy import load_policy

    path = _policy(monitored, receiver, tmp_path)
    now = datetime.now(UTC)
    log_rows(
        monitored, make_frame(2000, seed=7, shift={"x2": 0.8}), start=now - timedelta(minutes=30)
    )
    start = _aligned(now) - 40 * EVERY
    monitoring = monitored.stores.metadata.monitoring
    monitoring.set_state(monitored.deployment, last_until=start, report_id=None)

    errors = tmp_path / "watcher.err"
    with errors.open("wb") as sink:
        watcher = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "loopline"),
                "monitor",
                "watch",
                "--once",
                "--policy",
                str(path),
            ],
            cwd=monitored.stores.settings.root,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    eventually(
        lambda: len(monitoring.list_reports(monitored.deployment, limit=100)) >= 5, timeout=120
    )
    watcher.send_signal(signal.SIGKILL)
    watcher.wait(timeout=30)
    assert watcher.returncode == -signal.SIGKILL

    policy = load_policy(path, project_root=monitored.stores.settings.root)
    watch_once(now=datetime.now(UTC), policies={monitored.deployment: policy})

    reports = monitoring.list_reports(monitored.deployment, limit=1000)
    keys = [r.schedule_key for r in reports]
    assert len(keys) == len(set(keys))  # no window twice
    last = monitoring.state(monitored.deployment).last_until
    assert last is not None
    expected = {(start + k * EVERY).isoformat() for k in range(1, int((last - start) / EVERY) + 1)}
    assert set(keys) == expected  # none skipped
    alerts = monitoring.alerts(monitored.deployment)
    assert [(a.check, a.status) for a in alerts] == [("drift", "open")]
    assert {b["loopline"]["details"]["alert_id"] for b in receiver.bodies} == {alerts[0].id}
    assert not alerts[0].pending
