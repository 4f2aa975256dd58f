"""``python -m analysis.report EXPERIMENT``: a report of a search, from MLflow alone or a Tune folder.

    python -m analysis.report t2t-search                      # the latest search in that MLflow experiment
    python -m analysis.report 57a79eb460e94c118cd1b04cd09b1218  # a search's parent run id
    python -m analysis.report ray_results/t2t-search --format html,md

Writes report.html (self-contained), report.md with its PNGs, trials.csv and history.csv (final.csv where a final
phase ran), and best_config.yaml (when a trial finished without diverging or failing) to --output-dir (default
reports/NAME), and attaches them to the search's MLflow parent run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from analysis.load import Experiment, NoTrialsError, load
from analysis.render import FORMATS, write_report
from analysis.store import check_store
from contract.cli import Parser
from contract.tracking import DEFAULT_TRACKING_URI, REPORT_ARTIFACTS, no_telemetry

log = logging.getLogger("analysis.report")


def attach(exp: Experiment, files: list[Path]) -> bool:
    """Log the report files as artifacts (folder ``REPORT_ARTIFACTS``) of the search's parent run; False where the
    report was not read from MLflow."""
    if not exp.parent_run_id or not exp.tracking_uri:
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(exp.tracking_uri)
    for path in files:
        client.log_artifact(exp.parent_run_id, str(path), artifact_path=REPORT_ARTIFACTS)
    return True


def make_report(
    experiment: str, tracking_uri: str, out: Path | None = None, formats: tuple[str, ...] = FORMATS
) -> tuple[Experiment, list[Path]]:
    """Load ``experiment`` (see ``analysis.load.load``) and write its report to ``out`` (default reports/NAME)."""
    exp = load(experiment, tracking_uri)
    files = write_report(exp, out or Path("reports") / exp.name, formats)
    return exp, files


def preflight(experiment: str, tracking_uri: str, out: Path | None) -> None:
    """Before anything is read or written: the output folder can be made, and an MLflow store exists (a report
    only reads it: a missing sqlite file is an error, never a new empty database)."""
    if out is not None:
        existing = out
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise ValueError(f"--output-dir {out}: {existing} is not a writable folder: give another --output-dir")
    if not Path(experiment).is_dir():
        check_store(tracking_uri, timeout_s=5.0, must_exist=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.report``: the exit code (0 written, 2 bad input or no finished trial)."""
    no_telemetry()
    parser = Parser(prog="python -m analysis.report", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="MLflow experiment name, a parent run id, or a Tune experiment folder")
    parser.add_argument("--output-dir", type=Path, help="where to write (default reports/NAME)")
    parser.add_argument("--format", default=",".join(FORMATS), help="comma-separated: html, md, csv")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    parser.add_argument("--no-attach", action="store_true", help="do not log the report to the parent run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"error: unknown format {unknown or args.format!r}; choose from {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    # MLflow's client otherwise retries a dead server for minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        preflight(args.experiment, args.tracking_uri, args.output_dir)
        exp, files = make_report(args.experiment, args.tracking_uri, args.output_dir, formats)
    except (NoTrialsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    attached = not args.no_attach and attach(exp, files)
    main_file = next((f for f in files if f.suffix in (".html", ".md")), files[0])
    print(f"report of {exp.name!r}: {main_file}" + (f" (also on MLflow run {exp.parent_run_id})" if attached else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
