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


def check_resources(cpus: float, gpus: float, nodes: list[dict[str, Any]], autoscaling: bool) -> None:
    """``nodes``: ``ray.nodes()``; raise ``ResourceError`` unless some alive node fits one trial's request."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in alive):
        return
    cpu_max = max((r.get("CPU", 0) for r in alive), default=0)
    gpu_max = max((r.get("GPU", 0) for r in alive), default=0)
    name, asked, has = (
        ("search.cpus_per_trial", cpus, cpu_max) if cpu_max < cpus else ("search.gpus_per_trial", gpus, gpu_max)
    )
    what = f"{name}={asked:g} but the largest node has {has:g} {'CPUs' if 'cpus' in name else 'GPUs'}"
    if autoscaling:
        log.warning("warning: %s now: trials wait until the autoscaler adds a node that fits, for as long as "
                    "search.time_budget_s allows (unbounded without it)", what)  # fmt: skip
        return
    raise ResourceError(f"{what}: no trial could ever start; lower {name} or add a node that has them")


def check_cluster(cpus: float, gpus: float, joined: bool) -> None:
    """``check_resources`` on the Ray this process is connected to. A local Ray (``joined`` False) never grows; a
    joined cluster may have an autoscaler, which is not visible from here, so there it is a warning."""
    import ray

    check_resources(cpus, gpus, ray.nodes(), autoscaling=joined)


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
