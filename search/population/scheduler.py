"""Ray Tune's PBT and PB2 for a population (``search.mode`` pbt or pb2), their mutations drawn from the search space.

Every ``interval`` epochs a member in the bottom ``quantile`` copies a top member's checkpoint and configuration and
changes the mutable keys: PBT multiplies each value by 0.8 or 1.2 (a choice moves to a neighbour) or, with
``resample_probability``, draws it anew from the space; PB2 picks the values a Gaussian process over the population's
history expects to improve most. Either way a value stays inside its range in the space (``KeepInSpace``): PBT's
factors alone would walk a learning rate out of it.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2  # imports scikit-learn: this module is imported by population searches only

from contract import metrics as M
from search.study.space import ChoiceParam, FloatParam, IntParam, SearchSpace


def nested(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"optim.lr": x}`` as the config's own nesting, ``{"optim": {"lr": x}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def mutation(param: Any) -> Any:
    """A space parameter as PBT's resampling distribution (a list for a choice)."""
    if isinstance(param, ChoiceParam):
        return list(param.values)
    if isinstance(param, IntParam):
        return (
            tune.qrandint(param.low, param.high, param.step)
            if param.step > 1
            else tune.randint(param.low, param.high + 1)
        )
    if param.log:
        return tune.loguniform(param.low, param.high)
    return tune.quniform(param.low, param.high, param.step) if param.step else tune.uniform(param.low, param.high)


class KeepInSpace:
    """PBT's and PB2's ``custom_explore_fn``: each mutable value clipped to its range (an integer's rounded)."""

    def __init__(self, space: SearchSpace, keys: tuple[str, ...]) -> None:
        self.ranges = {k: (p.low, p.high, p.step, isinstance(p, IntParam)) for k in keys
                       if isinstance(p := space.params[k], (FloatParam, IntParam))}  # fmt: skip

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high, step, integer) in self.ranges.items():
            section, _, name = key.partition(".")
            value = min(max(config[section][name], low), high)
            if step:  # onto the range's grid, as the space draws it
                value = min(low + round((value - low) / step) * step, high)
            config[section][name] = round(value) if integer else float(value)
        return config


class _UntilTheLastEpoch:
    """No perturbation at a member's last epoch. Ray's would copy a checkpoint into a member there, or copy a
    finished member's last checkpoint into another: either restarts a member whose training is over, which ends
    without a result of its own, and Tune then gives it the copied one's last result, another trial's id included."""

    last_epoch: int

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(M.EPOCH, 0) >= self.last_epoch:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


class MemberPBT(_UntilTheLastEpoch, PopulationBasedTraining):
    """Ray's PBT, never perturbing at the last epoch."""

    def __init__(self, last_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_epoch = last_epoch


class MemberPB2(_UntilTheLastEpoch, PB2):
    """Ray's PB2, never perturbing at the last epoch."""

    def __init__(self, last_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_epoch = last_epoch


def build_population_scheduler(
    kind: str, space: SearchSpace, population: Any, keys: tuple[str, ...], epochs: int
) -> TrialScheduler:
    """``kind`` ``"pbt"`` or ``"pb2"`` over ``population`` (``search_config.PopulationSection``), perturbing the
    ``keys`` every ``interval`` epochs before the last of ``epochs``."""
    common = dict(
        last_epoch=epochs,
        time_attr=M.EPOCH,
        perturbation_interval=population.interval,
        quantile_fraction=population.quantile,
        custom_explore_fn=KeepInSpace(space, keys),
        synch=False,  # Ray's synchronous mode stalls after a restore (ray PR #48616, never merged)
    )
    if kind == "pb2":
        bounds = nested({k: [space.params[k].low, space.params[k].high] for k in keys})
        return MemberPB2(hyperparam_bounds=bounds, **common)
    mutations = nested({k: mutation(space.params[k]) for k in keys})
    return MemberPBT(hyperparam_mutations=mutations, resample_probability=population.resample_probability, **common)
