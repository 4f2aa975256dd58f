"""Benchmark 3: what Ray Tune + MLflow add to a trial: the same epochs in a bare loop and inside a Tune trial
(per-epoch checkpoint, report, MLflow logging through search.tracking), interleaved, one thread each.

    python benchmarks/overhead.py [--epochs 6] [--rounds 3]

Per epoch, from the second on: bare, the wall time of ``Trainer.run_epoch``; in Tune, the trial's
``time_this_iter_s`` (Tune's clock from report to report: the epoch plus its checkpoint and report). The first
iteration also holds the trial's setup (data, model), reported apart. Inside the trial the time is split into the
trial's own work (the epoch and writing its checkpoint) and the report's round trip (persisting the checkpoint,
then waiting while the driver runs the scheduler, the searcher and the MLflow callback before it lets the trial
go on: Tune's function trainables report synchronously). Writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare(config: dict) -> list[float]:
    import torch

    from trainables.config import TrainConfig
    from trainables.loop import Trainer

    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.from_dict(config), torch.device("cpu"))
    times = []
    while not trainer.done:
        start = time.perf_counter()
        trainer.run_epoch()
        times.append(time.perf_counter() - start)
    return times


def timed_train_t2t(config: dict) -> None:
    """``train_t2t`` with each report timed: its own work since the last report, and the last report's round trip."""
    from ray import tune

    from trainables.tune import train_t2t

    clock = {"returned": time.perf_counter(), "round_trip": float("nan")}

    def report(metrics: dict, checkpoint=None) -> None:
        start = time.perf_counter()
        metrics = {**metrics, "bench_work_s": start - clock["returned"], "bench_prev_round_trip_s": clock["round_trip"]}
        tune.report(metrics, checkpoint=checkpoint)
        clock["returned"] = time.perf_counter()
        clock["round_trip"] = clock["returned"] - start

    train_t2t(config, report=report)


def in_tune(config: dict, folder: Path, name: str) -> dict[str, list[float]]:
    from ray import tune

    from contract.tracking import ROLE_PARENT, ROLE_TAG
    from search.tracking.mlflow_callback import MlflowCallback
    from search.tracking.tracker import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{folder}/mlflow.db", "overhead", str(folder / name))
    tracker.start_parent(name, {}, {ROLE_TAG: ROLE_PARENT}, {})
    tuner = tune.Tuner(
        tune.with_resources(timed_train_t2t, {"cpu": 1}),
        param_space=config,
        run_config=tune.RunConfig(name=name, storage_path=str(folder), callbacks=[MlflowCallback(tracker)],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=0),
    )  # fmt: skip
    result = tuner.fit()[0]
    tracker.close()
    df = result.metrics_dataframe
    return {
        "iteration": df["time_this_iter_s"].tolist(),
        "work": df["bench_work_s"].tolist(),
        "round_trip": df["bench_prev_round_trip_s"].tolist()[1:],  # epoch k's round trip, reported with k + 1
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from search.driver import local_ray
    from trainables.config import TrainConfig

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    config = TrainConfig.load(None, [f"train.epochs={args.epochs}"]).to_dict()
    local_ray(num_cpus=2)
    per_epoch: dict[str, list[float]] = {"bare": [], "tune": [], "tune_work": [], "tune_round_trip": []}
    first: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            b, t = bare(config), in_tune(config, Path(tmp), f"round{r}")
            per_epoch["bare"] += b[1:]
            per_epoch["tune"] += t["iteration"][1:]
            per_epoch["tune_work"] += t["work"][1:]
            per_epoch["tune_round_trip"] += t["round_trip"]
            first.append(t["iteration"][0] - b[0])
            bare_s, tune_s = statistics.median(b[1:]), statistics.median(t["iteration"][1:])
            print(f"round {r}: per epoch bare {bare_s:.3f} s, in Tune {tune_s:.3f} s; trial setup {first[-1]:.2f} s")
    med = {k: statistics.median(v) for k, v in per_epoch.items()}
    ratio = med["tune"] / med["bare"]
    print(f"median epoch: bare {med['bare']:.3f} s, in a Tune trial with MLflow {med['tune']:.3f} s: {ratio:.3f}x "
          f"(target <= 1.03x); trial setup {statistics.median(first):.2f} s once per trial")  # fmt: skip
    print(
        f"inside the trial: its own work (epoch + checkpoint write) {med['tune_work']:.3f} s "
        f"({med['tune_work'] / med['bare']:.3f}x bare), report round trip {med['tune_round_trip'] * 1e3:.0f} ms"
    )
    out = Path(__file__).resolve().parent / "results" / "overhead.json"
    out.parent.mkdir(exist_ok=True)
    result = {"epochs": args.epochs, "per_epoch": per_epoch, "median": med, "ratio": ratio, "setup_s": first}
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
