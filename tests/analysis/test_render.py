"""The report written from a hand-made experiment, and an experiment read back from a hand-made Tune folder."""

from __future__ import annotations

import json

import yaml

from analysis import summarize as S
from analysis.load import from_tune
from analysis.render import write_report
from analysis.sections import build_sections
from contract import metrics as M
from contract.files import BEST_CONFIG, SEARCH_CONFIG
from contract.status import COMPLETED, DIVERGED, FAILED, PRUNED, RUNNING
from contract.summary import SearchSummary
from tests.analysis.hand_made import hand_made


def test_every_format_and_the_best_config_from_summarize(tmp_path):
    exp = hand_made()
    files = write_report(exp, tmp_path)
    names = {p.name for p in files}
    assert {"report.html", "report.md", "trials.csv", "history.csv", BEST_CONFIG, "learning_curves.png"} <= names
    assert all(p.is_file() for p in files)
    assert yaml.safe_load((tmp_path / BEST_CONFIG).read_text()) == S.best_config(exp)
    html = (tmp_path / "report.html").read_text()
    figures = ("importance", "slices", "parallel_coordinates", "learning_curves", "pareto_macs", "pareto_params")
    assert all(f'id="{stem}" class="plotly-graph-div"' in html for stem in figures)  # each figure interactive
    assert html.count("<script") == 1 + len(figures) and "<script src" not in html  # plotly.js once, inline
    assert len(html) < 6_000_000  # plotly.js is ~4.7 MB of it
    markdown = (tmp_path / "report.md").read_text()
    assert "best trial, a (completed)" in markdown and "![learning_curves](learning_curves.png)" in markdown


def test_only_the_formats_asked_for(tmp_path):
    names = {p.name for p in write_report(hand_made(), tmp_path, ("csv",))}
    assert names == {BEST_CONFIG, "trials.csv", "history.csv"}


def test_an_all_diverged_search_still_has_a_report_but_no_best_config(tmp_path):
    exp = hand_made()
    exp.trials = exp.trials[exp.trials[M.STATUS] == DIVERGED].reset_index(drop=True)
    exp.history = exp.history[exp.history["trial_id"].isin(exp.trials["trial_id"])].reset_index(drop=True)
    best = next(s for s in build_sections(exp) if s.title == "Best configuration")
    assert "No trial finished without diverging or failing" in best.text and not best.code
    names = {p.name for p in write_report(exp, tmp_path)}
    assert BEST_CONFIG not in names and not (tmp_path / BEST_CONFIG).exists()
    assert "No trial finished without diverging or failing" in (tmp_path / "report.md").read_text()


def _trial(folder, trial_id, results, error=None):
    trial = folder / f"train_{trial_id}"
    trial.mkdir()
    rows = [{"trial_id": trial_id, "timestamp": 1000.0 + 10 * r[M.EPOCH], M.EPOCH_TIME_S: 10.0, **r} for r in results]
    for row in rows:
        row["config"] = {"model": {"depth": 2}, "optim": {"lr": 0.001}}
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if error:
        (trial / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{error}\n")


def _tune_folder(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    _trial(
        folder,
        "done",
        [{M.EPOCH: 1, M.VAL_ACC: 0.5, M.STATUS: RUNNING}, {M.EPOCH: 2, M.VAL_ACC: 0.7, M.STATUS: COMPLETED}],
    )
    _trial(folder, "stopped", [{M.EPOCH: 1, M.VAL_ACC: 0.4, M.STATUS: RUNNING}])  # the scheduler stopped it
    _trial(folder, "crashed", [{M.EPOCH: 1, M.VAL_ACC: 0.3, M.STATUS: RUNNING}], error="RuntimeError: out of memory")
    (folder / SEARCH_CONFIG).write_text(json.dumps({"search": {"scheduler": "asha"}}))
    return folder


def test_a_tune_folder_while_the_search_runs(tmp_path):
    trials = from_tune(_tune_folder(tmp_path)).trials.set_index("trial_id")
    assert trials[M.STATUS].to_dict() == {"crashed": FAILED, "done": COMPLETED, "stopped": RUNNING}
    assert trials.loc["crashed", M.REASON] == "RuntimeError: out of memory"
    assert not trials["baseline"].any()


def test_a_tune_folder_once_the_search_ended(tmp_path):
    folder = _tune_folder(tmp_path)
    SearchSummary(baseline_trial_id="stopped").write(folder)
    exp = from_tune(folder)
    trials = exp.trials.set_index("trial_id")
    assert trials[M.STATUS].to_dict() == {"crashed": FAILED, "done": COMPLETED, "stopped": PRUNED}
    assert trials["baseline"].to_dict() == {"crashed": False, "done": False, "stopped": True}
    assert trials.loc["done", "model.depth"] == 2 and trials.loc["done", M.BEST_VAL_ACC] == 0.7
    assert exp.setting("search.scheduler") == "asha"
    assert S.best_trial(exp)["trial_id"] == "done"
