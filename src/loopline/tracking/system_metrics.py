"""System metrics sampled into a run: CPU, memory, disk, network and GPU (MLflow's analog).

On with `ll.start_run(..., log_system_metrics=True)`, or for every run with
LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING=true (an explicit `log_system_metrics=False`
wins). A daemon thread samples every LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL seconds
(default 10) and logs, as steps 0, 1, 2, ... of the run:

    system/cpu_utilization_percentage       system/system_memory_usage_megabytes
    system/system_memory_usage_percentage   system/disk_usage_megabytes
    system/disk_usage_percentage            system/disk_available_megabytes
    system/network_receive_megabytes        system/network_transmit_megabytes   (since start)
    system/gpu_<i>_utilization_percentage   system/gpu_<i>_memory_usage_megabytes
    system/gpu_<i>_memory_usage_percentage  (with pynvml and an NVIDIA GPU; else skipped)

Samples go through the run's metric buffer like any `log_metric`, so sampling never
waits on the database. The thread stops when the run ends, however it ends (a `with`
block's exception, `end_run`, the process exiting): ending waits at most STOP_WAIT_S for
a sample in progress. psutil is the `system` extra; without it, asking for system
metrics raises MissingExtra.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any

from loopline.errors import InvalidInput, MissingExtra

log = logging.getLogger(__name__)

ENABLE_VARIABLE = "LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING"
INTERVAL_VARIABLE = "LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL"
DEFAULT_INTERVAL_S = 10.0
STOP_WAIT_S = 2.0
PREFIX = "system/"
MB = 1_000_000
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

LogMetrics = Callable[[dict[str, float], int], None]


def wanted(log_system_metrics: bool | None) -> bool:
    """Whether a run samples system metrics: the argument, else the environment."""
    if log_system_metrics is not None:
        if not isinstance(log_system_metrics, bool):
            raise InvalidInput(
                f"log_system_metrics must be True, False or None, got {log_system_metrics!r}"
            )
        return log_system_metrics
    value = os.environ.get(ENABLE_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"{ENABLE_VARIABLE}={value!r} is neither true nor false")


def sampling_interval() -> float:
    """Seconds between samples: LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL, default 10."""
    raw = os.environ.get(INTERVAL_VARIABLE)
    if raw is None or not raw.strip():
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{INTERVAL_VARIABLE} must be a number of seconds > 0, got {raw!r}")
    return value


def monitor_for(log_system_metrics: bool | None) -> SystemMonitor | None:
    """A monitor, not started yet, when a run should sample the system; else None.

    Called before the run is created, so that a bad setting (InvalidInput) or a missing
    psutil (MissingExtra) leaves no run behind.
    """
    if not wanted(log_system_metrics):
        return None
    return SystemMonitor(sampling_interval(), Sampler())


class SystemMonitor:
    """A daemon thread that samples the machine into a run until `stop`."""

    def __init__(self, interval: float, sampler: Sampler) -> None:
        self.interval = interval
        self.samples = 0
        self._sampler = sampler
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, log_metrics: LogMetrics, name: str = "") -> SystemMonitor:
        """Sample every `interval` seconds into `log_metrics(values, step)`."""
        self._thread = threading.Thread(
            target=self._run,
            args=(log_metrics,),
            name=f"loopline-system-metrics-{name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling; waits at most STOP_WAIT_S for a sample in progress."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(STOP_WAIT_S)

    def _run(self, log_metrics: LogMetrics) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    values = self._sampler.sample()
                    if self._stopped.is_set():
                        return  # the run is ending: its buffer may be closed
                    log_metrics(values, self.samples)
                    self.samples += 1
                except Exception as exc:  # a failed sample never ends the run
                    log.warning("sampling system metrics failed: %s", exc)
        finally:
            self._sampler.close()


class Sampler:
    """Reads the machine's counters; the first CPU reading is taken at creation."""

    def __init__(self) -> None:
        try:
            import psutil  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtra("system metrics", "system") from exc
        self._psutil = psutil
        psutil.cpu_percent(interval=None)  # primes the counter: the next call is a delta
        self._net_start = _net_counters(psutil)
        self._gpus = _Gpus.open()

    def sample(self) -> dict[str, float]:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        values = {
            "cpu_utilization_percentage": float(psutil.cpu_percent(interval=None)),
            "system_memory_usage_megabytes": memory.used / MB,
            "system_memory_usage_percentage": float(memory.percent),
        }
        try:
            disk = psutil.disk_usage(os.path.abspath(os.sep))
        except OSError:
            disk = None
        if disk is not None:
            values["disk_usage_megabytes"] = disk.used / MB
            values["disk_usage_percentage"] = float(disk.percent)
            values["disk_available_megabytes"] = disk.free / MB
        net = _net_counters(psutil)
        if net is not None and self._net_start is not None:
            values["network_receive_megabytes"] = (net[0] - self._net_start[0]) / MB
            values["network_transmit_megabytes"] = (net[1] - self._net_start[1]) / MB
        if self._gpus is not None:
            values.update(self._gpus.sample())
        return {PREFIX + key: value for key, value in values.items()}

    def close(self) -> None:
        if self._gpus is not None:
            self._gpus.close()


def _net_counters(psutil: Any) -> tuple[int, int] | None:
    try:
        counters = psutil.net_io_counters()
    except (OSError, RuntimeError):
        return None
    return None if counters is None else (counters.bytes_recv, counters.bytes_sent)


class _Gpus:
    """NVIDIA GPUs through pynvml; `open` is None without pynvml, a driver or a GPU."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls) -> _Gpus | None:
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception as exc:  # no module, no driver, no device: nothing to sample
            log.debug("no GPU metrics: %s", exc)
            return None
        return cls(pynvml, handles) if handles else None

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for i, handle in enumerate(self._handles):
            try:
                use = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:
                log.debug("GPU %d not sampled: %s", i, exc)
                continue
            values[f"gpu_{i}_utilization_percentage"] = float(use.gpu)
            values[f"gpu_{i}_memory_usage_megabytes"] = memory.used / MB
            values[f"gpu_{i}_memory_usage_percentage"] = 100.0 * memory.used / memory.total
        return values

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            log.debug("nvmlShutdown failed: %s", exc)
