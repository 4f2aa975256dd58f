"""``python -m search.run``: a hyperparameter search of T2T-ViT.

    python -m search.run                                  # the embedded default: digits, local Ray, ~3 min on 2 CPUs
    python -m search.run --smoke-test                     # 3 tiny trials: every part of the path in seconds
    python -m search.run --config configs/cifar10.yaml --address auto --storage-path s3://bucket/t2t
    python -m search.run --name my-search --resume        # continue an interrupted search

Ray Tune schedules the trials (ASHA stops hopeless ones), Optuna proposes them (TPE), and every trial is an MLflow
run nested under the search's parent run (``mlflow ui`` shows them). Bad input exits 2 with one line, before Ray
or MLflow start and without writing anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from search.config import SMOKE_SPACE, SMOKE_TEST, SearchConfig
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, FAILED, INTERRUPTED, PRUNED
from contract.tracking import BASELINE_TAG
from contract.cli import Parser, add_config_arguments
from trainables.config import ConfigError
from trainables.data import DataError, check_available

log = logging.getLogger("search.run")


class UsageError(ValueError):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    sets = list(args.sets)
    if args.smoke_test:  # the smoke space replaces the default one; the user's --set still apply on top
        sets = ["space={}", *SMOKE_TEST, *(f"space.{k}={json.dumps(v)}" for k, v in SMOKE_SPACE.items()), *sets]
    return SearchConfig.load(args.config, sets, name=args.name, storage_path=args.storage_path)


def preflight(cfg: SearchConfig, args: argparse.Namespace) -> None:
    """Everything that can be checked before Ray or MLflow start, writing nothing."""
    from ray import tune

    from search.tracking import check_tracking

    exists = tune.Tuner.can_restore(cfg.experiment_path)
    if args.resume and not exists:
        raise UsageError(f"nothing to resume: no experiment at {cfg.experiment_path} (check --name and --storage-path)")
    if exists and not args.resume:
        raise UsageError(
            f"experiment {cfg.name!r} already exists at {cfg.experiment_path}: pass --resume to continue it, "
            "or --name to start another"
        )
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
        from search.searcher import previous_trials

        url = cfg.search.warm_start
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise UsageError(f"search.warm_start: no study file at {url.removeprefix('sqlite:///')}")
        try:
            previous_trials(url)
        except Exception as e:  # any way the old study cannot be read is a usage error
            raise UsageError(f"search.warm_start: cannot read a study from {url}: {str(e).splitlines()[0]}") from None
    check_tracking(cfg.resolved_tracking_uri)


def study_storage(cfg: SearchConfig) -> str:
    """The Optuna study: an sqlite file in the experiment folder (local storage) or the working directory."""
    folder = cfg.local_experiment_dir
    if folder is None:
        return f"sqlite:///{Path(f'{cfg.name}.optuna.db').resolve()}"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("t2t-search", "torch", "ray", "optuna", "mlflow"):
        try:
            out[f"version.{name}"] = md.version(name)
        except md.PackageNotFoundError:
            out[f"version.{name}"] = "not installed"
    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        out["git.revision"] = rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git.revision"] = "unknown"
    return out


def build_tuner(cfg: SearchConfig, args: argparse.Namespace, tracker, storage: str):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.history import CsvHistory, JsonHistory
    from search.searcher import StudySearcher
    from search.tracking import MlflowCallback, Progress
    from trainables.tune import train_t2t

    s = cfg.search
    resources = {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
    trainable = tune.with_resources(train_t2t, resources)
    if args.resume:
        return tune.Tuner.restore(cfg.experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    searcher = StudySearcher.from_config(cfg, storage)
    if s.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr=M.EPOCH,
            max_t=cfg.base.train.epochs,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=M.OBJECTIVE,
            mode=M.OBJECTIVE_MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=s.num_trials,
            max_concurrent_trials=s.max_concurrent,
            time_budget_s=s.time_budget_s,
            reuse_actors=True,  # a new trial skips a worker start (~3 s of torch imports on a laptop)
            trial_name_creator=lambda trial: f"trial_{trial.trial_id}",
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=cfg.resolved_storage_path,
            callbacks=[MlflowCallback(tracker), Progress(), JsonHistory(), CsvHistory()],
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=s.keep_checkpoints, checkpoint_score_attribute=M.VAL_ACC, checkpoint_score_order="max"
            ),
            verbose=0,  # progress comes from search.tracking.Progress, one line per event
        ),
    )


def summarize(results, tracker, cfg: SearchConfig, storage: str, started: float) -> dict[str, Any]:
    """Statuses, the best and the baseline trial, and the best trials' weights as artifacts of their runs."""
    from search.searcher import baseline_trial_id
    from search.tracking import trial_status

    trials = []
    for result in results:
        metrics = result.metrics or {}
        status = trial_status(metrics, error=result.error is not None)
        trials.append((status, metrics, result))
    counts = {status: sum(t[0] == status for t in trials) for status in (COMPLETED, PRUNED, DIVERGED, FAILED)}
    finished = (COMPLETED, PRUNED)  # a diverged or failed trial is no candidate for "best"
    candidates = [t for t in trials if M.BEST_VAL_ACC in t[1] and t[0] in finished]
    ranked = sorted(candidates, key=lambda t: -t[1][M.BEST_VAL_ACC])
    completed = [t for t in ranked if t[0] == COMPLETED]
    summary: dict[str, Any] = {f"trials_{k}": v for k, v in counts.items()}
    summary["wall_time_s"] = time.monotonic() - started
    if ranked:
        status, best, result = (completed or ranked)[0]
        summary.update(
            best_val_acc=best[M.BEST_VAL_ACC],
            best_trial_id=best["trial_id"],
            best_status=status,
            best_config=result.config,
            best_params=best.get(M.PARAMS),
            best_macs=best.get(M.MACS),
            best_run_id=tracker.run_id(best["trial_id"]),
            best_path=result.path,
        )
        if cfg.local_experiment_dir:
            import yaml

            path = cfg.local_experiment_dir / "best_config.yaml"
            path.write_text(yaml.safe_dump(result.config, sort_keys=False))
            summary["best_config_file"] = str(path)
    baseline = baseline_trial_id(cfg.name, storage)
    for status, metrics, _ in trials:
        if metrics.get("trial_id") == baseline:
            summary.update(
                baseline_trial_id=baseline, baseline_status=status, baseline_val_acc=metrics.get(M.BEST_VAL_ACC)
            )
            tracker.set_tags(baseline, {BASELINE_TAG: "true"})
            break
    for _, metrics, result in completed[: cfg.search.log_checkpoints]:
        _log_weights(tracker, metrics["trial_id"], result)
    return summary


