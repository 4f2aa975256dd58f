"""The cost of training one run on two processes (DDP over gloo, trainables.ranks) against one process with the same
CPUs: seconds per epoch of the default digits config, one process of 2 torch threads vs 2 ranks of 1 thread each,
interleaved; and what the two ranks cost before their first step (starting the processes, importing torch,
joining the group, building the data and the model).

    .venv/bin/python benchmarks/ddp_cost.py [--epochs 4] [--repeats 3]

No Ray: a search's trial adds its worker actor's start (tests/trainables/test_trial_ranks.py runs that path).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import time
from pathlib import Path

import torch

from trainables.config import TrainConfig
from trainables.loop import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "ddp_cost.json"


def _epoch_times(trainer: Trainer) -> list[float]:
    times = []
    for _ in trainer.epochs():
        times.append(trainer.history[-1]["epoch_time_s"])
    return times


def _rank(rank: int, address: str, epochs: int, started: float, queue) -> None:
    from trainables.ranks import join, leave

    torch.set_num_threads(1)
    group = join(address, rank, 2, torch.device("cpu"))
    trainer = Trainer(TrainConfig.load(None, [f"train.epochs={epochs}"]), torch.device("cpu"), group=group)
    ready = time.time() - started
    times = _epoch_times(trainer)
    leave(together=True)
    queue.put((rank, ready, times))


def one_process(epochs: int) -> list[float]:
    torch.set_num_threads(2)
    return _epoch_times(Trainer(TrainConfig.load(None, [f"train.epochs={epochs}"]), torch.device("cpu")))


def two_ranks(epochs: int) -> tuple[float, list[float]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    started = time.time()
    procs = [spawn.Process(target=_rank, args=(r, address, epochs, started, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    ready = max(r[1] for r in results)
    return ready, results[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    one, two, ready = [], [], []
    for _ in range(args.repeats):  # interleaved: this machine's speed drifts
        one += one_process(args.epochs)[1:]  # the first epoch warms up
        r, times = two_ranks(args.epochs)
        ready.append(r)
        two += times[1:]
    out = {
        "epoch_s_one_process_2_threads": statistics.median(one),
        "epoch_s_two_ranks_1_thread_each": statistics.median(two),
        "ratio_two_ranks_to_one": statistics.median(two) / statistics.median(one),
        "two_ranks_ready_s": statistics.median(ready),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "torch": torch.__version__,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
