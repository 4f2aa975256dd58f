"""Reports of a real smoke search: from MLflow alone, from the Tune folder, rendered by headless Chromium."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from analysis.fidelity import MIN_TRIALS
from analysis.report import main
from contract import metrics as M
from contract.files import BEST_CONFIG, REPORT_DIR
from contract.status import COMPLETED
from contract.tracking import ROLE_PARENT, ROLE_TAG
from tests.browser import open_page
from trainables.config import TrainConfig

pytestmark = pytest.mark.processes


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
    } <= names
    assert "importance.png" not in names  # 3 trials: too few for fANOVA at one fidelity (analysis.fidelity)
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
    assert f"not computed: needs {MIN_TRIALS} trials" in markdown and "## Final evaluation (test split)" in markdown
    assert "The baseline, trial " in markdown  # the run tagged search.baseline
    trials = pd.read_csv(out / "trials.csv")
    baseline = trials[trials["baseline"]].iloc[0]
    assert ("the search gained" in markdown) == (baseline[M.STATUS] == COMPLETED)  # a gain only over a completed one
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


def _report(smoke_search) -> Path:
    return smoke_search / "ray_results" / "smoke" / REPORT_DIR / "report.html"


def test_html_renders_in_headless_chromium(smoke_search, tmp_path):
    page = _report(smoke_search)
    html = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", html)  # self-contained: opens offline
    assert html.count('class="plotly-graph-div"') >= 5  # every plot interactive
    shot = tmp_path / "shot.png"
    loaded = open_page(page.as_uri(), tmp_path / "profile", screenshot=shot)
    assert loaded.console == []  # no script error, nothing it failed to load (the network resolves nothing)
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02  # text and plots, not a blank page
    assert pixels.std() > 0.1


# After the page's load: a synthetic hover on a plot's first point (plotly's own Fx.hover), then what plotly's hover
# layer shows, written into the DOM for --dump-dom.
_HOVER_PROBE = """<script>
window.addEventListener("load", function () {
  var out = {};
  try {
    var div = document.getElementById("%s");
    Plotly.Fx.hover(div, [{curveNumber: 0, pointNumber: 0}]);
    out.texts = Array.from(div.querySelectorAll(".hoverlayer .hovertext")).map(function (e) { return e.textContent; });
  } catch (e) { out.error = String(e); }
  document.body.setAttribute("data-hover", JSON.stringify(out));
});
</script>"""


@pytest.mark.parametrize("stem", ["learning_curves", "pareto_macs"])
def test_a_hover_names_the_trial(smoke_search, tmp_path, stem):
    probe = tmp_path / "probe.html"
    probe.write_text(_report(smoke_search).read_text().replace("</body>", _HOVER_PROBE % stem + "</body>"))
    loaded = open_page(probe.as_uri(), tmp_path / "profile")
    assert loaded.console == []
    found = re.search(r'data-hover="([^"]*)"', loaded.dom)
    assert found, loaded.dom[-2000:]
    hover = json.loads(html.unescape(found.group(1)))
    assert "error" not in hover and len(hover["texts"]) == 1, hover
    trials = MlflowClient(f"sqlite:///{smoke_search}/mlflow.db").search_runs(
        [MlflowClient(f"sqlite:///{smoke_search}/mlflow.db").get_experiment_by_name("smoke").experiment_id]
    )
    ids = {r.data.tags["trial_id"] for r in trials if "trial_id" in r.data.tags}
    assert any(hover["texts"][0].startswith(f"trial {i} (") for i in ids), (hover, ids)


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