def _log_weights(tracker, trial_id: str, result) -> None:
    """The best checkpoint's model weights (loadable with ``t2t.load_pretrained``) as an MLflow artifact."""
    import tempfile

    import torch

    checkpoint = result.get_best_checkpoint(M.VAL_ACC, "max") or result.checkpoint
    run_id = tracker.run_id(trial_id)
    if checkpoint is None or run_id is None:
        return
    try:
        with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as out:
            state = torch.load(Path(folder) / "checkpoint.pt", map_location="cpu", weights_only=True)
            torch.save(state["model"], Path(out) / "model.pt")
            (Path(out) / "config.json").write_text(json.dumps(state["config"], indent=2))
            tracker.client.log_artifacts(run_id, out, artifact_path="model")
    except Exception as e:
        log.warning("could not log the weights of trial %s to MLflow: %s", trial_id, e)


def write_report(cfg: SearchConfig, parent_id: str) -> str | None:
    """The analysis report, beside the results and on the parent run; a failure here only warns."""
    from analysis.report import attach, make_report

    folder = cfg.local_experiment_dir
    out = folder / "report" if folder else Path("reports") / cfg.name
    try:
        exp, files = make_report(parent_id, cfg.resolved_tracking_uri, out)
        attach(exp, files)
    except Exception as e:  # the search's results are safe; a report can be made again later
        log.warning("could not write the report (%s); make it with: python -m analysis.report %s", e, parent_id)
        return None
    return str(out / "report.html")


def print_summary(summary: dict[str, Any], cfg: SearchConfig, parent_id: str) -> None:
    lines = [
        "",
        f"search {cfg.name!r} done in {summary['wall_time_s']:.0f} s: "
        + ", ".join(f"{summary[f'trials_{k}']} {k}" for k in (COMPLETED, PRUNED, DIVERGED, FAILED)),
    ]
    if "best_val_acc" in summary:
        lines += [
            f"best trial {summary['best_trial_id']} ({summary['best_status']}): val_acc {summary['best_val_acc']:.4f}, "
            f"{(summary['best_params'] or 0) / 1e6:.2f}M parameters, {(summary['best_macs'] or 0) / 1e6:.1f} MMACs",
        ]
        if summary.get("best_config_file"):
            lines.append(f"  retrain it: python -m trainables.train --config {summary['best_config_file']}")
        if summary.get("baseline_val_acc") is not None:
            gain = 100 * (summary["best_val_acc"] - summary["baseline_val_acc"])
            lines.append(
                f"baseline trial {summary['baseline_trial_id']} (the base config's values, "
                f"{summary['baseline_status']}): val_acc {summary['baseline_val_acc']:.4f}; "
                f"the search gained {gain:+.2f} points"
            )
    else:
        lines.append(
            "no trial finished without diverging or failing: their reasons are above and in MLflow "
            "(a diverging search often needs a lower base.optim.lr or base.optim.clip_grad)"
        )
    uri = cfg.resolved_tracking_uri
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI (on a cluster: through the tunnel)
        compare = f"compare the trials at {uri}"
        if "127.0.0.1" in uri:
            compare += " (from your machine: `ray attach cluster.yaml -p 5000`, then http://localhost:5000)"
    else:
        ui = "mlflow ui" if uri == "sqlite:///mlflow.db" else f"mlflow ui --backend-store-uri {uri}"
        compare = f"compare the trials with `{ui}`"
    if summary.get("report"):
        lines.append(f"report:   {summary['report']}")
    lines += [
        f"results:  {cfg.experiment_path}",
        f"MLflow:   experiment {cfg.name!r}, parent run {parent_id} at {uri}; {compare}",
    ]
    print("\n".join(lines))


