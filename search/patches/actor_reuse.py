"""Tune's reused actors given only to trials that have no worker of their own on the way.

With ``reuse_actors``, Ray 2.60's ``TuneController._maybe_reuse_cached_actor`` hands a finished trial's actor to a
pending trial even when that trial's own actor has been created already (its worker process is starting), and
removes the new one. A trial shorter than a worker's start then keeps the next pending trial in that state: one
slot only ever starts workers that are killed before they run anything (benchmarks/README.md, section 10).
Patched: the cached actor is kept for the next trial Tune adds; the pending trial runs on the worker it has.
"""

from __future__ import annotations

from search.patches._patch import ray_patch


def _make(reuse):
    def maybe_reuse_cached_actor(self, trial) -> bool:
        own = self._trial_to_actor.get(trial)
        if trial not in self._resetting_trials and own is not None and self._actor_manager.is_actor_started(own):
            return False  # its own worker is starting: the cached one goes to the next trial Tune adds
        return reuse(self, trial)

    return maybe_reuse_cached_actor


PATCH = ray_patch(
    name="actor_reuse",
    target="ray.tune.execution.tune_controller:TuneController._maybe_reuse_cached_actor",
    make=_make,
    fingerprints={"ray.tune.execution.tune_controller:TuneController._maybe_reuse_cached_actor": "4c3099edac149320"},
    upstream="ray-project/ray PR #36020 (the swap, meant for an actor only requested; no report of this case, 2026-12)",
)
