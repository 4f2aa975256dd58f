"""A trial's status: what the trainable reports while it runs, and the rule that names a finished trial's end.

The same status is the ``status`` tag of the trial's MLflow run, the ``status`` user attribute of its Optuna
trial and the status column of a report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.metrics import STATUS

RUNNING = "running"
COMPLETED = "completed"  # trained every epoch
PRUNED = "pruned"  # stopped early by the scheduler
DIVERGED = "diverged"  # the loss became NaN or infinite
FAILED = "failed"  # an error ended it
INTERRUPTED = "interrupted"  # stopped by Ctrl-C; a --resume reopens the run
REFUSED = "refused"  # an Optuna proposal over the search's budget, never trained
NOT_STARTED = "not_started"  # the search ended (its time budget) before the trial finished a first epoch

ENDED = (COMPLETED, PRUNED, DIVERGED, FAILED)  # the ends a finished trial can have, in the order summaries list them

# A run's MLflow status for each end of its trial.
RUN_STATUS = {
    COMPLETED: "FINISHED",
    PRUNED: "FINISHED",
    DIVERGED: "FAILED",
    FAILED: "FAILED",
    INTERRUPTED: "KILLED",
    NOT_STARTED: "KILLED",
}


def trial_status(last_result: Mapping[str, Any] | None, error: bool) -> str:
    """A finished trial's status from its last result: completed, pruned (stopped early), diverged or failed."""
    if error:
        return FAILED
    status = (last_result or {}).get(STATUS)
    if status in (COMPLETED, DIVERGED):
        return status
    return PRUNED if last_result else FAILED