def local_ray(**kwargs: Any) -> None:
    """Start a local Ray whose every socket listens on 127.0.0.1 only.

    Ray binds its gRPC servers to all interfaces unless clustering is off; this variable (named for macOS and
    Windows, where it is the default) turns it off, and the worker processes inherit it.
    """
    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, **kwargs)


def run_search(cfg: SearchConfig, args: argparse.Namespace) -> int:
    # MLflow's HTTP client otherwise retries a dead server for minutes inside Tune's event loop;
    # Tune saves the experiment state often so a killed driver loses little.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a URL per run; the summary has one
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    # ...and forces a snapshot whenever a trial has made num_to_keep checkpoints: wanted here, so no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own result files come from search.history (each epoch once); no TensorBoard files: MLflow is the UI.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    import ray

    from search.tracking import PARENT, MlflowTracker, flatten

    started = time.monotonic()
    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        local_ray()
    try:
        if args.address:  # a node that cannot see the storage would fail every trial it gets: stop before any
            from search.cluster import StorageError, check_storage

            try:
                check_storage(cfg.resolved_storage_path)
            except StorageError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        storage = study_storage(cfg)
        folder = cfg.local_experiment_dir
        pending = str(folder / "mlflow_pending.json") if folder else None
        tracker = MlflowTracker(cfg.resolved_tracking_uri, cfg.name, cfg.experiment_path, pending)
        config = cfg.to_dict()
        parent_id = tracker.start_parent(
            run_name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            params={k: v for k, v in flatten(config).items() if not k.startswith("space.")},
            tags={**versions(), "optuna.storage": storage, "search.role": "parent"},
            artifacts={"config.json": config, "search_space.json": config["space"]},
        )
        if folder:  # lets `python -m analysis.report FOLDER` work without MLflow
            (folder / "search_config.json").write_text(json.dumps(config, indent=1))
        log.info(
            "search %r: %d trials, results in %s, MLflow parent run %s",
            cfg.name,
            cfg.search.num_trials,
            cfg.experiment_path,
            parent_id,
        )
        tuner = build_tuner(cfg, args, tracker, storage)
        results = tuner.fit()  # Ctrl-C: Tune stops gracefully, saves its state and returns
        if tracker.open_trials():  # trials that Tune stopped without ending them: an interrupted search
            for trial_id in tracker.open_trials():
                tracker.trial_ended(trial_id, INTERRUPTED)
            tracker.trial_ended(PARENT, INTERRUPTED)
            tracker.close(timeout_s=10)
            resume = f"python -m search.run --name {cfg.name} --resume"
            if cfg.storage_path or os.environ.get("T2T_STORAGE_PATH"):
                resume += f" --storage-path {cfg.resolved_storage_path}"
            print(f"interrupted with trials unfinished; continue with: {resume}", file=sys.stderr)
            return 130
        summary = summarize(results, tracker, cfg, storage, started)
        tracker.log_metrics(
            PARENT, {k: v for k, v in summary.items() if k.startswith("trials_") or k == "best_val_acc"}
        )
        tracker.set_tags(
            PARENT, {k: v for k, v in summary.items() if k in ("best_trial_id", "best_run_id", "baseline_trial_id")}
        )
        tracker.trial_ended(PARENT, COMPLETED)
        tracker.close()
        if folder:
            (folder / "search_summary.json").write_text(json.dumps(summary, indent=1, default=str))
        summary["report"] = write_report(cfg, parent_id)
        print_summary(summary, cfg, parent_id)
        return 0 if summary.get(f"trials_{COMPLETED}", 0) or summary.get(f"trials_{PRUNED}", 0) else 1
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from search.tracking import TrackingError

    try:
        cfg = load_config(args)
        preflight(cfg, args)
    except (ConfigError, DataError, UsageError, TrackingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_search(cfg, args)


if __name__ == "__main__":
    raise SystemExit(main())
