"""Optuna behind Ray Tune's ``Searcher`` interface, closing the holes of the stock ``OptunaSearch``:

- a trial that the scheduler (ASHA) or the time budget stops is told to Optuna as PRUNED, with its intermediate
  values, not as COMPLETE with a truncated metric;
- a diverged or failed trial is FAIL, with the reason as a user attribute;
- a configuration over the parameter/MAC budget is refused before it trains: it gets ``set_constraint`` values
  > 0 and is told PRUNED, so TPE ranks it below every feasible trial, and the next one is asked for;
- the study lives in Optuna storage (a journal file, ``search.study.storage``), so optuna-dashboard can read it,
  a resumed search continues it, and the Ray-trial -> Optuna-trial map is rebuilt from the study itself.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, ClassVar

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

import t2t
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, FAILED, NOT_STARTED, PRUNED, REFUSED, trial_status
from search.study.space import SearchSpace
from search.study.storage import open_storage
from trainables.config import TrainConfig
from trainables.data import channels_and_classes

log = logging.getLogger(__name__)

RAY_TRIAL_ID = "ray_trial_id"  # user attribute of an Optuna trial: the Ray trial it became
BASELINE = "baseline"  # user attribute of the Optuna trial that trains the base config's values
MAX_REFUSALS = 200  # consecutive over-budget proposals before the search gives up
STOPPED_AT = "stopped_at_epoch"  # user attribute of a pruned Optuna trial: the epoch it was stopped after


class BudgetExhaustedError(RuntimeError):
    """No configuration within the parameter or MAC budget was found in ``MAX_REFUSALS`` proposals."""

    pass


def baseline_trial_id(study_name: str, storage: str) -> str | None:
    """The Ray trial that trained the base config's own values (``search.baseline``), if the study had one."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:  # no such study
        return None
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(BASELINE) and RAY_TRIAL_ID in trial.user_attrs:
            return trial.user_attrs[RAY_TRIAL_ID]
    return None


def resumed_seed(seed: int, known_trials: int) -> int:
    """The sampler's seed after a resume, from the search's seed and how many trials the study holds."""
    return (seed * 1_000_003 + known_trials) % 2**32


def end_unfinished(study_name: str, storage: str, measured: set[str], reason: str) -> None:
    """Close the study's trials that Tune ended without telling the searcher (its time budget ran out): those
    that finished an epoch are PRUNED at the epoch they reached, the others FAIL as not_started."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ray_id = frozen.user_attrs.get(RAY_TRIAL_ID)
        if ray_id is None:
            continue
        trial = optuna.Trial(study, frozen._trial_id)
        trial.set_user_attr(M.REASON, reason)
        if ray_id in measured:
            trial.set_user_attr(M.STATUS, PRUNED)
            trial.set_user_attr(STOPPED_AT, max(frozen.intermediate_values, default=0))
            study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr(M.STATUS, NOT_STARTED)
            study.tell(trial, state=TrialState.FAIL)


def study_endings(study_name: str, storage: str) -> dict[str, tuple[str, int]]:
    """Ray trial id -> (status, last epoch) of every trial the study has seen end."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:  # no such study yet
        return {}
    endings = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        if RAY_TRIAL_ID in trial.user_attrs and M.STATUS in trial.user_attrs:
            epoch = trial.user_attrs.get(STOPPED_AT, max(trial.intermediate_values, default=0))
            endings[trial.user_attrs[RAY_TRIAL_ID]] = (trial.user_attrs[M.STATUS], int(epoch))
    return endings


