"""``python -m search.run``: a hyperparameter search of T2T-ViT.

    python -m search.run                                  # the embedded default: digits, local Ray, ~4 min on 2 CPUs
    python -m search.run --smoke-test                     # 3 tiny trials and a tiny final phase: ~1 min
    python -m search.run --config configs/cifar10.yaml --address auto --storage-path s3://bucket/t2t
    python -m search.run --name my-search --resume        # continue an interrupted search

Ray Tune schedules the trials (ASHA stops hopeless ones), Optuna proposes them (TPE), and every trial is an MLflow
run nested under the search's parent run (``mlflow ui`` shows them). Then the final phase retrains the best
configuration and the baseline with several seeds and measures them once on the held-out test split: the numbers
the summary leads with. Bad input exits 2 with one line, before Ray or MLflow start and without writing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from contract.cli import Parser, add_config_arguments
from search.experiment.search_config import SMOKE_POPULATION, SMOKE_SPACE, SMOKE_TEST, SearchConfig
from trainables.config import ConfigError
from trainables.data import DataError

USAGE_EXIT = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; argparse's own errors exit 2 with its usage line."""
    parser = Parser(
        prog="python -m search.run",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    add_config_arguments(
        parser,
        "YAML experiment config (default: the embedded digits search)",
        "search.num_trials=20, base.optim.lr=1e-3 or 'space.model.depth={type: int, low: 2, high: 8}'",
    )
    parser.add_argument("--name", help="experiment name: MLflow experiment, results folder, Optuna study")
    parser.add_argument("--smoke-test", action="store_true", help="3 tiny trials of 2 epochs: the whole path, fast")
    parser.add_argument("--verbose", action="store_true", help="also the libraries' own notices (Ray, Tune, MLflow)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment --name")
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="Ray cluster to join ('auto' on a cluster node; default: start a local Ray)",
    )
    parser.add_argument(
        "--storage-path",
        help="where Tune keeps results and checkpoints (shared storage on a "
        "cluster: s3://... or an NFS mount; default ./ray_results)",
    )
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> SearchConfig:
    """The search's config: the defaults, ``--config``, ``--smoke-test``'s shrinking, then each ``--set``;
    with ``--resume`` the saved one."""
    sets = list(args.sets)
    if args.smoke_test:  # the smoke space replaces the default one; the user's --set still apply on top
        smoke = ["space={}", *SMOKE_TEST, *(f"space.{k}={json.dumps(v)}" for k, v in SMOKE_SPACE.items())]
        extra = SMOKE_POPULATION if population_smoke(args.config, smoke, sets) else []  # long enough to copy
        sets = [*smoke, *extra, *sets]
    cfg = SearchConfig.load(args.config, sets, name=args.name, storage_path=args.storage_path)
    return resumed_config(cfg, args) if args.resume else cfg


def population_smoke(config: str | None, smoke: list[str], sets: list[str]) -> bool:
    """Whether ``--smoke-test`` with the user's ``config`` and ``sets`` runs a population: its smoke settings (3
    epochs) applied before the user's. A config that fails so is not one; loaded without them, it says why."""
    try:
        return SearchConfig.load(config, [*smoke, *SMOKE_POPULATION, *sets]).search.mode != "study"
    except ConfigError:
        return False


def resumed_config(cfg: SearchConfig, args: argparse.Namespace) -> SearchConfig:
    """``--resume`` runs the config the search was started with (saved beside Tune's state). Config flags given
    with it must yield that same config: a resume never changes what a search searches."""
    from search.experiment.identity import saved_config

    try:
        saved = saved_config(cfg.experiment_path)
    except Exception:  # a storage path that cannot be read: preflight names the problem in its one line
        saved = None
    if saved is None:  # nothing to resume there: preflight says so
        return cfg
    saved.update(name=cfg.name, storage_path=cfg.storage_path or saved.get("storage_path"))
    resumed = SearchConfig.model_validate(saved)
    if args.config or args.sets or args.smoke_test:
        differ = first_difference(resumed.to_dict(), cfg.to_dict())
        if differ:
            raise ConfigError(
                f"--resume continues search {cfg.name!r} with the config it was started with, and {differ}: drop "
                "--config/--set/--smoke-test (or start another search with --name)"
            )
    return resumed


def first_difference(saved: dict, given: dict) -> str | None:
    """The first key whose value differs between two configs, said as a sentence; None when equal."""
    from contract.flat import flatten

    a, b = flatten(saved), flatten(given)
    for key in sorted(set(a) | set(b)):
        if key not in ("name", "storage_path") and a.get(key) != b.get(key):
            return f"{key} was {a.get(key)!r} there but is {b.get(key)!r} here"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m search.run``: the exit code (docs/endings.md: 0, 1, 2, 3, 130, 143)."""
    args = parse_args(argv)
    from search.experiment import console

    console.configure(args.verbose)  # before Ray or MLflow are imported
    from contract.redact import redact
    from search import patches
    from search.disk.sqlite_wal import install
    from search.driver import run_search
    from search.experiment.identity import LockedError, SearchLock
    from search.experiment.preflight import UsageError, preflight
    from search.tracking.tracker import TrackingError
    from trainables.yaml_reader import YamlError

    install()  # before any store is opened: the driver's SQLite files are written ahead
    try:
        cfg = load_config(args)
        lock = SearchLock(cfg.experiment_path).acquire()  # held while this function runs: the search's lifetime
        preflight(cfg, args)
        patches.apply()  # an upgraded Ray stops here, before anything is written
    except (ConfigError, DataError, UsageError, TrackingError, LockedError, YamlError, patches.PatchError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return USAGE_EXIT
    try:
        return run_search(cfg, resume=args.resume, address=args.address, verbose=args.verbose)
    finally:
        lock.release()


if __name__ == "__main__":
    import gc

    code = main()
    # Everything is written and closed by now. Python's last collection at exit walks the whole heap (Ray, MLflow,
    # torch, plotly): ~4 s of a search's wall. Frozen objects are left to the OS.
    gc.freeze()
    raise SystemExit(code)
