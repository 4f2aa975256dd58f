"""What a trial's process measures of the node it runs on, sent with its results, never to MLflow directly.

A thread samples the CPU, the memory and the trial's own GPUs (NVML) every few seconds; each report takes the means
since the last one. The driver logs them as the trial run's ``system/*`` metrics (MLflow's own monitor's names, so
the UI's system-metrics charts show them), whether the trial runs beside the driver or on a node that cannot reach
MLflow. Nothing here may fail a trial: a reading that fails is left out.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable

import psutil

from contract import metrics as M
from contract.tracking import SYSTEM_METRICS_PREFIX

SAMPLING_INTERVAL_S = 5.0  # MLflow's own monitor samples every 10 s
GpuReader = Callable[[], dict[str, float]]  # one reading of the trial's GPUs, named as MLflow names them


def node_reading() -> dict[str, float]:
    """The node's CPU use since the last call and its memory, as MLflow's CPU monitor names them."""
    memory = psutil.virtual_memory()
    return {
        "cpu_utilization_percentage": psutil.cpu_percent(),
        "system_memory_usage_megabytes": memory.used / 1e6,
        "system_memory_usage_percentage": memory.used / memory.total * 100,
    }


def visible_gpus() -> list[int]:
    """NVML indexes of the GPUs this process may use, in CUDA's order (Ray sets ``CUDA_VISIBLE_DEVICES``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return []  # Ray sets it for every trial; without it, which GPU is the trial's is unknown
    return [int(i) for i in visible.split(",") if i.strip().isdigit()]


def nvml_reader(indexes: list[int]) -> GpuReader | None:
    """A reader of the GPUs at NVML ``indexes``, named ``gpu_0``... as the trial's CUDA sees them; None without a
    GPU or NVML."""
    if not indexes:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indexes]
    except Exception:  # no driver, no such device: no GPU numbers
        return None

    def read() -> dict[str, float]:
        out = {}
        for n, handle in enumerate(handles):  # each query alone: a device may not support one (power on MIG)
            for name, query in _nvml_queries(pynvml, handle).items():
                try:
                    out[f"gpu_{n}_{name}"] = query()
                except pynvml.NVMLError:
                    continue
        return out

    return read


def _nvml_queries(pynvml, handle) -> dict[str, Callable[[], float]]:
    """NVML's readings of one GPU, as MLflow's GPU monitor names them."""
    memory = lambda: pynvml.nvmlDeviceGetMemoryInfo(handle)  # noqa: E731
    return {
        "utilization_percentage": lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        "memory_usage_megabytes": lambda: memory().used / 1e6,
        "memory_usage_percentage": lambda: memory().used / memory().total * 100,
        "power_usage_watts": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
    }


def _trial_gpus(reading: dict[str, float]) -> dict[str, float]:
    """The trial's GPUs as one: their mean utilisation and the most memory one of them holds (unprefixed names)."""
    util = [v for k, v in reading.items() if k.startswith("gpu_") and k.endswith("_utilization_percentage")]
    memory = [v for k, v in reading.items() if k.startswith("gpu_") and k.endswith("_memory_usage_megabytes")]
    out = {}
    if util:
        out[_bare(M.GPU_UTILIZATION)] = sum(util) / len(util)
    if memory:
        out[_bare(M.GPU_MEMORY_PEAK)] = max(memory)
    return out


def _bare(name: str) -> str:
    return name.removeprefix(SYSTEM_METRICS_PREFIX)


class Telemetry:
    """Samples on a thread of its own from ``start`` to ``stop``; ``take`` returns the means since the last take."""

    def __init__(self, gpu: GpuReader | None = None, interval_s: float = SAMPLING_INTERVAL_S) -> None:
        self.gpu, self.interval_s = gpu, interval_s
        self._samples: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trial-telemetry", daemon=True)

    def __enter__(self) -> Telemetry:
        node_reading()  # psutil's first CPU reading is since the process began: start the interval now
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval_s + 1)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """One reading of the node and the trial's GPUs, kept for the next ``take``."""
        readings = {}
        for read in (node_reading, self.gpu):
            try:
                readings.update(read() if read else {})
            except Exception:  # a reading that fails is left out, never the trial
                continue
        readings.update(_trial_gpus(readings))
        with self._lock:
            for name, value in readings.items():
                self._samples[name].append(value)

    def take(self) -> dict[str, float]:
        """The mean of each reading since the last take (one taken now if none was; the peak memory: its most), as
        ``system/NAME``."""
        with self._lock:
            empty = not self._samples
        if empty:
            self.sample()
        with self._lock:
            samples, self._samples = self._samples, defaultdict(list)
        peak = _bare(M.GPU_MEMORY_PEAK)
        means = {name: max(v) if name == peak else sum(v) / len(v) for name, v in samples.items() if v}
        return {SYSTEM_METRICS_PREFIX + name: value for name, value in means.items()}
