"""search.patches.actor_reuse: a finished trial's cached actor goes to a pending trial only when that trial has no
worker of its own starting. Tune's real controller, driven through a fake actor manager (as Ray's own tests do)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial

from search.patches.actor_reuse import PATCH
from tests.search.patches.conftest import TRAINABLE, storage

CACHED, OWN = "cached actor", "own actor"


class _RayActor:
    """The Ray actor behind the cached one: what a trial asks it for when it is handed over."""

    class get_auto_filled_metrics:  # noqa: N801 -- Ray's method name, called as .remote()
        @staticmethod
        def remote(debug_metrics_only: bool) -> str:
            return "metrics pending"


RAY_ACTOR = _RayActor()


class _Actors:
    """The actor manager's side of the reuse: which actors have started, and what the controller asked of them."""

    def __init__(self, started: set[str]) -> None:
        self.started, self.removed, self.tasks = started, [], []
        self._live_actors_to_ray_actors_resources = {CACHED: (RAY_ACTOR, None)}

    def is_actor_started(self, actor: str) -> bool:
        return actor in self.started

    def schedule_actor_task(self, tracked_actor: str, method_name: str, **kwargs) -> None:
        self.tasks.append((tracked_actor, method_name))

    def remove_actor(self, tracked_actor: str, kill: bool = False, stop_future=None) -> bool:
        self.removed.append(tracked_actor)
        return True


def _pending(controller, tmp_path, own: str | None, started: bool) -> tuple[Trial, _Actors]:
    """A pending trial whose own actor is starting (``started``), only requested, or absent (``own`` None), and a
    finished trial's actor in the cache."""
    trial = Trial(TRAINABLE, config={}, storage=storage(tmp_path))
    actors = _Actors({own} if own and started else set())
    controller._actor_manager = actors
    controller._actor_cache.increase_max(trial.placement_group_factory)
    controller._actor_cache.cache_object(trial.placement_group_factory, CACHED)
    if own:
        controller._trial_to_actor[trial], controller._actor_to_trial[own] = own, trial
    return trial, actors


def _cached(controller, trial) -> bool:
    return controller._actor_cache.has_cached_object(trial.placement_group_factory)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Ray swaps a started worker for the cached one: passes once upstream fixes it",
)
def test_stock_tune_leaves_a_starting_worker_alone(controller, tmp_path):
    trial, actors = _pending(controller, tmp_path, OWN, started=True)
    with PATCH.applied(installed=False):
        reused = controller._maybe_reuse_cached_actor(trial)
    assert not reused and actors.removed == []


def test_patched_tune_leaves_a_starting_worker_alone_and_keeps_the_cached_actor(controller, tmp_path):
    trial, actors = _pending(controller, tmp_path, OWN, started=True)
    with PATCH.applied():
        assert controller._maybe_reuse_cached_actor(trial) is False
    assert _cached(controller, trial) and controller._trial_to_actor[trial] == OWN
    assert actors.removed == actors.tasks == []


@pytest.mark.parametrize("own", [OWN, None], ids=["only-requested", "none"])
def test_patched_tune_gives_the_cached_actor_to_a_trial_with_no_worker_starting(controller, tmp_path, own):
    trial, actors = _pending(controller, tmp_path, own, started=False)
    with PATCH.applied():
        assert controller._maybe_reuse_cached_actor(trial) is True
    assert controller._trial_to_actor[trial] == CACHED and not _cached(controller, trial)
    assert actors.removed == ([OWN] if own else [])  # a request only: cancelled
    assert actors.tasks == [(OWN, "stop")] * bool(own) + [(CACHED, "reset")]
    assert trial.temporary_state.ray_actor is RAY_ACTOR


def test_a_resetting_trial_is_left_to_tune(controller, tmp_path):
    trial, actors = _pending(controller, tmp_path, OWN, started=True)
    controller._resetting_trials.add(trial)
    with PATCH.applied():
        assert controller._maybe_reuse_cached_actor(trial) is True  # Tune's answer: a reset is under way
    assert _cached(controller, trial) and actors.tasks == []
