"""A real MLflow record of a large search, for benchmarks that report on one: a parent run and N child trial runs in
an sqlite store, with the tags, params and per-epoch metrics ``search.tracking.tracker`` writes.

The configurations are real: the default search space (``search.experiment.search_config.DEFAULT_SPACE``, over 8 epochs
with ASHA rungs at epochs 1, 2 and 4), sampled by Optuna's RandomSampler, each trial's params the flattened config
``search.study.space.SearchSpace.apply`` builds and its size ``t2t.complexity``'s count. The numbers are SYNTHETIC: each
trial's final val_acc is a smooth function of its parameters plus noise (``_final_acc``), its curve rises towards it
(``_curve``), ASHA's asynchronous rule stops trials at the rungs (with ``asha=False`` none is stopped), and about 1.5%
diverge and 0.5% fail. Trial 0 is the baseline (the base config's own values). Two trials run at a time on a
simulated clock.

Writes go through ``MlflowClient`` (three calls a trial: ``create_run`` with the run's final tags, one ``log_batch``
of its params and every epoch's metrics at ``step=epoch``, ``set_terminated``), never through SQL. The store is
cached: a folder whose ``record.json`` matches the trials, seed and settings asked for is reused as it is.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME = "report-scale"
SETTINGS = ["base.train.epochs=8", "search.grace_period=1", "search.reduction_factor=2"]
START_S = 1.77e9  # the simulated search's first second (a fixed date: the record is the same every time)
DIVERGE_P, FAIL_P = 0.015, 0.005
MODEL = 2  # the synthetic model's revision: a cached record made by another is made again


@dataclass
class Trial:
    trial_id: str
    values: dict[str, Any]  # the sampled parameters
    config: dict[str, Any]  # the trial's whole training config
    params: int
    macs: int
    baseline: bool = False


def _final_acc(v: dict[str, Any], rng: random.Random) -> float:
    """SYNTHETIC: what the trial would reach in 8 epochs. Best near lr 2.2e-3, deeper and wider a little better,
    regularisation a little worse on 1,079 images."""
    acc = 0.975 - 0.15 * math.log(v["optim.lr"] / 2.2e-3) ** 2 + 0.004 * (v["model.depth"] - 3)
    acc += 0.005 * (v["model.embed_dim"] == 128) + 0.003 * (v["model.tokens_type"] == "transformer")
    acc -= 0.2 * v["model.drop_path_rate"] + 0.1 * v["model.drop_rate"] + 0.05 * v["model.attn_drop_rate"]
    return min(0.995, acc + rng.gauss(0, 0.01))


def _curve(final: float, lr: float, epochs: int, rng: random.Random) -> list[float]:
    """SYNTHETIC: rising towards ``final``, faster with a higher lr, from a start that varies."""
    start, pace = rng.uniform(0.15, 0.6), 1.5 * (2.2e-3 / lr) ** 0.7 * rng.uniform(0.7, 1.4)
    rise = [1 - (1 - start) * math.exp(-(e - 1) / pace) for e in range(1, epochs + 1)]
    return [min(0.999, final * r + rng.gauss(0, 0.006)) for r in rise]


class Asha:
    """Ray's asynchronous successive halving: at a rung, a trial stops if its value is below the (1 - 1/rf) quantile
    of every value recorded there so far, its own included."""

    def __init__(self, rungs: list[int], factor: float) -> None:
        self.recorded: dict[int, list[float]] = {r: [] for r in rungs}
        self.factor = factor

    def stops(self, epoch: int, value: float) -> bool:
        if epoch not in self.recorded:
            return False
        values = sorted([*self.recorded[epoch], value])
        self.recorded[epoch] = values
        cutoff = values[min(len(values) - 1, int(len(values) * (1 - 1 / self.factor)))]
        return value < cutoff


def sample_trials(cfg: Any, n: int, seed: int) -> list[Trial]:
    """``n`` configurations of ``cfg``'s space (the first one the base config's own values), with their sizes."""
    import optuna

    import t2t
    from search.study.searcher import channels_and_classes
    from trainables.config import TrainConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, base = cfg.search_space, cfg.base.to_dict()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trials = []
    for i in range(n):
        values = space.base_values(base)[0] if i == 0 else space.sample(study.ask())
        config = space.apply(base, values)
        tc = TrainConfig.from_dict(config)
        cost = t2t.complexity(tc.model.build_config(tc.data.img_size, *channels_and_classes(tc.data)))
        trials.append(Trial(f"{seed:05x}_{i:05d}", values, config, cost.params, cost.macs, baseline=i == 0))
    return trials


def simulate(trial: Trial, epochs: int, asha: Asha, rng: random.Random) -> tuple[list[dict], str, str | None]:
    """The trial's epochs (metric name -> value), its status and reason."""
    curve = _curve(_final_acc(trial.values, rng), trial.values["optim.lr"], epochs, rng)
    breaks = rng.random()
    diverge_at = rng.randint(1, epochs) if breaks < DIVERGE_P and not trial.baseline else None
    fail_at = rng.randint(2, epochs) if DIVERGE_P <= breaks < DIVERGE_P + FAIL_P else None
    rows, best = [], 0.0
    epoch_s = 3.0 + trial.macs / 2e6 + rng.uniform(-0.5, 0.5)
    for e, acc in enumerate(curve, start=1):
        if e == fail_at:
            return rows, "failed", "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed."
        if e == diverge_at:
            rows.append({"epoch": e, "train_loss": float("nan"), "epoch_time_s": epoch_s})
            return rows, "diverged", f"loss became nan in epoch {e}, by step {34 * e}"
        best = max(best, acc)
        lr = trial.values["optim.lr"] * 0.5 * (1 + math.cos(math.pi * (e - 1) / epochs))
        rows.append({"epoch": e, "train_loss": 2.3 * (1 - acc) + 0.02, "val_loss": 2.5 * (1 - acc) + 0.03,
                     "val_acc": acc, "val_acc5": min(1.0, acc + 0.5 * (1 - acc)), "best_val_acc": best, "lr": lr,
                     "epoch_time_s": epoch_s, "images_per_s": 1079 / epoch_s})  # fmt: skip
        if e < epochs and asha.stops(e, acc):
            return rows, "pruned", None
    return rows, "completed", None


