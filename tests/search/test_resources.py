"""How many trials Tune runs at once: the user's cap, else as many as a local Ray fits, none on a joined cluster."""

from __future__ import annotations

from search.plugins.resources import trials_at_once


def test_a_local_ray_runs_as_many_trials_as_fit_and_a_cluster_leaves_room_to_grow(ray_local):
    assert ray_local.cluster_resources()["CPU"] == 2
    assert trials_at_once(None, 0.5, 0, joined=False) == 4  # the local Ray's 2 CPUs, half a CPU a trial
    assert trials_at_once(None, 1.0, 0, joined=False) == 2
    assert trials_at_once(3, 0.5, 0, joined=False) == 3  # the user's search.max_concurrent wins
    assert trials_at_once(None, 0.5, 0, joined=True) is None  # pending trials ask the autoscaler for nodes
    assert trials_at_once(8, 1.0, 1, joined=True) == 8
