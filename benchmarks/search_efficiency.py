"""Benchmark 4: does TPE + ASHA find good configurations with less compute than random search?

    python benchmarks/search_efficiency.py [--seeds 0 1 2] [--trials 8] [--baseline]

For each seed, the default digits search runs twice: random search without early stopping, then TPE + ASHA,
with the same number of trials. Neither starts from the base config (``search.baseline=false``): this compares
the algorithms alone. ``--baseline`` lets TPE + ASHA start from it, as the default search does.

The measure is the trial-epochs TPE + ASHA needed (in the order they finished) to reach the best val_acc that
random search reached with its whole budget. Target: <= 1/3 of random's budget. Each run is
``python -m search.run`` in a scratch folder; writes benchmarks/results/search_efficiency[_baseline].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(folder: Path, name: str, *sets: str):
    from analysis.load import from_tune

    args = [sys.executable, "-m", "search.run", "--name", name, "--storage-path", str(folder)]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db", "PYTHONPATH": str(ROOT)}
    subprocess.run(args, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return from_tune(folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--baseline", action="store_true", help="TPE + ASHA's first trial is the base config")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            common = [f"search.seed={seed}", f"search.num_trials={args.trials}", "search.warm_start=null"]
            rand = run(Path(tmp), "random", *common, "search.sampler=random", "search.scheduler=none",
                       "search.baseline=false")  # fmt: skip
            smart = run(Path(tmp), "tpe_asha", *common, "search.sampler=tpe", "search.scheduler=asha",
                        f"search.baseline={str(args.baseline).lower()}")  # fmt: skip
        target = rand.history["val_acc"].max()
        budget = len(rand.history)  # trial-epochs random search spent
        ordered = smart.history.sort_values("time_s").reset_index(drop=True)
        reached = ordered.index[ordered["val_acc"] >= target]
        needed = int(reached[0]) + 1 if len(reached) else None
        rows.append({"seed": seed, "random_best": float(target), "random_trial_epochs": budget,
                     "tpe_asha_best": float(ordered["val_acc"].max()), "tpe_asha_trial_epochs": len(ordered),
                     "trial_epochs_to_reach_random_best": needed,
                     "fraction": needed / budget if needed else None})  # fmt: skip
        r = rows[-1]
        print(f"seed {seed}: random best {r['random_best']:.4f} in {budget} trial-epochs; TPE+ASHA best "
              f"{r['tpe_asha_best']:.4f} in {r['tpe_asha_trial_epochs']}; reached random's best after "
              f"{needed if needed else 'never'}" + (f" ({r['fraction']:.2f} of random's budget)" if needed else ""),
              flush=True)  # fmt: skip
    out = ROOT / "benchmarks" / "results" / f"search_efficiency{'_baseline' if args.baseline else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
