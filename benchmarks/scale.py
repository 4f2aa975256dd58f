"""Benchmark 8: many trials. t2t-search against the hand-glued stack (stock Ray Tune + Ray's OptunaSearch + ASHA +
MLflowLoggerCallback, written the way Ray's docs show it, with the ConcurrencyLimiter their Optuna example puts
around the searcher: without it Tune keeps one trial pending at a time and short trials run one after another)
driving the same trainable, in one run; and at bookkeeping, Tune alone (``tune``): the same trainable and scheduler
with no searcher and no tracking, the floor under any stack built on Tune.

    python benchmarks/scale.py                       # N = 10, 100, 500 of the tiny config; 1,000 bookkeeping trials
    python benchmarks/scale.py --trials 10,100 --bookkeeping 0 --stacks ours,stock
    python benchmarks/scale.py --trials 100,500 --bookkeeping 0 --stacks ours,tuned   # against the tuned stack

Stacks: ``ours``; ``stock`` (Ray's defaults: a new worker process per trial); ``tuned``, the stock stack as a Ray user
tunes it (``reuse_actors=True``, Tune's automatic CSV/JSON/TensorBoard loggers off); ``tune``.

Rows:
- ``tiny``: ``trainables.tune.train_t2t`` on the embedded digits, t2t_vit_test (depth 2, embed_dim 48, token_dim 32),
  1 epoch, a space over ``optim.lr`` and ``model.drop_path_rate`` only, 1 CPU per trial (2 at a time here).
- ``bookkeeping``: a trainable that reports 4 results over about 1 s and computes nothing, 0.5 CPU per trial (4 at
  a time on 2 CPUs). Its ideal wall is the results its trials made x 0.25 s / 4 (ASHA stops some after 1 or 2);
  the goal is at most 1.15x of it. Ray's own release test (+14%) times Tune's run of the trials, so each row has
  both: the whole wall, and Tune's run (``Tuner.fit``) within it.

Each row runs in a fresh process (the driver: ours is ``search.run.main``, the stock one a plain ``Tuner``) that
measures itself: wall from the first line to the last, its own CPU time (every thread of the driver; not Ray's
GCS, raylet or workers) and its peak resident memory. The results-folder bytes are counted after it ends: Tune's
experiment folder, and apart from it the MLflow store. Ours writes its report at the end (part of its wall); its
final phase is off (``search.final.enabled=false``: the stock stack has none). The rows go to
benchmarks/results/scale.json, replacing the ones of the same stack, kind and trial count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY_BASE = {
    "model": {"name": "t2t_vit_test", "depth": 2, "embed_dim": 48, "token_dim": 32},
    "data": {"name": "digits", "augment": False, "batch_size": 64},
    "optim": {"lr": 2.0e-3, "warmup_epochs": 0.0},
    "train": {"epochs": 1},
}
SPACE = {
    "optim.lr": {"type": "float", "low": 1.0e-3, "high": 4.0e-3, "log": True},
    "model.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.2},
}
BOOKKEEPING_REPORTS = 4
BOOKKEEPING_S = 1.0
CPUS = {"tiny": 1.0, "bookkeeping": 0.5}
ROWS = Path(__file__).parent / "results" / "scale.json"


def bookkeeping(config: dict) -> None:
    """Four results over about a second, nothing computed: what the search's bookkeeping alone costs."""
    from ray import tune

    from contract import metrics as M
    from contract.status import COMPLETED, RUNNING

    lr, rate = config["optim"]["lr"], config["model"]["drop_path_rate"]
    best = 0.0
    for epoch in range(1, BOOKKEEPING_REPORTS + 1):
        time.sleep(BOOKKEEPING_S / BOOKKEEPING_REPORTS)
        acc = min(0.99, 0.5 + 0.1 * epoch * (1 - abs(lr - 2e-3) * 100) - rate)
        best = max(best, acc)
        last = epoch == BOOKKEEPING_REPORTS
        tune.report({M.EPOCH: epoch, M.VAL_ACC: acc, M.BEST_VAL_ACC: best, M.VAL_LOSS: 1 - acc, M.TRAIN_LOSS: 1 - acc,
                     M.PARAMS: 1000, M.MACS: 10000, M.STATUS: COMPLETED if last else RUNNING})  # fmt: skip


