"""After Ray is up and before any trial or run exists: can one trial ever be placed, and how many run at once?

A trial that asks for more CPUs than any node has, or for a GPU on a cluster without one, waits "pending" forever
in Tune. On a joined cluster an autoscaler may still add a bigger node: there, say what is waited for, and for how long.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class ResourceError(ValueError):
    """No node of the cluster (or that it may add) can run one trial; the message names the resource."""


def check_resources(cpus: float, gpus: float, nodes: list[dict[str, Any]], autoscaling: bool, workers: int = 1) -> None:
    """``nodes``: ``ray.nodes()``; raise ``ResourceError`` unless the alive nodes fit one trial's request: its
    ``workers`` processes, each with an equal share of ``cpus`` and ``gpus``, on one node or several."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if workers > 1:
        _check_spread(cpus / workers, gpus / workers, workers, alive, autoscaling)
        return
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in alive):
        return
    cpu_max = max((r.get("CPU", 0) for r in alive), default=0)
    gpu_max = max((r.get("GPU", 0) for r in alive), default=0)
    name, asked, has = (
        ("search.cpus_per_trial", cpus, cpu_max) if cpu_max < cpus else ("search.gpus_per_trial", gpus, gpu_max)
    )
    what = f"{name}={asked:g} but the largest node has {has:g} {'CPUs' if 'cpus' in name else 'GPUs'}"
    _refuse(what, f"lower {name} or add a node that has them", autoscaling)


def _check_spread(cpus: float, gpus: float, workers: int, alive: list[dict], autoscaling: bool) -> None:
    """``check_resources`` for a trial of ``workers`` processes of ``cpus`` and ``gpus`` each."""

    def held(r: dict) -> int:  # how many such workers a node holds
        fits = [r.get("CPU", 0) / cpus] + ([r.get("GPU", 0) / gpus] if gpus else [])
        return int(min(fits) + 1e-9)

    holds = sum(held(r) for r in alive)
    if holds >= workers:
        return
    each = f"{cpus:g} CPUs" + (f" and {gpus:g} GPUs" if gpus else "")
    what = f"search.workers_per_trial={workers} workers of {each} each, but the cluster's nodes hold {holds}"
    _refuse(what, "lower search.workers_per_trial or add nodes", autoscaling)


def _refuse(what: str, fix: str, autoscaling: bool) -> None:
    """A trial the nodes cannot hold: an error, or where an autoscaler may add nodes a warning that trials wait."""
    if autoscaling:
        log.warning("warning: %s now: trials wait until the autoscaler adds nodes that fit, for as long as "
                    "search.time_budget_s allows (unbounded without it)", what)  # fmt: skip
        return
    raise ResourceError(f"{what}: no trial could ever start; {fix}")


def check_cluster(cpus: float, gpus: float, joined: bool, workers: int = 1) -> None:
    """``check_resources`` on the Ray this process is connected to. A local Ray (``joined`` False) never grows; a
    joined cluster may have an autoscaler, which is not visible from here, so there it is a warning."""
    import ray

    check_resources(cpus, gpus, ray.nodes(), autoscaling=joined, workers=workers)


def trial_resources(cpus: float, gpus: float, workers: int):
    """What Tune reserves for a trial: its CPUs and GPUs, or with several workers one bundle of an equal share each
    (``trainables.trial_ranks``: the trial's process is the first, its other workers the rest), packed on as few
    nodes as hold them."""
    if workers == 1:
        return {"cpu": cpus, "gpu": gpus}
    from ray import tune

    bundle = {"CPU": cpus / workers, **({"GPU": gpus / workers} if gpus else {})}
    return tune.PlacementGroupFactory([bundle] * workers, strategy="PACK")


def trials_at_once(max_concurrent: int | None, cpus: float, gpus: float, joined: bool) -> int | None:
    """Tune's ``max_concurrent_trials``: the user's ``search.max_concurrent``; on a local Ray (it never grows) as
    many trials as fit. Without a cap, Tune's reused actors raced its pending trials' placement groups for the
    CPUs, and short trials ran on fewer slots than fit (benchmarks/README.md, section 10). A joined cluster stays
    uncapped: its pending trials are what ask an autoscaler for nodes (set ``search.max_concurrent`` there to what
    the cluster may grow to)."""
    if max_concurrent or joined:
        return max_concurrent
    return trial_slots(cpus, gpus)


def trial_slots(cpus: float, gpus: float) -> int:
    """How many trials the Ray this process is connected to runs at once now (at least 1)."""
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 0) / cpus] + ([total.get("GPU", 0) / gpus] if gpus else [])
    return max(1, int(min(fits) + 1e-9))


def reuse_actors(workers: int) -> bool:
    """Whether Tune hands a finished trial's process to the next trial: for one-process trials (a new trial skips a
    process start, ~3 s of torch imports on a laptop), not for trials of several, whose process may still be leaving
    its group when Tune resets it (Tune gives up after 2 s, and a resumed search of two-process trials then waited
    with no trial running)."""
    return workers == 1
