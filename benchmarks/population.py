"""Benchmark 14: PBT and PB2 against TPE + ASHA on digits, at about the same trial-epochs, through the final phase.

    python benchmarks/population.py [--seeds 0 1 2 3 4] [--modes study pbt pb2]

Each (mode, seed) is one ``python -m search.run`` of the default digits search in a scratch folder, its final phase
included (the best candidate and the base config, 3 seeds each, measured once on test):

- study: TPE + ASHA, 8 trials of up to 6 epochs (ASHA at epochs 2 and 4);
- pbt / pb2: a population of 4 members of 6 epochs, perturbed every 2 epochs, their mutable keys every float the
  default space draws unconditionally (the learning rate, the weight decay and the three drop rates).

The measure is the final phase's: the search's pick's test accuracy (its mean over 3 seeds) and its gain over the
base config, each over the search seeds with a 95% Student-t interval (the spread of whole searches: the seed
changes what the search draws and how its trials train). Also the trial-epochs each search spent (its trials' epochs
in MLflow, the final phase excluded). Writes benchmarks/results/population.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMON = ["base.train.epochs=6", "search.final.seeds=3", "search.final.top_k=1"]
MODES = {
    "study": ["search.num_trials=8"],
    "pbt": ["search.mode=pbt", "search.population.size=4", "search.population.interval=2"],
    "pb2": ["search.mode=pb2", "search.population.size=4", "search.population.interval=2"],
}


def run(folder: Path, mode: str, seed: int) -> dict:
    """One search; its final numbers and the trial-epochs it spent."""
    from contract.files import SEARCH_SUMMARY
    from contract.final import FinalResult
    from tests.search.stores import epochs, runs

    name = f"{mode}-{seed}"
    args = [sys.executable, "-m", "search.run", "--name", name, "--storage-path", str(folder)]
    for s in [*COMMON, *MODES[mode], f"search.seed={seed}"]:
        args += ["--set", s]
    uri = f"sqlite:///{folder}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run(args, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - started
    summary = json.loads((folder / name / SEARCH_SUMMARY).read_text())
    result = FinalResult.from_dict(summary["final"])
    client, _, trials = runs(uri, name)
    pick = result.candidate(result.pick)
    return {
        "mode": mode, "seed": seed, "wall_s": round(wall, 1),
        "trial_epochs": sum(len(set(epochs(client, r))) for r in trials),
        "pick_test_acc": pick.measured.mean if pick else None,
        "baseline_test_acc": result.candidate(result.baseline).measured.mean if result.baseline else None,
        "pick_gain": result.gains[result.pick].mean if result.pick in result.gains else None,
        "verdict": result.verdict(),
    }  # fmt: skip


def interval(values: list[float]) -> str:
    """Mean and 95% Student-t interval over the seeds."""
    from contract.intervals import t95

    values = [v for v in values if v is not None]
    if len(values) < 2:
        return f"{values[0]:.4f} (one seed)" if values else "none"
    mean, half = statistics.mean(values), t95(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.4f} ({mean - half:.4f} to {mean + half:.4f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "population.json"))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run(Path(tmp), mode, seed))
            print(json.dumps(rows[-1]), flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1))
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        of = {key: interval([r[key] for r in mine]) for key in ("pick_test_acc", "pick_gain", "trial_epochs", "wall_s")}
        print(f"{mode}: pick test_acc {of['pick_test_acc']}; gain over the base config {of['pick_gain']}; "
              f"trial-epochs {of['trial_epochs']}; wall {of['wall_s']} s")  # fmt: skip


if __name__ == "__main__":
    main()
