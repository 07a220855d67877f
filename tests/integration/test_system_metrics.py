"""System metrics sampled into a run (`start_run(log_system_metrics=True)` and the
LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING variable), on a real project (SQLite and
PostgreSQL) with the real psutil: samples arrive, the thread ends with the run however
the run ends, and bad settings are refused before a run exists."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import loopline as ll
from fixtures.waiting import eventually
from loopline.errors import InvalidInput, NotFound
from loopline.store import RunStatus
from loopline.tracking import Stores

CPU = "system/cpu_utilization_percentage"
MEMORY = "system/system_memory_usage_megabytes"


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("loopline-system-metrics")]


def _wait_for_samples(run: ll.ActiveRun, count: int, timeout: float = 10.0) -> None:
    """Until the monitor took `count` samples (a loaded machine can be slow)."""
    monitor = run._monitor
    assert monitor is not None
    eventually(
        lambda: monitor.samples >= count,
        timeout=timeout,
        message=f"the monitor took fewer than {count} samples",
    )


def test_a_run_with_system_metrics_samples_cpu_and_memory_until_it_ends(
    project: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    with ll.start_run(log_system_metrics=True) as run:
        _wait_for_samples(run, 2)
        assert len(_sampler_threads()) == 1
    assert _sampler_threads() == []  # stopped with the run

    cpu = ll.get_metric_history(run.id, CPU)
    memory = ll.get_metric_history(run.id, MEMORY)
    assert len(cpu) >= 2 and len(memory) >= 2
    assert [p.step for p in cpu] == list(range(len(cpu)))
    assert all(0.0 <= p.value <= 100.0 for p in cpu)  # of the whole machine
    assert all(p.value > 0 for p in memory)
    metrics = ll.get_run(run.id).metrics
    assert 0 < metrics["system/system_memory_usage_percentage"] <= 100
    assert 0 < metrics["system/disk_usage_percentage"] <= 100
    assert metrics["system/network_receive_megabytes"] >= 0
    assert not any(key.startswith("system/gpu_") for key in metrics)  # no GPU here: skipped


def test_end_run_stops_the_thread_promptly(
    project: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    run = ll.start_run(log_system_metrics=True)
    _wait_for_samples(run, 1)
    taken = run._monitor.samples if run._monitor else 0
    ll.end_run()
    assert _sampler_threads() == []
    assert len(ll.get_metric_history(run.id, CPU)) >= taken >= 1


def _fail_inside(run: ll.ActiveRun) -> None:
    with run:
        raise RuntimeError("boom")


def test_an_exception_in_the_run_stops_the_thread_and_fails_the_run(
    project: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    run = ll.start_run(log_system_metrics=True)
    _wait_for_samples(run, 1)
    with pytest.raises(RuntimeError, match="boom"):
        _fail_inside(run)
    assert _sampler_threads() == []
    assert ll.get_run(run.id).status == RunStatus.FAILED


def test_the_environment_variable_turns_it_on_and_an_explicit_false_wins(
    project: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    with ll.start_run() as on:
        _wait_for_samples(on, 1)
    with ll.start_run(log_system_metrics=False) as off:
        assert _sampler_threads() == []
        time.sleep(0.3)
    assert ll.get_metric_history(on.id, CPU)
    assert ll.get_metric_history(off.id, CPU) == []


def test_runs_do_not_sample_by_default(project: Stores) -> None:
    with ll.start_run() as run:
        assert run._monitor is None
        assert _sampler_threads() == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0"),
        ("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "-1"),
        ("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "nan"),
        ("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "inf"),
        ("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "ten"),
        ("LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING", "maybe"),
    ],
)
def test_bad_settings_are_refused_before_a_run_exists(
    project: Stores, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput, match=variable):
        ll.start_run(experiment="never")
    assert ll.active_run() is None
    with pytest.raises(NotFound):
        ll.search_runs(experiment="never")


@pytest.mark.parametrize("value", ["yes", 1, 0.5])
def test_log_system_metrics_must_be_a_bool(project: Stores, value: object) -> None:
    with pytest.raises(InvalidInput, match="log_system_metrics"):
        ll.start_run(log_system_metrics=value)  # type: ignore[arg-type]
    assert ll.active_run() is None


def test_without_psutil_it_is_a_missing_extra_with_the_pip_line(project: Stores) -> None:
    script = (  # a Python in which `import psutil` fails, as when it is not installed
        "import sys; sys.modules['psutil'] = None\n"
        "import loopline as ll\n"
        "from loopline.errors import MissingExtra\n"
        "try:\n"
        "    ll.start_run(log_system_metrics=True)\n"
        "except MissingExtra as exc:\n"
        "    print(exc.exit_code, exc.hint, ll.active_run())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "8 pip install 'loopline[system]' None", done.stderr
