"""The population's starting configurations, drawn from the search space as a study would draw its trials.

Optuna's random sampler (seeded by ``search.seed``) in a study of its own in memory: conditions and the
parameter/MAC budgets are honoured exactly as in ``search.mode=study`` (an over-budget draw is refused and drawn
again), and with ``search.baseline`` the first member starts from the base config's values. No study is stored: a
member's configuration changes as it trains, which an Optuna trial's fixed parameters cannot record; the population's
record is its members' MLflow runs and schedules (search/population/).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from search.study.searcher import BASELINE, RAY_TRIAL_ID, StudySearcher


def draw_population(cfg: Any) -> list[dict[str, Any]]:
    """``search.population.size`` training configs for ``cfg`` (a ``SearchConfig``), the baseline's first."""
    return _draw(cfg)[0]


def _draw(cfg: Any) -> tuple[list[dict[str, Any]], bool]:
    """The members, and whether the first is the base config's values (not refused by a budget)."""
    s = cfg.search
    searcher = StudySearcher(
        cfg.search_space, cfg.base.to_dict(), cfg.name, storage=None, sampler="random", seed=s.seed,
        max_params=s.max_params, max_macs=s.max_macs, baseline=s.baseline,
    )  # fmt: skip
    with quiet("search.study.searcher", "optuna"):  # its lines name study trials, which a population has none of
        members = [searcher.suggest(f"member_{i}") for i in range(s.population.size)]
    accepted = [t for t in searcher.study.trials if t.user_attrs.get(RAY_TRIAL_ID) == "member_0"]
    return members, bool(accepted and accepted[0].user_attrs.get(BASELINE))


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """``loggers`` say only warnings and errors while the block runs."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def base_member(cfg: Any) -> dict[str, Any] | None:
    """The config the first member started from, the base config's values: drawn again, the draw being seeded.
    None without ``search.baseline``, or where a budget refused the base config's values."""
    members, is_base = _draw(cfg)
    return members[0] if is_base else None
