"""A trial's telemetry (trainables.telemetry): readings sampled on a thread, their means taken with each report."""

from __future__ import annotations

import threading

from contract import metrics as M
from contract.tracking import SYSTEM_METRICS_PREFIX
from trainables.telemetry import Telemetry, nvml_reader, visible_gpus

NODE = {"cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage"}


class FakeGpu:
    """Readings of one GPU as NVML would give them, in turn; a reading that fails like a lost device."""

    def __init__(self, utilization: list[float]) -> None:
        self.utilization = list(utilization)

    def __call__(self) -> dict[str, float]:
        if not self.utilization:
            raise RuntimeError("NVML: GPU is lost")
        util = self.utilization.pop(0)
        return {"gpu_0_utilization_percentage": util, "gpu_0_memory_usage_megabytes": 500 + util,
                "gpu_1_utilization_percentage": 0.0, "gpu_1_memory_usage_megabytes": 100.0}  # fmt: skip


def test_take_is_the_mean_since_the_last_take_named_as_mlflow_names_system_metrics():
    telemetry = Telemetry(FakeGpu([10.0, 30.0, 90.0]), interval_s=3600)
    telemetry.sample()
    telemetry.sample()
    first = telemetry.take()
    gpus = {f"gpu_{n}_{what}" for n in (0, 1) for what in ("utilization_percentage", "memory_usage_megabytes")}
    assert set(first) == {SYSTEM_METRICS_PREFIX + n for n in NODE | gpus} | {M.GPU_UTILIZATION, M.GPU_MEMORY_PEAK}
    assert first["system/gpu_0_utilization_percentage"] == 20.0 and first["system/gpu_0_memory_usage_megabytes"] == 520
    assert first[M.GPU_UTILIZATION] == 10.0  # the trial's two GPUs, one idle
    assert first[M.GPU_MEMORY_PEAK] == 530  # the most either held at any sample, not a mean
    assert 0 <= first["system/cpu_utilization_percentage"] <= 100
    assert telemetry.take()["system/gpu_0_utilization_percentage"] == 90.0  # nothing sampled since: one reading now


def test_a_failing_reading_is_left_out_and_the_rest_is_kept():
    telemetry = Telemetry(FakeGpu([]), interval_s=3600)
    taken = telemetry.take()
    assert set(taken) == {SYSTEM_METRICS_PREFIX + n for n in NODE}


def test_the_thread_samples_until_the_block_ends():
    with Telemetry(interval_s=0.01) as telemetry:
        threading.Event().wait(0.2)
    assert not telemetry._thread.is_alive()
    assert len(telemetry._samples["cpu_utilization_percentage"]) >= 2  # sampled on its own, no take needed


def test_the_gpus_are_the_ones_ray_made_visible(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == [2, 3]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == [] and nvml_reader([]) is None  # no GPU of its own: no GPU numbers