def _metrics(rows: list[dict], start_s: float, trial: Trial) -> tuple[list, float]:
    """Every epoch's numbers at step=epoch (params and macs at step 0, as ``search.tracking.writes.LogEpoch`` logs
    them), stamped on the simulated clock; and the clock at the trial's end."""
    from mlflow.entities import Metric

    clock, out = start_s, []
    for row in rows:
        clock += row["epoch_time_s"]
        ms = int(clock * 1000)
        out += [Metric(k, float(v), ms, row["epoch"]) for k, v in row.items()]
        if row["epoch"] == 1:
            out += [Metric("params", float(trial.params), ms, 0), Metric("macs", float(trial.macs), ms, 0)]
    return out, clock


def _tags(trial: Trial, parent_id: str, status: str, reason: str | None, node: str) -> dict[str, str]:
    from contract import tracking as T

    tags = {T.ROLE_TAG: T.ROLE_TRIAL, T.PARENT_RUN_TAG: parent_id, T.TRIAL_ID_TAG: trial.trial_id, "status": status,
            T.NODE_IP_TAG: node, T.NODE_IPS_TAG: node}  # fmt: skip
    if reason:
        tags["reason"] = reason
    if trial.baseline:
        tags[T.BASELINE_TAG] = "true"
    return tags


def _write_trial(client: Any, exp_id: str, parent_id: str, trial: Trial, sim: tuple, start_s: float) -> float:
    """One trial's run as the tracker leaves it once the trial ended; returns the clock at its end."""
    from mlflow.entities import Param

    from contract.flat import flatten
    from contract.status import RUN_STATUS

    rows, status, reason = sim
    node = f"10.0.0.{1 + int(trial.trial_id[-5:]) % 4}"
    run = client.create_run(exp_id, start_time=int(start_s * 1000), run_name=f"trial-{trial.trial_id}",
                            tags=_tags(trial, parent_id, status, reason, node))  # fmt: skip
    metrics, end_s = _metrics(rows, start_s, trial)
    params = [Param(k, str(v)[:6000]) for k, v in flatten(trial.config).items()]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id, RUN_STATUS[status], end_time=int(end_s * 1000))
    return end_s


def build(store: Path, n: int, seed: int = 0, asha: bool = True) -> tuple[str, str]:
    """The record of an ``n``-trial search in ``store`` (reused if it is already there), with ASHA or (``asha``
    false: ``search.scheduler=none``) every trial trained to the end; its tracking URI and experiment name."""
    from mlflow.tracking import MlflowClient

    from contract.files import STUDY_JOURNAL
    from contract.tracking import EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING
    from search.driver import open_parent
    from search.experiment.search_config import SearchConfig
    from search.tracking.tracker import MlflowTracker

    uri, marker = f"sqlite:///{store / 'mlflow.db'}", store / "record.json"
    settings = SETTINGS if asha else [*SETTINGS, "search.scheduler=none"]
    wanted = {"trials": n, "seed": seed, "settings": settings, "model": MODEL}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return uri, NAME
    if (store / "mlflow.db").exists():
        raise SystemExit(f"--store {store} holds another record: give an empty or new folder")
    store.mkdir(parents=True, exist_ok=True)
    cfg = SearchConfig.load(assignments=[*settings, f"search.num_trials={n}", f"search.seed={seed}"], name=NAME)
    client = MlflowClient(uri)
    exp_id = client.create_experiment(NAME, artifact_location=(store / "artifacts").as_uri(),
                                      tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING})  # fmt: skip
    tracker = MlflowTracker(uri, NAME, f"scale-{seed}")
    parent_id = open_parent(cfg, tracker, str(store / STUDY_JOURNAL))
    rng, epochs = random.Random(seed), cfg.base.train.epochs
    scheduler = Asha([1, 2, 4] if asha else [], cfg.search.reduction_factor)
    slots = [START_S, START_S]  # two trials at a time: each starts when the earlier of the two ends
    began = time.perf_counter()
    for trial in sample_trials(cfg, n, seed):
        slot, sim = slots.index(min(slots)), simulate(trial, epochs, scheduler, rng)
        slots[slot] = _write_trial(client, exp_id, parent_id, trial, sim, slots[slot])
    client.set_terminated(parent_id, "FINISHED", end_time=int(max(slots) * 1000))
    marker.write_text(json.dumps(wanted))
    print(f"wrote {n} trial runs to {uri} in {time.perf_counter() - began:.0f} s")
    return uri, NAME
