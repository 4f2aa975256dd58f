"""The GPU benchmark's code path, run on the CPU with a tiny model (--smoke): it must not rot while no GPU is lent.
No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_smoke_runs_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_step.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_step.py"), "--smoke", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["row"] for r in result["rows"]] == ["fp32 (TF32)", "bf16"]
    for row in result["rows"]:
        assert "error" not in row, row
        assert row["images_s"] > 0 and row["mfu"] > 0 and row["tflops"] > 0
    epoch = result["cifar_epoch"]
    assert epoch["data_on"] == "cpu" and 200 < epoch["train_images"] < 256 and epoch["epoch_s"] > 0  # 10%: val, test


def test_gpu_benchmark_without_a_gpu_says_so_in_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, also on a machine that has one
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_step.py")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "gpu_step: no CUDA device here; run it where one is, or use --smoke to check the code on a CPU"
    )
