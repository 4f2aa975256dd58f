"""A finished trial's cached actor goes to a pending trial only when that trial has no worker of its own starting."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.execution.tune_controller import TuneController
from ray.tune.utils.object_cache import _ObjectCache

from search import actor_reuse

RESOURCES = "0.5 CPU"


class Trial:
    placement_group_factory = RESOURCES


def controller(own_started: bool | None) -> SimpleNamespace:
    """The state Tune's reuse reads: one cached actor, and a pending trial whose own actor is starting (True),
    only requested (False) or absent (None)."""
    cache = _ObjectCache(may_keep_one=True)
    cache.increase_max(RESOURCES)
    cache.cache_object(RESOURCES, "cached actor")
    trial = Trial()
    own = {} if own_started is None else {trial: "own actor"}
    manager = SimpleNamespace(is_actor_started=lambda actor: own_started and actor == "own actor")
    return SimpleNamespace(_actor_cache=cache, _trial_to_actor=own, _resetting_trials=set(), _actor_manager=manager,
                           trial=trial)  # fmt: skip


def test_a_trial_whose_own_worker_is_starting_leaves_the_cached_actor_for_the_next(monkeypatch):
    handed = []
    monkeypatch.setattr(TuneController, "_maybe_reuse_cached_actor", lambda self, trial: handed.append(trial) or True)
    actor_reuse.install()
    installed = TuneController._maybe_reuse_cached_actor
    actor_reuse.install()
    assert TuneController._maybe_reuse_cached_actor is installed  # once only: the wrapper is not wrapped again

    starting = controller(own_started=True)
    assert TuneController._maybe_reuse_cached_actor(starting, starting.trial) is False
    assert handed == [] and starting._actor_cache.has_cached_object(RESOURCES)

    for own_started in (False, None):  # only requested (cancelled for free), or no actor yet: Tune's own reuse
        state = controller(own_started)
        assert TuneController._maybe_reuse_cached_actor(state, state.trial) is True
    assert len(handed) == 2


def test_a_resetting_trial_is_left_to_tune(monkeypatch):
    monkeypatch.setattr(TuneController, "_maybe_reuse_cached_actor", lambda self, trial: "tune's answer")
    actor_reuse.install()
    state = controller(own_started=True)
    state._resetting_trials.add(state.trial)
    assert TuneController._maybe_reuse_cached_actor(state, state.trial) == "tune's answer"
