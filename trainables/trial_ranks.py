"""A Tune trial on several processes: its placement group's bundles are its ranks (``trainables.ranks``).

The trial's own process, in the first bundle, is rank 0: it restores, reports and checkpoints as a one-process trial
does, so Tune, the schedulers and the searcher see one trial whatever its size. It starts one ``RankWorker`` actor in
each other bundle, which trains the same configuration from the same state in lockstep (every step's gradients are
averaged over the ranks) and reports nothing. Tune reserves every bundle, so a trial starts only where all its ranks
fit; the workers are the trial process's own actors, so they end with it, or when it ends them on leaving.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

import ray
import torch
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from trainables.config import TrainConfig
from trainables.loop import Diverged, Trainer
from trainables.ranks import ONE, Group, join, leave

log = logging.getLogger(__name__)


def trial_device(cfg: TrainConfig) -> torch.device:
    """The GPU Ray assigned to this trial's process (Ray sets CUDA_VISIBLE_DEVICES), else the CPU."""
    if cfg.train.device != "cpu" and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if cfg.train.device == "cuda":
        raise RuntimeError("train.device=cuda but Ray assigned this process no GPU; set search.gpus_per_trial")
    return torch.device("cpu")


def cpu_share() -> int:
    """Whole CPUs Ray assigned to this process (at least 1): two 1-thread trials beat one 2-thread trial."""
    assigned = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(assigned.get("CPU", 1)))


@ray.remote(max_restarts=0)
class RankWorker:
    """Rank ``rank`` of ``size`` of a trial whose rank 0 listens at ``address``."""

    def __init__(self, config: dict[str, Any], rank: int, size: int, address: str, owner: str | None) -> None:
        cfg = TrainConfig.from_dict(config)
        torch.set_num_threads(cpu_share())
        device = trial_device(cfg)
        group = join(address, rank, size, device, own_ip=ray.util.get_node_ip_address())
        self.trainer = Trainer(cfg, device, owner=owner, group=group)

    def train(self, state: dict[str, Any] | None) -> int:
        """Every remaining epoch from ``state`` (rank 0's checkpoint, or None at the start); the epochs trained."""
        if state is not None:
            self.trainer.load_state_dict(state)
        try:
            for _ in self.trainer.epochs():
                pass
        except Diverged:  # every rank sees the same summed loss and stops at the same epoch; rank 0 reports it
            pass
        except BaseException:
            leave()
            raise
        leave(together=True)
        return self.trainer.epoch


class TrialRanks:
    """Rank 0's side of a trial: ``with TrialRanks(config, owner, device) as ranks`` joins the trial's workers,
    one per further bundle of its placement group, as ``ranks.group`` (no further bundle: ``ONE``);
    ``start(state)`` sets them training, ``finish()`` waits for them. Leaving ends them, whatever happened."""

    def __init__(self, config: dict[str, Any], owner: str | None, device: torch.device) -> None:
        self.config, self.owner, self.device = config, owner, device
        self.group: Group = ONE
        self.workers: list = []
        self.running: list = []

    def __enter__(self) -> TrialRanks:
        bundles = _bundles()
        if len(bundles) < 2:
            return self
        ip = ray.util.get_node_ip_address()
        address = f"{ip}:{_free_port(ip)}"
        pg = ray.util.get_current_placement_group()
        try:
            for index, bundle in enumerate(bundles[1:], start=1):
                strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
                resources = dict(num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0))
                worker = RankWorker.options(**resources, scheduling_strategy=strategy)
                self.workers.append(worker.remote(self.config, index, len(bundles), address, self.owner))
            self.group = join(address, 0, len(bundles), self.device, own_ip=ip)
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self, state: dict[str, Any] | None) -> None:
        """The workers train every remaining epoch from ``state`` (the one rank 0 continues from; the object store
        holds one copy for them all)."""
        ref = ray.put(state)
        self.running = [w.train.remote(ref) for w in self.workers]

    def finish(self) -> None:
        """Leave with the workers after the run's last epoch (or its divergence, which every rank sees at the same
        epoch); a worker that failed raises here."""
        if self.workers:
            leave(together=True)
            ray.get(self.running)

    def __exit__(self, *exc: object) -> None:
        leave()
        if exc and exc[0] is not None:
            self._say_why_workers_failed()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                ray.kill(worker)

    def _say_why_workers_failed(self) -> None:
        """Rank 0 failing sees only a closed connection: the log names the worker's own error, where it had one (a
        worker that failed has ended by then; one that Tune's stop left mid-step is not waited for)."""
        done, _ = ray.wait(self.running, num_returns=len(self.running), timeout=1) if self.running else ([], [])
        for ref in done:
            try:
                ray.get(ref)
            except Exception as e:
                log.error("a worker rank of trial %s failed: %s", self.owner, e)


def _bundles() -> list[dict[str, float]]:
    """The resources of each bundle of this trial's placement group ([] outside one)."""
    pg = ray.util.get_current_placement_group()
    return list(pg.bundle_specs) if pg is not None else []


def _free_port(ip: str) -> int:
    """A port free on this node's address now (for rank 0's rendezvous, which binds it next)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]
