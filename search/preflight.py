"""Everything about a search that can be checked before Ray or MLflow start, writing nothing.

A problem is a ``UsageError`` or ``TrackingError`` (or the config's and the data's own errors): ``search.run``
prints its one line and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from contract.files import SEARCH_ID, SEARCH_SUMMARY
from contract.tracking import DEFAULT_TRACKING_URI
from search.config import SearchConfig
from search.tracker import TrackingError
from trainables.data import check_available

log = logging.getLogger(__name__)


class UsageError(ValueError):
    pass


def preflight(cfg: SearchConfig, args: argparse.Namespace) -> None:
    check_experiment(cfg, resume=args.resume)
    if args.address and cfg.local_experiment_dir:
        log.warning(
            "warning: --address with a local storage path (%s): every node must see it at that path (an "
            "NFS mount), else give --storage-path s3://...",
            cfg.resolved_storage_path,
        )
    check_available(cfg.base.data)
    pretrained = cfg.base.model.pretrained
    if pretrained and not Path(pretrained).expanduser().is_file():
        raise UsageError(f"base.model.pretrained: checkpoint file not found: {pretrained}")
    if cfg.search.warm_start:
        check_warm_start(cfg.search.warm_start)
    check_tracking(cfg.resolved_tracking_uri)


def check_experiment(cfg: SearchConfig, resume: bool) -> None:
    """A new search needs a new name; ``--resume`` needs an unfinished search of this version."""
    from ray import tune

    from search.identity import read_text, saved_id

    exists = tune.Tuner.can_restore(cfg.experiment_path)
    if resume and not exists:
        raise UsageError(f"nothing to resume: no experiment at {cfg.experiment_path} (check --name and --storage-path)")
    if exists and not resume:
        raise UsageError(
            f"experiment {cfg.name!r} already exists at {cfg.experiment_path}: pass --resume to continue it, "
            "or --name to start another"
        )
    if resume and read_text(cfg.experiment_path, SEARCH_SUMMARY) is not None:
        raise UsageError(f"search {cfg.name!r} at {cfg.experiment_path} has finished: nothing to resume")
    if resume and saved_id(cfg.experiment_path) is None:
        raise UsageError(
            f"{cfg.experiment_path} has no {SEARCH_ID} file (it was started by an older t2t-search): it cannot be "
            "resumed safely; start a new search with another --name"
        )


def check_warm_start(url: str) -> None:
    from search.searcher import previous_trials

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise UsageError(f"search.warm_start: no study file at {url.removeprefix('sqlite:///')}")
    try:
        previous_trials(url)
    except Exception as e:  # any way the old study cannot be read is a usage error
        raise UsageError(f"search.warm_start: cannot read a study from {url}: {str(e).splitlines()[0]}") from None


def check_tracking(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before the search starts, when the tracking store cannot be reached or written."""
    if uri.startswith(("http://", "https://")):
        check_tracking_server(uri, timeout_s)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TrackingError(f"cannot write the MLflow store {uri}: folder {folder} is missing or read-only")
    elif (uri.startswith("file:") or "://" not in uri) and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "") != "true":
        raise TrackingError(
            f"tracking URI {uri} is MLflow's legacy file store, which MLflow 3.7+ refuses: use "
            f"{DEFAULT_TRACKING_URI} (the default) or a tracking server"
        )


def check_tracking_server(uri: str, timeout_s: float) -> None:
    """The server answers, and accepts the credentials the MLflow client will send."""
    import requests
    from mlflow.utils.credentials import read_mlflow_creds

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
        creds = read_mlflow_creds()  # what the client sends: MLFLOW_TRACKING_* or ~/.mlflow/credentials
        auth = (creds.username, creds.password) if creds.username and creds.password else None
        answer = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth,
            timeout=timeout_s,
        )  # fmt: skip
    except requests.RequestException as e:
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({type(e).__name__}): start it, or set "
            f"MLFLOW_TRACKING_URI / tracking_uri to a reachable server or to {DEFAULT_TRACKING_URI}"
        ) from None
    if answer.status_code in (401, 403):
        raise TrackingError(
            f"the MLflow tracking server at {uri} refused {'the' if auth else 'missing'} credentials "
            f"(HTTP {answer.status_code}): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write "
            "them to ~/.mlflow/credentials"
        )
