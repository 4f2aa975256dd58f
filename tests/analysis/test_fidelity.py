"""Importance and fronts at one fidelity, on hand-made trials where mixing fidelities gives a known wrong answer."""

from __future__ import annotations

import optuna
import pytest

from analysis import summarize as S
from analysis.fidelity import Fidelity, at_one_epoch
from analysis.sections import importance, pareto
from contract import metrics as M
from contract.status import COMPLETED, PRUNED
from tests.analysis.hand_made import from_curves, hand_made

# y alone decides a trial's accuracy at every epoch; x decides only whether ASHA stopped it at epoch 2 (the lowest x).
Y = [(7 * i) % 12 / 11 for i in range(12)]  # each of 0, 1/11, ..., 1 once, in no order of x
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}


def _asha_stopped_by_x(completed: int):
    """12 trials; the ``completed`` ones with the highest x trained 8 epochs, the others were stopped at epoch 2."""
    trials, curves = [], {}
    for i, y in enumerate(Y):
        pruned = i < len(Y) - completed
        trials.append({"trial_id": f"t{i}", M.STATUS: PRUNED if pruned else COMPLETED, "x": i / 11, "y": y})
        curves[f"t{i}"] = [(0.4 + 0.5 * y) * epoch / 8 for epoch in range(1, 3 if pruned else 9)]
    return from_curves(trials, curves, {"space": SPACE})


def _fanova(study) -> dict[str, float]:
    return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))


def test_pruned_trials_that_would_dominate_a_mixed_fidelity_importance_do_not():
    exp = _asha_stopped_by_x(completed=3)  # too few to fit at epoch 8: the fidelity is epoch 2, which all reached
    mixed = exp.trials.assign(**{M.VAL_ACC: exp.trials[M.BEST_VAL_ACC]})  # each trial's best, whatever its epoch
    assert _fanova(S.study(exp, Fidelity(None, mixed)))["x"] > 0.5  # the control: mixed, x "matters"
    imp = S.importance(exp)
    assert (imp.fidelity.epoch, imp.fidelity.trials, imp.fidelity.later_pruned) == (2, 12, 9)
    assert imp.scores["y"] > 0.9 > 0.1 > imp.scores["x"]
    assert S.importance(exp, completed_only=True).scores == {}  # 3 completed trials: not enough


def test_enough_completed_trials_are_fitted_at_their_final_epoch():
    exp = _asha_stopped_by_x(completed=6)
    for imp in (S.importance(exp), S.importance(exp, completed_only=True)):
        assert (imp.fidelity.epoch, imp.fidelity.trials, imp.fidelity.later_pruned) == (8, 6, 0)
        assert imp.scores["y"] > 0.9


def test_the_importance_section_says_which_epoch_and_how_many_trials():
    exp = _asha_stopped_by_x(completed=5)
    exp.trials.loc[exp.trials["trial_id"] == "t0", M.STATUS] = COMPLETED  # 6 completed, one of them after 2 epochs
    fidelity = at_one_epoch(exp)
    section = importance(exp, ["x", "y"], fidelity, S.study(exp, fidelity))
    assert "val_acc at epoch 8 of 5 trials, 0 of them pruned at or after it" in section.text
    assert "val_acc at epoch 8 of 5 completed trials" in section.text  # t0 has no number at epoch 8
    assert list(section.tables[0].columns) == [
        "parameter",
        "importance: val_acc at epoch 8, 5 trials",
        "importance: val_acc at epoch 8, 5 completed trials",
    ]
    assert section.interactive["slices"].layout.yaxis.title.text == "val_acc at epoch 8"


def test_the_fidelity_is_the_highest_epoch_that_enough_trials_reached():
    exp = _asha_stopped_by_x(completed=2)
    exp.trials = exp.trials[exp.trials["trial_id"].isin(["t0", "t1", "t10", "t11"])]  # 4 trials: all of them at 2
    assert at_one_epoch(exp).epoch == 2 and at_one_epoch(exp, min_trials=2).epoch == 8
    assert at_one_epoch(exp).table.set_index("trial_id")[M.VAL_ACC].to_dict() == {
        f"t{i}": (0.4 + 0.5 * Y[i]) * 2 / 8 for i in (0, 1, 10, 11)
    }


def test_fronts_hold_completed_trials_only_and_draw_pruned_ones_apart():
    exp = hand_made()  # d: pruned at epoch 4 with the highest accuracy; c: pruned at epoch 2
    section = pareto(exp, M.MACS, ["model.depth"])
    assert section.tables[0]["trial_id"].tolist() == ["b", "a"]
    traces = {t.name: t for t in section.interactive["pareto_macs"].data}
    assert set(traces) == {
        COMPLETED,
        "Pareto front",
        "pruned: lower bound at epoch 2",
        "pruned: lower bound at epoch 4",
    }
    assert sorted(c[0] for c in traces[COMPLETED].customdata) == ["a", "b", "f"]
    assert [c[0] for c in traces["pruned: lower bound at epoch 4"].customdata] == ["d"]
    assert list(traces["Pareto front"].y) == pytest.approx([0.90, 0.95])  # b then a: d's 0.97 is not on it
    labels = section.figures["pareto_macs"].axes[0].get_legend_handles_labels()[1]
    assert "pruned: lower bound at epoch 4" in labels and "diverged" not in labels
