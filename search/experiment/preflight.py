"""Everything about a search that can be checked before Ray or MLflow start, writing nothing.

A problem is a ``UsageError`` or ``TrackingError`` (or the config's and the data's own errors): ``search.run``
prints its one line and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from analysis.store import StoreError, check_store
from contract.files import SEARCH_ID, SEARCH_SUMMARY
from contract.tracking import DEFAULT_TRACKING_URI
from search.experiment.search_config import SearchConfig
from search.tracking.tracker import TrackingError
from trainables.checkpoint_check import check_pretrained
from trainables.config import ConfigError, TrainConfig
from trainables.data import DataError
from trainables.data_check import check_data

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """A problem with the search's input, found before anything starts: one line, exit 2."""

    pass


def preflight(cfg: SearchConfig, args: argparse.Namespace) -> None:
    """Every check that needs no Ray and writes nothing, in the order a user fixes them.

    Raises:
        UsageError, TrackingError, ConfigError, DataError: the one line ``search.run`` prints."""
    check_storage_path(cfg)
    check_experiment(cfg, resume=args.resume)
    if args.address:
        check_address(args.address)
    check_data(cfg.base.data, cfg.base.train.seed)
    state = check_pretrained(cfg.base, prefix="base.")
    check_space_corners(cfg, state)
    check_budget(cfg)
    if cfg.search.warm_start:
        check_warm_start(cfg.search.warm_start)
    check_tracking(cfg.resolved_tracking_uri)
    if args.address and cfg.local_experiment_dir:  # last: a refused search prints its error line alone
        log.warning(
            "warning: --address with a local storage path (%s): every node must see it at that path (an "
            "NFS mount), else give --storage-path s3://...",
            cfg.resolved_storage_path,
        )


# Where Ray Tune (pyarrow's file systems) can keep results; anything else fails inside Tune, after the start.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def check_storage_path(cfg: SearchConfig) -> None:
    """The results folder's scheme is one Tune knows; a local one can be created and written."""
    path = cfg.resolved_storage_path
    scheme = urlsplit(path).scheme if "://" in path else ""
    if scheme and scheme not in STORAGE_SCHEMES:
        raise UsageError(
            f"--storage-path {path}: unknown scheme {scheme!r}: use a local or NFS path, or one of "
            f"{', '.join(f'{s}://' for s in STORAGE_SCHEMES)}"
        )
    if scheme:
        return
    existing = Path(path)
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--storage-path {path}: {existing} is not a folder: give a writable folder")
    try:  # the one sure test (a read-only mount, /proc, root squashed on NFS): make a folder there, and remove it
        os.rmdir(tempfile.mkdtemp(prefix=".t2t-search-probe-", dir=existing))
    except OSError as e:
        raise UsageError(
            f"--storage-path {path}: no folder can be made in {existing} ({e.strerror}): give a writable folder"
        ) from None


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address answers a TCP connect within ``timeout_s``; ``auto`` is
    the cluster Ray finds on this machine (else ``ray.init`` waits on a dead one for minutes)."""
    if address.startswith("local"):
        return
    given, address = address, resolve_auto() if address == "auto" else address
    target = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = target.port
    except ValueError:
        port = None
    if not target.hostname or port is None:
        raise UsageError(f"--address {given}: expected auto, HOST:PORT or ray://HOST:PORT, got {address}")
    try:
        socket.create_connection((target.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise UsageError(
            f"--address {given}: no Ray cluster answers at {target.hostname}:{port} within {timeout_s:.0f} s "
            f"({e.strerror or type(e).__name__}): start it (ray start --head) or give the right address"
        ) from None


def resolve_auto() -> str:
    """The address ``--address auto`` means, found as ``ray.init`` finds it (RAY_ADDRESS, then this machine's
    latest cluster)."""
    from ray._private.services import canonicalize_bootstrap_address  # what ray.init(address="auto") calls

    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        found = None
    if not found:
        raise UsageError(
            "--address auto: no running Ray cluster found on this machine: start one (ray start --head), give "
            "HOST:PORT, or leave --address out to start a local Ray"
        )
    return found


# Model options that change no tensor's shape or name: a checkpoint that fits one value fits all.
_SHAPE_FREE = {"drop_rate", "attn_drop_rate", "drop_path_rate", "performer_drop", "fused_attn", "fused_soft_split"}


def check_space_corners(cfg: SearchConfig, pretrained_state: object) -> None:
    """The data (and the checkpoint, where one is given) at each corner of each parameter that changes them."""
    base, space = cfg.base.to_dict(), cfg.search_space
    for name in [*space.params, *space.fixed]:
        section, _, key = name.partition(".")
        data = section == "data" or name == "train.seed"
        model = section == "model" and cfg.base.model.pretrained and key not in _SHAPE_FREE
        for value in space.values_of(name, None) if data or model else ():
            trial = TrainConfig.from_dict(space.apply(base, {name: value}))
            try:
                check_data(trial.data, trial.train.seed)
                if model:
                    check_pretrained(trial, "base.", pretrained_state)
            except (DataError, ConfigError) as e:
                raise UsageError(f"space.{name}={value!r}: {e}") from None


def check_budget(cfg: SearchConfig) -> None:
    """At least one configuration of the space fits ``search.max_params`` / ``search.max_macs``."""
    from search.study.searcher import StudySearcher

    try:
        StudySearcher.from_config(cfg, None).check_budget()
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_experiment(cfg: SearchConfig, resume: bool) -> None:
    """A new search needs a new name; ``--resume`` needs an unfinished search of this version."""
    from ray import tune

    from search.experiment.identity import read_text, saved_id

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
    """``search.warm_start`` names one study with finished trials: a journal file or an RDB URL."""
    from search.study.searcher import previous_trials

    file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") or "://" not in url else None
    if file is not None and not Path(file).is_file():
        raise UsageError(f"search.warm_start: no study file at {file}")
    try:
        previous_trials(url)
    except Exception as e:  # any way the old study cannot be read is a usage error
        raise UsageError(f"search.warm_start: cannot read a study from {url}: {str(e).splitlines()[0]}") from None


def check_tracking(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before the search starts, when the tracking store cannot be reached or written."""
    try:
        check_store(uri, timeout_s)
    except StoreError as e:
        raise TrackingError(str(e)) from None
    if uri.startswith(("http://", "https://")):
        check_tracking_server(uri, timeout_s)


def check_tracking_server(uri: str, timeout_s: float) -> None:
    """The server accepts the credentials the MLflow client will send."""
    import requests
    from mlflow.utils.credentials import read_mlflow_creds

    try:
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