def make_sampler(kind: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    """Optuna's seeded TPE (multivariate, few startup trials: a search here is tens of trials) or random."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # few startup trials: a search here is tens of trials, not thousands
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4 if not multi_objective else 6, multivariate=True)


def previous_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    """The finished trials of the one study in ``storage`` (a previous search), to warm-start TPE."""
    opened = open_storage(storage)
    summaries = optuna.get_all_study_summaries(storage=opened)
    if len(summaries) != 1:
        raise ValueError(f"search.warm_start: expected one study in {storage}, found {len(summaries)}")
    old = optuna.load_study(study_name=summaries[0].study_name, storage=opened)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in old.get_trials(deepcopy=False, states=finished) if RAY_TRIAL_ID in t.user_attrs]


class StudySearcher(Searcher):
    """Optuna's study behind Tune's ``Searcher`` interface (see the module's docstring)."""

    # Set before Tune restores a searcher (search.experiment.resume): where the study is now, and the trials Tune's
    # snapshot holds (the study's other trials with a Ray id are orphans).
    restored_storage: ClassVar[str | None] = None
    restored_known: ClassVar[set[str] | None] = None

    def __init__(
        self,
        space: SearchSpace,
        base: dict[str, Any],
        study_name: str,
        storage: str | None,
        sampler: str = "tpe",
        seed: int = 0,
        multi_objective: bool = False,
        max_params: int | None = None,
        max_macs: int | None = None,
        warm_start: str | None = None,
        baseline: bool = False,
    ) -> None:
        super().__init__(metric=M.OBJECTIVE, mode=M.OBJECTIVE_MODE)
        self.space, self.base = space, base
        self.study_name, self.storage_url = study_name, storage
        self.sampler_kind, self.seed, self.multi_objective = sampler, seed, multi_objective
        self.max_params, self.max_macs = max_params, max_macs
        self.warm_start = warm_start
        self.baseline = baseline
        self._study: optuna.Study | None = None
        self._live: dict[str, int] = {}  # Ray trial id -> Optuna trial id (storage id)
        self._steps: dict[str, set[int]] = {}  # Ray trial id -> epochs reported to the study (of live trials)
        self._orphans: dict[str, optuna.trial.FrozenTrial] = {}  # Ray trial id -> its trial, in the study's order

    @classmethod
    def from_config(cls, cfg, storage: str | None) -> StudySearcher:
        """The searcher of a ``search.experiment.search_config.SearchConfig``, its study in ``storage``."""
        s = cfg.search
        return cls(cfg.search_space, cfg.base.to_dict(), cfg.name, storage, s.sampler, s.seed, s.multi_objective,
                   s.max_params, s.max_macs, s.warm_start, s.baseline)  # fmt: skip

    # --- the study, reconnected lazily (the searcher is pickled with the experiment) ---

    @property
    def study(self) -> optuna.Study:
        """The study, opened on first use (the driver alone writes it)."""
        if self._study is None:
            storage = open_storage(self.storage_url, writer=True) if self.storage_url else None
            directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
            self._study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=make_sampler(self.sampler_kind, self.seed, self.multi_objective),
                directions=directions,
                load_if_exists=True,
            )
            known = len(self._study.trials)
            if known:  # a resumed search: a stream of its own, so it never proposes its first points again
                self._study.sampler = make_sampler(
                    self.sampler_kind, resumed_seed(self.seed, known), self.multi_objective
                )
            elif self.warm_start:
                self._study.add_trials(previous_trials(self.warm_start))
            elif self.baseline:
                self._enqueue_baseline()
            self._rebuild_live()
        return self._study

    def _enqueue_baseline(self) -> None:
        """The first trial trains the base config's values: the search starts from what is known to work."""
        values, outside = self.space.base_values(self.base)
        if outside:
            log.info("the baseline trial samples %s: the base value lies outside the space", ", ".join(outside))
        self._study.enqueue_trial(values, user_attrs={BASELINE: True})

    def _rebuild_live(self) -> None:
        for frozen in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            ray_id = frozen.user_attrs.get(RAY_TRIAL_ID)
            if ray_id:
                self._live[ray_id] = frozen._trial_id
                self._steps[ray_id] = set(frozen.intermediate_values)

    def _find_orphans(self, known: set[str]) -> None:
        """The study's trials with a Ray id that Tune's restored snapshot does not hold, to be re-created under
        the same id (``next_orphan``) instead of being proposed anew."""
        for frozen in self._study.get_trials(deepcopy=False):
            ray_id = frozen.user_attrs.get(RAY_TRIAL_ID)
            if ray_id and ray_id not in known and frozen.user_attrs.get(M.STATUS) not in (REFUSED, NOT_STARTED):
                self._orphans[ray_id] = frozen
        if self._orphans:
            log.info("%d trial(s) started after Tune's last snapshot; they run again under their own ids: %s",
                     len(self._orphans), ", ".join(self._orphans))  # fmt: skip

    def next_orphan(self) -> str | None:
        """The next orphan's Ray id (it stays one until Tune asks for its configuration)."""
        return next(iter(self._orphans), None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_study=None, _steps={}, _orphans={})  # rebuilt from the study on restore
        if self.storage_url is None:
            raise RuntimeError("an in-memory study cannot be saved; give the searcher a storage URL")
        return state

    # --- Searcher interface ---

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode are fixed (trainables.metrics.OBJECTIVE); the space is our own

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        orphan = self._orphans.pop(trial_id, None)
        if trial_id in self._live:  # asked again for a trial it already proposed (restore)
            trial = optuna.Trial(self.study, self._live[trial_id])
            return self.space.apply(self.base, self.space.sample(trial))
        if orphan is not None:  # an orphan the study saw end: its values again (its ending: plugins.scheduler)
            return self.space.apply(self.base, self.space.sample(orphan))
        for _ in range(MAX_REFUSALS):
            trial = self.study.ask()
            config = self.space.apply(self.base, self.space.sample(trial))
            violations = self._constraints(config)
            for key, value in violations.items():
                trial.set_constraint(key, value)
            over = {k: v for k, v in violations.items() if v > 0}
            if not over:
                trial.set_user_attr(RAY_TRIAL_ID, trial_id)
                self._live[trial_id] = trial._trial_id
                self._steps[trial_id] = set()
                if trial.user_attrs.get(BASELINE):
                    log.info("trial %s trains the base config's values (search.baseline)", trial_id)
                return config
            reason = ", ".join(f"{k} by {v:,.0f}" for k, v in over.items())
            trial.set_user_attr(M.STATUS, REFUSED)
            trial.set_user_attr(M.REASON, f"over budget: {reason}")
            self.study.tell(trial, state=TrialState.PRUNED)
            log.info("refused Optuna trial %d before training: over budget (%s)", trial.number, reason)
        raise BudgetExhaustedError(
            f"{MAX_REFUSALS} proposals in a row were over search.max_params/max_macs: raise the budget or "
            "narrow the space to smaller models"
        )

    def _constraints(self, config: dict[str, Any]) -> dict[str, float]:
        """Constraint values (> 0: violated by that much), from the config alone: nothing is built."""
        if not (self.max_params or self.max_macs):
            return {}
        cfg = TrainConfig.from_dict(config)
        cost = t2t.complexity(cfg.model.build_config(cfg.data.img_size, *channels_and_classes(cfg.data)))
        out = {}
        if self.max_params:
            out["params"] = float(cost.params - self.max_params)
        if self.max_macs:
            out["macs"] = float(cost.macs - self.max_macs)
        return out

    def check_budget(self) -> None:
        """Raise ``ValueError`` when no configuration of the space meets the budgets, before any trial is asked.

        Each parameter in turn takes its cheapest corner (twice round, for conditional ones): the costs rise with
        each size parameter, so this finds the cheapest configuration without enumerating the space.
        """
        if not (self.max_params or self.max_macs):
            return
        values: dict[str, Any] = dict(self.space.fixed)
        for _ in range(2):
            for name, param in self.space.params.items():
                if not param.active(values):
                    values.pop(name, None)
                    continue
                values[name] = min(param.corners(), key=lambda v, n=name: self._worst({**values, n: v}))
        over = {k: v for k, v in self._constraints(self.space.apply(self.base, values)).items() if v > 0}
        if over:
            limits = {"params": ("search.max_params", self.max_params), "macs": ("search.max_macs", self.max_macs)}
            key, (flag, limit) = next(iter(over)), limits[next(iter(over))]
            raise ValueError(
                f"{flag}={limit:,} is below the cheapest configuration of the space ({key} {limit + over[key]:,.0f} "
                f"at {', '.join(f'{k}={v}' for k, v in values.items() if k in self.space.params)}): raise {flag} "
                "or narrow the space"
            )

    def _worst(self, values: dict[str, Any]) -> float:
        """The largest cost / budget ratio of the configuration ``values`` (inf where it is invalid)."""
        try:
            over = self._constraints(self.space.apply(self.base, values))
        except ValueError:
            return float("inf")
        limits = {"params": self.max_params, "macs": self.max_macs}
        return max((v + limits[k]) / limits[k] for k, v in over.items())

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._live:
            self._report(trial_id, optuna.Trial(self.study, self._live[trial_id]), result)

    def _report(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """The epoch's val_acc as an intermediate value (single objective; each epoch once: the steps reported
        are kept here, read from the study once per trial, so a result costs one write and no read)."""
        if self.multi_objective or M.VAL_ACC not in result or M.EPOCH not in result:
            return
        step, steps = int(result[M.EPOCH]), self._steps.setdefault(trial_id, set())
        if step not in steps:
            trial.report(float(result[M.VAL_ACC]), step)
            steps.add(step)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        optuna_id = self._live.pop(trial_id, None)
        if optuna_id is None:
            return
        trial = optuna.Trial(self.study, optuna_id)
        status = trial_status(result, error)
        value = (result or {}).get(M.BEST_VAL_ACC, (result or {}).get(M.VAL_ACC))
        if status == COMPLETED and value is None:  # never raise into Tune's loop: no metric is a failure
            status, result = FAILED, {**result, M.REASON: f"the last result has no {M.VAL_ACC}"}
        if status in (COMPLETED, PRUNED):
            self._report(trial_id, trial, result)  # Tune delivers a trial's last result here, not on_trial_result
        self._steps.pop(trial_id, None)
        trial.set_user_attr(M.STATUS, status)
        if status in (DIVERGED, FAILED):
            if result and result.get(M.REASON):
                trial.set_user_attr(M.REASON, str(result[M.REASON]))
            self.study.tell(trial, state=TrialState.FAIL)
        elif status == COMPLETED:
            values = [float(value)]
            if self.multi_objective:
                values.append(float(result.get(M.MACS, float("inf"))))
            self.study.tell(trial, values)
        else:  # stopped before its last epoch: by the scheduler or the time budget
            trial.set_user_attr(STOPPED_AT, int(result.get(M.EPOCH, 0)))
            self.study.tell(trial, state=TrialState.PRUNED)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Tune's, with the temporary file outside the folder Tune uploads (``search.disk.write_beside``)."""
        from search.disk.write_beside import write_beside

        write_beside(Path(checkpoint_dir) / self.CKPT_FILE_TMPL.format(session_str), lambda tmp: self.save(str(tmp)))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        if StudySearcher.restored_storage:  # where the driver found the study now (a moved or copied folder)
            self.storage_url = StudySearcher.restored_storage
        self._study = None
        self._live, self._steps, self._orphans = {}, {}, {}
        self.study  # noqa: B018 -- reconnects and rebuilds the live map from the study
        if StudySearcher.restored_known is not None:
            self._find_orphans(StudySearcher.restored_known)
