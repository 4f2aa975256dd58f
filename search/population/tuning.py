"""What a population-based search gives Tune's Tuner in place of the study's searcher and ASHA.

Ray's PBT and PB2 refuse any ``Searcher`` (each is wrapped in a ``SearchGenerator``, which their ``on_trial_add``
rejects), so the population's starting configurations (``draw.draw_population``) reach Tune as the points of its
own ``BasicVariantGenerator``: one trial per member, in that order.
"""

from __future__ import annotations

import logging
from typing import Any

from search.population.callback import PopulationCallback
from search.population.check import mutable_keys
from search.population.draw import draw_population
from search.population.scheduler import build_population_scheduler
from search.tracking.tracker import MlflowTracker


def population_tuning(cfg: Any) -> dict[str, Any]:
    """``search_alg``, ``scheduler`` and ``num_samples`` of ``tune.TuneConfig`` for ``cfg`` (a ``SearchConfig``),
    and the Tuner's ``param_space``: a member's config, which the points replace key by key (Tune looks each of a
    point's keys up in it)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    s = cfg.search
    members = draw_population(cfg)
    # Tune warns once per point whose values differ from param_space's: every member's, by design
    logging.getLogger("ray.tune.search.variant_generator").setLevel(logging.ERROR)
    return {
        "search_alg": BasicVariantGenerator(points_to_evaluate=members),
        "scheduler": build_population_scheduler(
            s.mode, cfg.search_space, s.population, mutable_keys(cfg), cfg.base.train.epochs
        ),
        "num_samples": len(members),
        "param_space": members[0],
    }


def population_callback(cfg: Any, tracker: MlflowTracker) -> PopulationCallback:
    """The members' MLflow callback: their epochs, ``hp/*`` values and copies."""
    return PopulationCallback(tracker, mutable_keys(cfg))
