"""A trial that a killed driver started after Tune's last snapshot (an orphan) is created again under its own id.

The study and MLflow know such a trial by its Ray id (``search.experiment.resume``). Ray 2.60's
``SearchGenerator.create_trial_if_possible`` draws every new trial's id from ``Trial.generate_id`` before it asks
the searcher for a configuration, so a searcher cannot choose it. Patched: when the study's searcher has an orphan
(``next_orphan``), ``Trial.generate_id`` gives that id for the one call; the fingerprint of
``create_trial_if_possible`` stops the search at start if Ray no longer draws the id there.
"""

from __future__ import annotations

from search.patches._patch import ray_patch

_WRAPPERS_DEEP = 8  # Tune's searcher wrappers (ConcurrencyLimiter) nest a few deep at most


def _make(create):
    from ray.tune.experiment import Trial

    def create_trial_if_possible(self, experiment_spec: dict):
        orphan = _next_orphan(self.searcher)
        if orphan is None:
            return create(self, experiment_spec)
        generate = Trial.__dict__["generate_id"]  # the classmethod itself, put back as it was
        Trial.generate_id = staticmethod(lambda: orphan)
        try:
            return create(self, experiment_spec)
        finally:
            Trial.generate_id = generate

    return create_trial_if_possible


def _next_orphan(searcher) -> str | None:
    """The next orphan of the study's searcher, found under Tune's wrappers."""
    for _ in range(_WRAPPERS_DEEP):
        if hasattr(searcher, "next_orphan"):
            return searcher.next_orphan()
        searcher = getattr(searcher, "searcher", None)
    return None


PATCH = ray_patch(
    name="orphan_ids",
    target="ray.tune.search.search_generator:SearchGenerator.create_trial_if_possible",
    make=_make,
    fingerprints={
        "ray.tune.search.search_generator:SearchGenerator.create_trial_if_possible": "1de4d49dfbb4ed6c",
        "ray.tune.experiment.trial:Trial.generate_id": "903ca31fec7837f5",
    },
    upstream="Ray offers no way for a Searcher to choose a trial's id (searched 2026-12)",
)
