"""Tune's reused actors given only to trials that have no worker of their own on the way.

With ``reuse_actors``, Ray 2.60's ``TuneController._maybe_reuse_cached_actor`` hands a finished trial's actor to a
pending trial even when that trial's own actor has been created already (its worker process is starting), and
removes the new one. A trial shorter than a worker's start then keeps the next pending trial in that state: one
slot only ever starts workers that are killed before they run anything. Measured with 1,000 one-second trials on 4
slots (``benchmarks/scale.py``): 1 run in 7 ran on 3 slots for its whole length, 152 workers started and removed,
Tune's run 1.55x of the ideal against 1.11-1.13x. ``install`` keeps the cached actor for the next trial instead;
the pending trial runs on the worker it already has.
"""

from __future__ import annotations


def install() -> None:
    from ray.tune.execution.tune_controller import TuneController

    reuse = TuneController._maybe_reuse_cached_actor
    if getattr(reuse, "_own_first", False):
        return

    def maybe_reuse_cached_actor(self: TuneController, trial) -> bool:
        own = self._trial_to_actor.get(trial)
        if trial not in self._resetting_trials and own is not None and self._actor_manager.is_actor_started(own):
            return False  # its own worker is starting: the cached one goes to the next trial Tune adds
        return reuse(self, trial)

    maybe_reuse_cached_actor._own_first = True
    TuneController._maybe_reuse_cached_actor = maybe_reuse_cached_actor
