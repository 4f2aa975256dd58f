"""What a population-based search (``search.mode`` pbt or pb2) needs of the config, checked before Ray starts.

Each rule raises ``ValueError`` with one line: the key, its value and the fix.
"""

from __future__ import annotations

from typing import Any

from search.study.space import ChoiceParam, SearchSpace
from trainables.config import MUTABLE


def check_population(cfg: Any) -> None:
    """The population rules for ``cfg`` (a ``search.experiment.search_config.SearchConfig`` being validated)."""
    s, p = cfg.search, cfg.search.population
    if s.multi_objective:
        raise ValueError(f"search.mode={s.mode} ranks members on val_acc alone: set search.multi_objective=false")
    if s.warm_start:
        raise ValueError(f"search.warm_start seeds an Optuna study, which search.mode={s.mode} has none of: remove it")
    if "train.epochs" in cfg.space:
        raise ValueError(
            f"space varies train.epochs, but with search.mode={s.mode} a member that copies another continues that "
            "one's schedule: set base.train.epochs instead"
        )
    space = cfg.search_space
    for key in p.mutable or ():
        _check_mutable(key, space, s.mode)
    if not mutable_keys(cfg):
        raise ValueError(
            f"search.mode={s.mode} has nothing to change: no key of space is one that can change while a member "
            f"trains ({', '.join(MUTABLE)}); add a distribution of one, e.g. space.optim.lr"
        )
    epochs = cfg.base.train.epochs
    if p.interval >= epochs:
        raise ValueError(
            f"search.population.interval={p.interval} is not below base.train.epochs={epochs}: no member would ever "
            "be perturbed; lower the interval or raise the epochs"
        )


def mutable_keys(cfg: Any) -> tuple[str, ...]:
    """The keys a perturbation changes: ``search.population.mutable``, else every key of ``MUTABLE`` the space
    draws (unconditionally, and for pb2 as a range)."""
    if cfg.search.population.mutable is not None:
        return cfg.search.population.mutable
    params = cfg.search_space.params
    usable = [k for k in MUTABLE if k in params and not params[k].when]
    return tuple(k for k in usable if cfg.search.mode != "pb2" or not isinstance(params[k], ChoiceParam))


def _check_mutable(key: str, space: SearchSpace, mode: str) -> None:
    if key not in MUTABLE:
        raise ValueError(
            f"search.population.mutable: {key} cannot change while a member trains (its weights or data are made "
            f"of it); the keys that can: {', '.join(MUTABLE)}"
        )
    param = space.params.get(key)
    if param is None:
        raise ValueError(
            f"search.population.mutable: {key} has no distribution in space to draw new values from: add "
            f"space.{key} or remove it from mutable"
        )
    if mode == "pb2" and isinstance(param, ChoiceParam):
        raise ValueError(
            f"search.mode=pb2 takes ranges only (its Gaussian process models continuous values), but {key} is a "
            "choice: make it {type: float, low, high}, remove it from mutable, or use search.mode=pbt"
        )
    if param.when:
        raise ValueError(
            f"search.population.mutable: {key} is conditional (when {param.when}), but a copied member may not "
            "meet the condition: remove it from mutable or make it unconditional"
        )


def check_study_mode(cfg: Any) -> None:
    """``search.population`` changed with ``search.mode=study`` would be ignored: a mistake to say, not to pass."""
    if cfg.search.population != type(cfg.search.population)():
        raise ValueError(
            "search.population is set, but search.mode=study trains no population: set search.mode=pbt (or pb2), "
            "or remove search.population"
        )