def slots(kind: str) -> int:
    """Trials at once on this machine's 2 CPUs."""
    return int(2 / CPUS[kind])


def base_config(kind: str) -> dict:
    epochs = BOOKKEEPING_REPORTS if kind == "bookkeeping" else TINY_BASE["train"]["epochs"]
    return {**TINY_BASE, "train": {"epochs": epochs}}


def run_ours(kind: str, trials: int, folder: Path) -> None:
    import yaml

    from search import driver
    from search.run import main

    config = {
        "name": "scale",
        "base": base_config(kind),
        "space": SPACE,
        "search": {"num_trials": trials, "grace_period": 1, "head_dim": None, "cpus_per_trial": CPUS[kind],
                   "final": {"enabled": False}},
        "tracking_uri": f"sqlite:///{folder}/mlflow.db",
    }  # fmt: skip
    (folder / "scale.yaml").write_text(yaml.safe_dump(config))
    if kind == "bookkeeping":
        driver.trial_function = lambda: bookkeeping
    rc = main(["--config", str(folder / "scale.yaml")])
    if rc != 0:
        raise SystemExit(f"t2t-search exited {rc}")


def tune_fit(kind: str, trials: int, folder: Path, tune_config: dict, run_config: dict) -> None:
    """A Tuner written with Tune's own API over the same trainable, space and ASHA as ours, on a local Ray;
    ``tune_config`` and ``run_config`` add what a stack sets."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from trainables.tune import train_t2t

    base = base_config(kind)
    space = {**base, "optim": {**base["optim"], "lr": tune.loguniform(1e-3, 4e-3)},
             "model": {**base["model"], "drop_path_rate": tune.uniform(0.0, 0.2)}}  # fmt: skip
    function = bookkeeping if kind == "bookkeeping" else train_t2t
    asha = ASHAScheduler(time_attr="epoch", max_t=base["train"]["epochs"], grace_period=1)
    ray.init(include_dashboard=False, log_to_driver=False)
    tune.Tuner(
        tune.with_resources(function, {"cpu": CPUS[kind]}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=asha, num_samples=trials, **tune_config),
        run_config=tune.RunConfig(name="scale", storage_path=str(folder / "ray_results"), verbose=0, **run_config),
    ).fit()
    ray.shutdown()


def run_stock(kind: str, trials: int, folder: Path) -> None:
    """The hand-glued stack, as Ray's docs write it: Tuner + OptunaSearch + ASHAScheduler + MLflowLoggerCallback."""
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    searcher = ConcurrencyLimiter(OptunaSearch(seed=0), max_concurrent=slots(kind))
    mlflow = MLflowLoggerCallback(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment_name="scale")
    tune_fit(kind, trials, folder, {"search_alg": searcher},
             {"callbacks": [mlflow], "checkpoint_config": tune.CheckpointConfig(num_to_keep=2)})  # fmt: skip


def run_tuned(kind: str, trials: int, folder: Path) -> None:
    """The hand-glued stack as a Ray user tunes it: the stock one with actors reused between trials (Ray's default
    starts a worker process per trial) and Tune's automatic file loggers (CSV, JSON, TensorBoard) off."""
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    searcher = ConcurrencyLimiter(OptunaSearch(seed=0), max_concurrent=slots(kind))
    mlflow = MLflowLoggerCallback(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment_name="scale")
    tune_fit(kind, trials, folder, {"search_alg": searcher, "reuse_actors": True},
             {"callbacks": [mlflow], "checkpoint_config": tune.CheckpointConfig(num_to_keep=2)})  # fmt: skip


