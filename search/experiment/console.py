"""What a search prints: the project's own lines (progress, warnings, the summary) and the libraries' warnings and
errors. The libraries' notices a user cannot act on (Ray's start and token notice, Tune's configuration box naming
its internal classes, MLflow's database set-up and download bars, Optuna's "new study" lines) are shown with
``--verbose`` only.
"""

from __future__ import annotations

import logging
import os

# Set before the libraries are imported (Ray reads its logger level then) and inherited by the processes the driver
# starts (MLflow's store process, Ray's workers).
QUIET_ENVIRONMENT = {
    "RAY_LOGGER_LEVEL": "warning",  # "Started a local Ray instance", "Wrote the latest version of all result files"
    "RAY_AIR_NEW_OUTPUT": "0",  # Tune's configuration box and "View detailed results here"; progress is ours
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables", "Updating database tables"
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" while the report reads the runs
}
_NOTICES = (
    "Token authentication is enabled for this Ray cluster",  # a local Ray's default, nothing to do about it
    # Tune's file loggers, reopening a trial that restarts from a checkpoint (a population member that copied another
    # before its own result.json was first written): search.plugins.history writes each epoch once either way
    "Remote file not found: ",
)


class _Notices(logging.Filter):
    """Drops Ray's notices a user cannot act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_NOTICES)


class _TemporaryFileRace(logging.Filter):
    """Drops Tune's error when its background upload of the experiment folder met a temporary file that was renamed
    meanwhile (Tune's own atomic save of the search algorithm's state): the next upload takes the renamed file."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (error is not None and "Failed to open local file" in str(error) and "-tmp-" in str(error))


def configure(verbose: bool) -> None:
    """The driver's logging, before Ray or MLflow are imported: the project's INFO lines bare; the libraries'
    notices only when ``verbose``."""
    import optuna

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not verbose:
        for name, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def filter_ray(verbose: bool) -> None:
    """Filters on Ray's own log handler (made when Ray is imported: this imports it): Tune's temporary-file race
    always, Ray's notices unless ``verbose``. Called again in one process, the last call's filters hold."""
    import ray  # noqa: F401 -- configures the "ray" logger and its handlers

    for handler in logging.getLogger("ray").handlers:
        for old in [f for f in handler.filters if isinstance(f, (_Notices, _TemporaryFileRace))]:
            handler.removeFilter(old)
        handler.addFilter(_TemporaryFileRace())
        if not verbose:
            handler.addFilter(_Notices())
