"""A finished trial's cached actor goes to a pending trial only when that trial has no worker of its own starting;
otherwise Tune's own reuse runs (the controller here is the state that method reads and the calls it makes)."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.execution.tune_controller import TuneController
from ray.tune.utils.object_cache import _ObjectCache

from search import actor_reuse

RESOURCES = "0.5 CPU"


class Trial:
    placement_group_factory, config, experiment_tag = RESOURCES, {}, "tag"

    def set_ray_actor(self, actor) -> None:
        self.ray_actor = actor


def controller(own_started: bool | None) -> SimpleNamespace:
    """One cached actor, and a pending trial whose own actor is starting (True), only requested (False) or absent
    (None); ``removed`` and ``reset`` record what Tune's reuse did."""
    cache = _ObjectCache(may_keep_one=True)
    cache.increase_max(RESOURCES)
    cache.cache_object(RESOURCES, "cached actor")
    trial = Trial()
    own = {} if own_started is None else {trial: "own actor"}
    manager = SimpleNamespace(
        is_actor_started=lambda actor: own_started and actor == "own actor",
        _live_actors_to_ray_actors_resources={"cached actor": ("ray actor", None)},
    )
    state = SimpleNamespace(
        _actor_cache=cache,
        _trial_to_actor=own,
        _actor_to_trial={v: k for k, v in own.items()},
        _resetting_trials=set(),
        _actor_manager=manager,
        trial=trial,
        removed=[],
        reset=[],
    )
    state._remove_actor = lambda tracked_actor: state.removed.append(tracked_actor)
    state._schedule_trial_reset = lambda trial, config, tag: state.reset.append(trial)
    return state  # fmt: skip


def test_a_trial_whose_own_worker_is_starting_leaves_the_cached_actor_for_the_next():
    actor_reuse.install()
    installed = TuneController._maybe_reuse_cached_actor
    actor_reuse.install()
    assert TuneController._maybe_reuse_cached_actor is installed  # once only: the wrapper is not wrapped again

    starting = controller(own_started=True)
    assert TuneController._maybe_reuse_cached_actor(starting, starting.trial) is False
    assert starting._actor_cache.has_cached_object(RESOURCES)
    assert starting._trial_to_actor[starting.trial] == "own actor" and starting.removed == starting.reset == []


def test_a_trial_with_no_worker_starting_takes_the_cached_actor():
    actor_reuse.install()
    requested = controller(own_started=False)  # its request is cancelled: nothing was started for it
    assert TuneController._maybe_reuse_cached_actor(requested, requested.trial) is True
    assert requested._trial_to_actor[requested.trial] == "cached actor" and requested.removed == ["own actor"]
    fresh = controller(own_started=None)
    assert TuneController._maybe_reuse_cached_actor(fresh, fresh.trial) is True
    assert fresh.trial.ray_actor == "ray actor" and fresh.reset == [fresh.trial] and fresh.removed == []
    assert not fresh._actor_cache.has_cached_object(RESOURCES)


def test_a_resetting_trial_is_left_to_tune():
    actor_reuse.install()
    state = controller(own_started=True)
    state._resetting_trials.add(state.trial)
    assert TuneController._maybe_reuse_cached_actor(state, state.trial) is True  # Tune's answer: reset under way
    assert state._actor_cache.has_cached_object(RESOURCES) and state.reset == []
