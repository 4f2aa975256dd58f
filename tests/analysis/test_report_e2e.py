"""Reports of a real smoke search: from MLflow alone, from the Tune folder, rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import matplotlib.image
import pytest
import yaml
from mlflow.tracking import MlflowClient

from analysis.report import main
from contract.files import BEST_CONFIG, REPORT_DIR
from contract.tracking import ROLE_PARENT, ROLE_TAG
from trainables.config import TrainConfig

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")


def test_report_from_mlflow_alone(smoke_search, tmp_path, capsys):
    uri = f"sqlite:///{smoke_search}/mlflow.db"
    out = tmp_path / "report"  # a user with only the tracking store: no Tune folder is read
    assert main(["smoke", "--tracking-uri", uri, "--output-dir", str(out), "--no-attach"]) == 0
    assert f"report of 'smoke': {out}/report.html" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {
        "report.html",
        "report.md",
        "trials.csv",
        "history.csv",
        BEST_CONFIG,
        "learning_curves.png",
        "parallel_coordinates.png",
        "pareto_macs.png",
        "importance.png",
    } <= names
    markdown = (out / "report.md").read_text()
    for heading in (
        "Leaderboard",
        "Hyperparameter importance",
        "Parallel coordinates",
        "Learning curves",
        "Pareto front: accuracy vs macs",
        "Cost",
        "Failures and divergences",
    ):
        assert f"## {heading}" in markdown
    assert "Method: fANOVA" in markdown
    assert "The baseline, trial " in markdown and "the search gained" in markdown  # the run tagged search.baseline
    TrainConfig.from_dict(yaml.safe_load((out / BEST_CONFIG).read_text()))  # ready to retrain


def test_report_from_the_tune_folder(smoke_search, tmp_path):
    out = tmp_path / "report"
    folder = smoke_search / "ray_results" / "smoke"
    assert main([str(folder), "--output-dir", str(out), "--format", "md,csv", "--no-attach"]) == 0
    assert not (out / "report.html").exists() and (out / "report.md").is_file()
    markdown = (out / "report.md").read_text()
    assert "Source: Tune folder" in markdown
    assert "ASHA compared trials at epochs [1]" in markdown  # the search's settings travel with the folder
    assert "The baseline, trial " in markdown  # named in search_summary.json


def test_html_renders_in_headless_chromium(smoke_search, tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian: apt-get install chromium)")
    page = smoke_search / "ray_results" / "smoke" / REPORT_DIR / "report.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: opens offline
    assert html.count("<img") == html.count('src="data:image/png;base64,') >= 5  # every plot embedded
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert console == []
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02  # text and plots, not a blank page
    assert pixels.std() > 0.1


def test_no_finished_trials_is_a_clear_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("empty")
    client.create_run(experiment, tags={ROLE_TAG: ROLE_PARENT})
    assert main(["empty", "--tracking-uri", uri, "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'empty'" in err and "has no trial with a finished epoch yet" in err
    assert main(["nothing-here", "--tracking-uri", uri]) == 2
    assert "is neither an MLflow experiment nor a run id" in capsys.readouterr().err