def timed_fits() -> list[float]:
    """The seconds each ``Tuner.fit`` of this process takes from now on: Tune's own run of the trials, without the
    driver's start (imports, Ray, the stores) and end (ours: the summary and the report)."""
    from ray import tune

    spans, fit = [], tune.Tuner.fit

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fit(self, *args, **kwargs)
        finally:
            spans.append(time.perf_counter() - start)

    tune.Tuner.fit = timed
    return spans


def run_tune(kind: str, trials: int, folder: Path) -> None:
    """Tune alone, the floor under any stack built on it: the same trainable, scheduler, trials at once and actor
    reuse as ours, random values, no searcher, no tracking and no callbacks of its own."""
    tune_fit(kind, trials, folder, {"max_concurrent_trials": slots(kind), "reuse_actors": True}, {})


STACKS = {"ours": run_ours, "stock": run_stock, "tuned": run_tuned, "tune": run_tune}


def one(stack: str, kind: str, trials: int, folder: Path) -> dict:
    """One row, in this process: the driver's wall, Tune's run, the driver's CPU and peak memory."""
    os.chdir(folder)
    start = time.perf_counter()
    fits = timed_fits()
    STACKS[stack](kind, trials, folder)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "tune_fit_s": sum(fits), "driver_cpu_s": usage.ru_utime + usage.ru_stime,
            "driver_peak_mib": usage.ru_maxrss / 1024}  # fmt: skip


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def reported(results: Path) -> tuple[int, set[int]]:
    """The results Tune wrote, over every trial, and the trial workers' processes that made them (an actor reused
    by many trials counts once)."""
    lines = [line for path in results.glob("*/*/result.json") for line in path.read_text().splitlines()]
    return len(lines), {json.loads(line)["pid"] for line in lines if '"pid"' in line}


def measure(stack: str, kind: str, trials: int, scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{stack}-{kind}-{trials}-", dir=scratch))
    log = folder / "driver.log"
    command = [sys.executable, __file__, "--one", stack, kind, str(trials), str(folder)]
    code = commit()  # before the row: the code its process loads
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=4 * 3600)
    if done.returncode != 0:
        raise SystemExit(f"{stack} {kind} x{trials} failed ({done.returncode}); see {log}")
    row = json.loads(log.read_text().strip().splitlines()[-1])
    results = folder_bytes(folder / "ray_results")
    mlflow = folder_bytes(folder / "mlruns") + sum(f.stat().st_size for f in folder.glob("mlflow.db*"))
    row.update(stack=stack, kind=kind, trials=trials, measured=time.strftime("%Y-%m-%d"), commit=code,
               trials_per_min=60 * trials / row["wall_s"], driver_cpu_per_trial_s=row["driver_cpu_s"] / trials,
               results_bytes_per_trial=results / trials,
               mlflow_bytes_per_trial=mlflow / trials, folder=str(folder))  # fmt: skip
    if kind == "bookkeeping":  # ASHA stops some early: the ideal is the results the trials made, end to end
        made, pids = reported(folder / "ray_results")
        row["slots_used"] = len(pids)  # fewer than slots(kind): Tune left one idle
        row["ideal_s"] = made * BOOKKEEPING_S / BOOKKEEPING_REPORTS / slots(kind)
        row["of_ideal"] = row["wall_s"] / row["ideal_s"]
        row["fit_of_ideal"] = row["tune_fit_s"] / row["ideal_s"]
    return row


