"""Screenshots of what a user opens after a search, in headless Chromium, with each page's console messages:
``mlflow ui`` on the experiment (it should open on the trial runs, not MLflow's GenAI overview), the registered
model, the interactive report with a hover label showing, and optuna-dashboard on the study.

    python -m tests.ui_screenshots SEARCH_FOLDER OUT_DIR [--name smoke]

SEARCH_FOLDER is where a search ran (its mlflow.db and ray_results/NAME). A one-off check, not a test: the tests
assert the DOM (tests/analysis/test_report_e2e.py, tests/search/test_optuna_dashboard.py); these are for a person.
Every server it starts listens on 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from contract.files import STUDY_JOURNAL
from contract.tracking import UI_TRAINING_VIEW
from tests.analysis.test_report_e2e import _HOVER_PROBE
from tests.browser import visit
from tests.processes import free_port, kill_session, spawn, wait_for
from tests.search.test_optuna_dashboard import dashboard


def _mlflow_ui(store: str, port: int, log: Path):
    import requests

    proc = spawn([sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
                  "--backend-store-uri", store, "--workers", "1"], log)  # fmt: skip

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
        except requests.RequestException:
            return False

    wait_for(up, 120, "mlflow ui")
    return proc


def _shoot(name: str, url: str, out: Path, wait_s: float = 10.0, script: str = "document.body.innerText") -> str:
    """A screenshot of ``url`` into OUT/NAME.png; prints the console's errors; returns what ``script`` gave."""
    page = visit(url, Path(tempfile.mkdtemp(prefix="chromium-")), wait_s, script, out / f"{name}.png")
    print(f"{name}: {out / f'{name}.png'}; console errors: {page.console or 'none'}")
    return str(page.value or "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="smoke")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{args.folder.resolve()}/mlflow.db"
    exp = MlflowClient(store).get_experiment_by_name(args.name)
    started = []
    try:
        port = free_port()
        started.append(_mlflow_ui(store, port, args.out / "mlflow-ui.log"))
        base = f"http://127.0.0.1:{port}"
        text = _shoot("mlflow-ui-default", f"{base}/#/experiments/{exp.experiment_id}", args.out)
        print(f"  without the view in the address, MLflow opens on: {text.splitlines()[:8]}")
        page = f"{base}/#/experiments/{exp.experiment_id}/runs?{UI_TRAINING_VIEW}"  # what search.run prints
        text = _shoot("mlflow-ui-experiment", page, args.out)
        print(f"  with it: {text.splitlines()[:8]} ... {[x for x in text.splitlines() if 'matching runs' in x]}")
        trial = next(r for r in MlflowClient(store).search_runs([exp.experiment_id]) if "trial_id" in r.data.tags)
        trial_page = f"{base}/#/experiments/{exp.experiment_id}/runs/{trial.info.run_id}"
        text = _shoot("mlflow-ui-trial-run", f"{trial_page}?{UI_TRAINING_VIEW}", args.out)
        print(f"  the trial's run page names its data sets: {'digits' in text}")
        _shoot("mlflow-ui-trial-system-metrics", f"{trial_page}/system-metrics?{UI_TRAINING_VIEW}", args.out)
        _shoot("mlflow-ui-registered-model", f"{base}/#/models/{args.name}", args.out)
        _shoot("mlflow-ui-model-version", f"{base}/#/models/{args.name}/versions/1", args.out)

        from analysis.report import main as report

        report([args.name, "--tracking-uri", store, "--output-dir", str(args.out / "report"), "--no-attach"])
        probe = args.out / "report" / "probe.html"
        html = (args.out / "report" / "report.html").read_text()
        probe.write_text(html.replace("</body>", _HOVER_PROBE % "pareto_macs" + "</body>"))
        hover = _shoot("report-hover", probe.as_uri() + "#pareto_macs", args.out, 5, "document.body.dataset.hover")
        print(f"  the hover label: {hover}")

        study = str(args.folder.resolve() / "ray_results" / args.name / STUDY_JOURNAL)
        dport = free_port()
        started.append(dashboard(study, dport, args.out / "optuna-dashboard.log"))
        _shoot("optuna-dashboard", f"http://127.0.0.1:{dport}/dashboard/studies/1", args.out)
    finally:
        for proc in started:
            kill_session(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
