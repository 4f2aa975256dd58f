"""A report of many trials stays readable and small: the leading trials highlighted, the rest in one faint style,
the leaderboard capped, the page growing far slower than the trials. (Its time at 1,000 trials is
benchmarks/report_scale.py's.)"""

from __future__ import annotations

import dataclasses
import random

import plotly.graph_objects as go
from matplotlib.collections import LineCollection

from analysis import interactive, plots, sections
from analysis import summarize as S
from analysis.render import write_report
from analysis.sections import build_sections
from analysis.to_html import plotly_js
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, PRUNED
from tests.analysis.hand_made import SETTINGS, from_curves, hand_made


def many(n: int, seed: int = 0):
    """``n`` trials over SETTINGS' 6 epochs: stopped at rung 2 or 4 or completed, one in 25 diverged at its last
    epoch (no val_acc there); trial 0 the baseline."""
    rng, trials, curves = random.Random(seed), [], {}
    for i in range(n):
        final, trial_id = rng.uniform(0.6, 0.98), f"t{i:04d}"
        status = DIVERGED if i % 25 == 24 else rng.choice([PRUNED, PRUNED, PRUNED, COMPLETED])
        epochs = 6 if status == COMPLETED else rng.choice([2, 4])
        curve = [final * (1 - 0.5 * 0.6**e) for e in range(epochs)]
        curves[trial_id] = [*curve[:-1], float("nan")] if status == DIVERGED else curve
        trials.append({"trial_id": trial_id, M.STATUS: status, M.MACS: rng.uniform(2e6, 2e7),
                       M.PARAMS: rng.uniform(1e5, 1e6), M.VAL_LOSS: 1 - final, M.REASON: None, "baseline": i == 0,
                       "model.depth": rng.randint(1, 6), "optim.lr": 10 ** rng.uniform(-4, -1)})  # fmt: skip
    return from_curves(trials, curves, SETTINGS)


def test_learning_curves_highlight_the_leading_trials_and_draw_the_rest_in_one_faint_trace():
    exp = many(120)
    leading = S.leading_trials(exp)
    assert leading[: S.LEADING] == list(S.leaderboard(exp)["trial_id"]) and "t0000" in leading
    assert len(leading) <= S.LEADING + 2  # the board's, the best trial and the baseline
    fig = interactive.learning_curves(exp, [2, 4], leading)
    others = [t for t in fig.data if t.name.startswith("other")]
    assert [t.name for t in others] == [f"other {120 - len(leading)} trials"] and len(fig.data) == len(leading) + 1
    assert others[0].line.color == plots.OTHER_COLOR and others[0].opacity == plots.OTHER_ALPHA
    assert {t.name.split(" ")[0] for t in fig.data if t not in others} == set(leading)
    baseline = next(t for t in fig.data if t.name.startswith("t0000"))
    assert baseline.line.dash == "dash"
    png = plots.learning_curves(exp, [2, 4], leading).axes[0]
    faint = [c for c in png.collections if isinstance(c, LineCollection)]
    assert len(faint) == 1 and len(faint[0].get_segments()) == 120 - len(leading)
    assert len(png.get_lines()) == len(leading) + 2  # and the two rungs


def test_a_small_search_draws_every_trial_as_before():
    exp = many(8)
    fig = interactive.learning_curves(exp, [2, 4], S.leading_trials(exp))
    assert len(fig.data) == 8 and not any(t.name.startswith("other") for t in fig.data)
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    board = next(s for s in build_sections(exp) if s.title == "Leaderboard")
    assert "trials.csv" not in board.text


def test_the_leaderboard_is_capped_with_a_line_naming_the_rest_and_the_curves_say_which_are_highlighted():
    exp = many(60)
    by_title = {s.title: s for s in build_sections(exp)}
    board = by_title["Leaderboard"]
    assert len(board.tables[0]) == S.LEADING
    assert f"The other {60 - S.LEADING} trials are in trials.csv" in board.text
    n = len(S.leading_trials(exp))
    assert (
        f"the {n} leading trials (the leaderboard's and the best, the baseline dashed) drawn so, the other "
        f"{60 - n} faint grey" in by_title["Learning curves"].text
    )


def test_the_page_grows_by_little_per_trial(tmp_path):
    """Beside plotly.js, the page grows by a few hundred bytes a trial (every trial in its own trace took ~600), and
    the learning curves by a few dozen bytes an epoch (~110 with a trace a trial)."""
    page, curves, points = {}, {}, {}
    for n in (50, 150):
        exp = many(n)
        write_report(exp, tmp_path / str(n), ("html",))
        page[n] = (tmp_path / str(n) / "report.html").stat().st_size - len(plotly_js())
        curves[n] = len(interactive.learning_curves(exp, [2, 4], S.leading_trials(exp)).to_json())
        points[n] = len(exp.history)
    assert (page[150] - page[50]) / 100 < 450, page
    assert (curves[150] - curves[50]) / (points[150] - points[50]) < 60, (curves, points)


def test_importance_on_the_same_trials_at_the_same_epoch_is_fitted_once():
    exp = many(60)  # only completed trials reach epoch 6: both importances see the same trials
    every = S.importance(exp)
    assert S.importance(exp, completed_only=True).scores == every.scores  # what a second fit says
    marked = dataclasses.replace(every, scores={"model.depth": 1.0})  # scores no fit gives: seen only if reused
    completed = S.importance(exp, completed_only=True, known=marked)
    assert completed.scores == marked.scores and "completed trials" in completed.note
    other = hand_made()  # its completed trials are fewer than its trials at the epoch of the fit
    known = dataclasses.replace(S.importance(other), scores={"model.depth": 1.0})
    assert S.importance(other, completed_only=True, known=known).scores != known.scores


def test_importance_is_fitted_on_at_most_fit_trials_evenly_spaced_in_trial_order(monkeypatch):
    exp = many(120)
    fid = S.importance(exp).fidelity
    shuffled = dataclasses.replace(fid, table=fid.table.sample(frac=1, random_state=1))
    picked = S.fit_sample(shuffled, 8)
    ids = sorted(fid.table["trial_id"])
    evenly = [ids[round(i * (len(ids) - 1) / 7)] for i in range(8)]  # the first, the last and six between
    assert picked.trials == 8 and list(picked.table["trial_id"]) == evenly
    assert picked.epoch == fid.epoch and S.fit_sample(fid, len(ids)) is fid
    monkeypatch.setattr(S, "FIT_TRIALS", 8)
    capped = S.importance(exp)
    assert capped.scores and f"of {fid.trials} trials" in capped.note and "fitted on 8 of them" in capped.note


def test_the_interactive_parallel_coordinates_draw_at_most_drawn_trials_the_best_among_them(monkeypatch):
    exp = many(150)
    fid = S.importance(exp).fidelity
    drawn = S.plot_sample(fid, 12)
    best = set(fid.table.nlargest(S.LEADING, M.VAL_ACC)["trial_id"])
    assert drawn.trials == 12 and best <= set(drawn.table["trial_id"]) and S.plot_sample(fid, fid.trials) is fid
    monkeypatch.setattr(S, "DRAWN_TRIALS", 12)
    section = sections.parallel_coordinates(exp, S.searched_params(exp), fid, S.study(exp, fid))
    assert f"({fid.trials} trials" in section.text and "The interactive plot draws 12 of them" in section.text
    unsampled = interactive.parallel_coordinates(S.study(exp, fid), S.searched_params(exp), fid.label())
    assert len(section.interactive["parallel_coordinates"].data) == len(unsampled.data) - (fid.trials - 12)
