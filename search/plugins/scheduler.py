"""The search's trial scheduler (ASHA, or none), which on a resume lets the study's record decide a trial it saw end.

Tune snapshots the experiment by time (``search.experiment.resume``), so after a killed driver it can run again a trial
whose end the study recorded after the last snapshot. A fresh ASHA (Tune does not save the scheduler) could then
end it otherwise: stop one the study saw complete, or let one it saw pruned train on. For such a trial the study
is the record: it is stopped at the epoch the study says it was pruned at, and never stopped early otherwise.
"""

from __future__ import annotations

from typing import ClassVar

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from contract import metrics as M
from contract.status import PRUNED


class _Settled:
    """A scheduler whose decisions on the trials in ``endings`` follow how the study saw them end."""

    endings: ClassVar[dict[str, tuple[str, int]]] = {}  # Ray trial id -> (status, last epoch); set on a resume

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        ending = _Settled.endings.get(trial.trial_id)
        if ending is None:
            return decision
        status, epoch = ending
        if status == PRUNED and result.get(M.EPOCH, 0) >= epoch:
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class SettledASHA(_Settled, ASHAScheduler):
    """ASHA that follows the study's record of the trials it saw end (a resume)."""

    pass


class SettledFIFO(_Settled, FIFOScheduler):
    """No early stopping; follows the study's record of the trials it saw end (a resume)."""

    pass


def settle(endings: dict[str, tuple[str, int]]) -> None:
    """The endings the study recorded, for the schedulers of this process (a resume; ``{}`` otherwise)."""
    _Settled.endings = dict(endings)


def build_scheduler(kind: str, max_epochs: int, grace_period: int, reduction_factor: float) -> TrialScheduler:
    """``kind`` ``"asha"`` (stopping at epochs ``grace_period`` x ``reduction_factor``^k up to ``max_epochs``, the
    longest trial of the space) or ``"none"``; either follows the study's record on a resume."""
    if kind == "none":
        return SettledFIFO()
    return SettledASHA(
        time_attr=M.EPOCH, max_t=max_epochs, grace_period=grace_period, reduction_factor=reduction_factor
    )