def commit() -> str:
    """The code measured: the checkout's commit, marked when the tree has changes."""
    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
    # The rows file changes as each row is saved: not a change to the code measured.
    status = ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":!/benchmarks/results"]
    dirty = subprocess.run(status, cwd=here, capture_output=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def table(rows: list[dict]) -> str:
    head = ("run", "trials", "stack", "wall (Tune's run)", "trials/min", "driver CPU/trial", "driver peak",
            "results/trial", "MLflow/trial", "vs stock", "vs tuned (Tune's run)", "of ideal (Tune's run)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["stack"], r["kind"], r["trials"]): r for r in rows}
    for r in rows:
        stock, tuned = by.get(("stock", r["kind"], r["trials"])), by.get(("tuned", r["kind"], r["trials"]))
        vs = f"{r['wall_s'] / stock['wall_s']:.2f}x" if stock else "-"
        vs_tuned = (
            f"{r['wall_s'] / tuned['wall_s']:.2f}x ({r['tune_fit_s'] / tuned['tune_fit_s']:.2f}x)" if tuned else "-"
        )
        ideal = f"{r['of_ideal']:.2f}x ({r['fit_of_ideal']:.2f}x) of {r['ideal_s']:.0f} s" if "of_ideal" in r else "-"
        lines.append(
            f"| {r['kind']} | {r['trials']} | {r['stack']} | {r['wall_s']:.0f} s ({r['tune_fit_s']:.0f} s) | "
            f"{r['trials_per_min']:.1f} | "
            f"{r['driver_cpu_per_trial_s']:.3f} s | {r['driver_peak_mib']:.0f} MiB | "
            f"{r['results_bytes_per_trial'] / 1024:.0f} KiB | {r['mlflow_bytes_per_trial'] / 1024:.0f} KiB | "
            f"{vs} | {vs_tuned} | {ideal} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", default="10,100,500", help="trial counts of the tiny config")
    parser.add_argument("--bookkeeping", type=int, default=1000, help="bookkeeping trials (0: none)")
    parser.add_argument("--stacks", default="ours,stock", help=f"of {', '.join(STACKS)}, for the tiny rows")
    parser.add_argument(
        "--bookkeeping-stacks", default="ours,tune,stock", help="for the bookkeeping row (tune: Tune alone, the floor)"
    )
    parser.add_argument(
        "--stock-max",
        type=int,
        default=None,
        help="run the stock stack's bookkeeping row at most this many trials (a new worker per trial: the slow one)",
    )
    parser.add_argument("--scratch", default=None, help="where the runs' folders go (default: a temp dir)")
    parser.add_argument("--one", nargs=4, metavar=("STACK", "KIND", "TRIALS", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        stack, kind, trials, folder = args.one
        print(json.dumps(one(stack, kind, int(trials), Path(folder))))
        return 0
    unknown = {s for names in (args.stacks, args.bookkeeping_stacks) for s in names.split(",")} - set(STACKS)
    if unknown:
        parser.error(f"unknown stack {', '.join(sorted(unknown))}: choose from {', '.join(STACKS)}")
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    plan = [("tiny", int(n), args.stacks) for n in args.trials.split(",") if n]
    if args.bookkeeping:
        plan.append(("bookkeeping", args.bookkeeping, args.bookkeeping_stacks))
    rows = []
    for i, (kind, trials, names) in enumerate(plan):
        stacks = names.split(",")
        for stack in stacks if i % 2 == 0 else stacks[::-1]:  # alternate who goes first: the machine drifts
            capped = stack == "stock" and kind == "bookkeeping" and args.stock_max
            rows.append(measure(stack, kind, min(trials, args.stock_max) if capped else trials, scratch))
            print(json.dumps(rows[-1]), flush=True)
            save(rows, ROWS)  # each row as it ends: a run takes hours
    print(table(rows))
    return 0


def save(rows: list[dict], out: Path) -> None:
    """Replace the rows this run measured and keep the others, each with the day it was measured."""
    key = lambda r: (r["stack"], r["kind"], r["trials"])  # noqa: E731
    measured = {key(r) for r in rows}
    kept = [r for r in json.loads(out.read_text()) if key(r) not in measured] if out.exists() else []
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(kept + rows, indent=1))
    partial.replace(out)  # a run stopped while saving leaves the last complete file


if __name__ == "__main__":
    raise SystemExit(main())
