"""The final phase in the report: runs in a real sqlite MLflow store, loaded apart from the search's trials, and its
numbers exactly contract.final's; the search-time gain only over a completed baseline."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis import summarize as S
from analysis.load import from_mlflow
from analysis.render import write_report
from analysis.sections import best_configuration, build_sections, final_evaluation
from contract import final as contract_final
from contract import metrics as M
from contract import tracking as contract_tracking
from contract.hits import encode as encode_hits
from contract.status import COMPLETED, FAILED, PRUNED
from contract.tracking import (
    BASELINE_TAG,
    FINAL_SEED_TAG,
    FINAL_SOURCE_TAG,
    PARENT_RUN_TAG,
    ROLE_FINAL,
    ROLE_PARENT,
    ROLE_TAG,
    ROLE_TRIAL,
    TRIAL_ID_TAG,
    hits_tags,
)
from tests.analysis.hand_made import hand_made

# search trial -> (status, val_acc per epoch, depth, macs); s0 has no role tag (a search from before roles).
SEARCH = {
    "s0": (COMPLETED, [0.5, 0.6, 0.7, 0.8], 2, 4e6),
    "s1": (COMPLETED, [0.6, 0.7, 0.8, 0.9], 4, 9e6),
    "s2": (COMPLETED, [0.5, 0.7, 0.8, 0.85], 3, 6e6),
    "s3": (COMPLETED, [0.4, 0.5, 0.6, 0.7], 1, 3e6),
    "s4": (PRUNED, [0.3, 0.35], 5, 5e6),
    "s5": (PRUNED, [0.2, 0.3], 6, 8e6),  # the baseline, stopped by ASHA
}
BASELINE = "s5"
# final run -> (source, seed, status, last val_acc, test_acc): near-perfect and cheap, so a leak would top every table.
# s1 and s2 tie on val: the search's better-ranked (s1) wins, whatever order MLflow returns the runs in.
FINAL = {
    "f0": ("s1", 0, COMPLETED, 0.991, 0.90),
    "f1": ("s1", 1, COMPLETED, 0.993, 0.92),
    "f2": ("s1", 2, COMPLETED, 0.992, 0.91),
    "f3": ("s2", 0, COMPLETED, 0.991, 0.89),
    "f4": ("s2", 1, COMPLETED, 0.993, 0.88),
    "f5": ("s2", 2, COMPLETED, 0.992, 0.90),
    "f6": ("s5", 0, COMPLETED, 0.980, 0.85),
    "f7": ("s5", 1, COMPLETED, 0.982, 0.86),
    "f8": ("s5", 2, COMPLETED, 0.981, 0.84),
    "f9": ("s2", 3, FAILED, 0.999, None),  # no test number: not counted, and s2 may not win
}
FINAL_EPOCHS = 4
IMAGES = 40_000  # each final run's per-image hits: 6,688 characters, two tags
LABELS = [i % 7 for i in range(IMAGES)]


def _hits(trial_id: str, test: float):
    """Per-image hits whose mean is ``test``, in an order of their own."""
    hits = np.arange(IMAGES) < round(test * IMAGES)
    return np.random.default_rng(int(trial_id[1:])).permutation(hits)


def _child(client, experiment_id, parent_id, tags, params, curve, extra):
    run_id = client.create_run(experiment_id, tags={PARENT_RUN_TAG: parent_id, **tags}).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(M.VAL_ACC, v, now + 1000 * e, e) for e, v in enumerate(curve, start=1)]
    metrics += [Metric(k, v, now, len(curve)) for k, v in extra.items()]
    client.log_batch(run_id, metrics, [Param(k, str(v)) for k, v in params.items()], [])
    client.set_terminated(run_id)


def _search_trial(client, experiment_id, parent_id, trial_id):
    status, curve, depth, macs = SEARCH[trial_id]
    tags = {TRIAL_ID_TAG: trial_id, M.STATUS: status, BASELINE_TAG: str(trial_id == BASELINE).lower()}
    tags |= {} if trial_id == "s0" else {ROLE_TAG: ROLE_TRIAL}
    extra = {M.MACS: macs, M.PARAMS: macs / 30}
    _child(client, experiment_id, parent_id, tags, {"model.depth": depth, "train.seed": 0}, curve, extra)


def _final_run(client, experiment_id, parent_id, trial_id):
    source, seed, status, val, test = FINAL[trial_id]
    tags = {TRIAL_ID_TAG: trial_id, M.STATUS: status, ROLE_TAG: ROLE_FINAL, FINAL_SOURCE_TAG: source}
    tags |= {FINAL_SEED_TAG: str(seed), BASELINE_TAG: str(source == BASELINE).lower()}
    tags |= hits_tags(encode_hits(_hits(trial_id, test), LABELS)) if test is not None else {}
    params = {"model.depth": SEARCH[source][2], "train.seed": seed}
    curve = [
        val - 0.1 * (FINAL_EPOCHS - e) for e in range(1, FINAL_EPOCHS + 1)
    ]  # its last epoch is the one that counts
    extra = {M.MACS: 1e5, M.PARAMS: 1e3} | ({M.TEST_ACC: test, M.TEST_LOSS: 1 - test} if test is not None else {})
    _child(client, experiment_id, parent_id, tags, params, curve, extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('final')}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("searched")
    parent_id = client.create_run(experiment_id, tags={ROLE_TAG: ROLE_PARENT}).info.run_id
    for trial_id in SEARCH:
        _search_trial(client, experiment_id, parent_id, trial_id)
    for trial_id in FINAL:
        _final_run(client, experiment_id, parent_id, trial_id)
    return uri


def _expected():
    """contract.final on the rows written above, independent of the loader."""
    rows = [
        {"source": s, "seed": seed, "baseline": s == BASELINE, M.STATUS: st, M.VAL_ACC: v, M.TEST_ACC: t}
        | ({contract_final.HITS: encode_hits(_hits(trial_id, t), LABELS)} if t is not None else {})
        for trial_id, (s, seed, st, v, t) in FINAL.items()
    ]
    return contract_final.summarize(rows, "test", PRUNED)


def test_final_runs_are_loaded_apart_and_never_counted_as_search_trials(store):
    exp = from_mlflow("searched", store)
    assert sorted(exp.trials["trial_id"]) == sorted(SEARCH) and sorted(exp.history["trial_id"].unique()) == sorted(
        SEARCH
    )
    assert sorted(exp.final["trial_id"]) == sorted(FINAL)
    final = exp.final.set_index("trial_id")
    assert final.loc["f1", M.VAL_ACC] == pytest.approx(0.993) and final.loc["f1", "epochs"] == FINAL_EPOCHS
    sections = {s.title: s for s in build_sections(exp)}
    assert "Search trials: 4 completed, 2 pruned." in sections["Overview"].text
    shown = set(S.leaderboard(exp, k=100)["trial_id"]) | set(S.importance(exp).fidelity.table["trial_id"])
    shown |= {t for title, s in sections.items() if title.startswith("Pareto") for t in s.tables[0]["trial_id"]}
    assert shown <= set(SEARCH) and S.best_trial(exp)["trial_id"] == "s1"
    assert S.cost(exp)["trials"] == len(SEARCH)


def test_a_search_of_more_runs_than_a_page_holds_is_loaded_whole(store, monkeypatch):
    monkeypatch.setattr(contract_tracking, "RUNS_PAGE", 5)  # 16 runs: four pages, the last one short
    exp = from_mlflow("searched", store)
    assert sorted(exp.trials["trial_id"]) == sorted(SEARCH) and sorted(exp.final["trial_id"]) == sorted(FINAL)


def test_the_final_section_shows_contract_finals_numbers(store):
    exp = from_mlflow("searched", store)
    expected, section = _expected(), final_evaluation(exp)
    assert expected.winner == expected.pick == "s1" and expected.baseline == BASELINE
    table = section.tables[0].set_index("candidate (search trial)")
    assert list(table.index) == ["s1", "s2", "s5"]  # the search's order
    for c in expected.candidates:
        row = table.loc[c.source]
        assert (row["test_acc mean"], row["test_acc std"], row["95% low (seeds)"], row["95% high (seeds)"]) == (
            c.measured.mean, c.measured.std, c.measured.low, c.measured.high,
        )  # fmt: skip
        assert row["val_acc mean (last epoch)"] == c.val.mean and row["seeds"] == "0, 1, 2"
        assert row["role"] == ", ".join(expected.roles(c.source))
    assert table.loc["s2", "runs"] == "3 completed, 1 failed" and table.loc["s1", "role"] == "pick, winner"
    for source, g in expected.gains.items():
        assert g.items == IMAGES and g.paired_low is not None  # the hits came back from their two tags
        assert f"trial {source}: {g.describe()}" in section.text
    assert section.tables[1]["candidate - baseline"].tolist() == ["s1", "s2"]
    assert section.text.startswith("Test split, trained from scratch for 4 epochs, 3 seeds")
    assert "over 3 training seeds, the same 40,000 images" in section.text and "95% Wilson interval" in section.text
    assert "the 2 comparisons with the baseline are not adjusted for their number" in expected.verdict()
    assert expected.verdict()[1:] in section.text
    assert section.tables[2]["trial_id"].tolist() == ["f9"]  # the final run left out, listed


def test_the_report_leads_with_the_final_phase_and_gives_no_gain_over_a_pruned_baseline(store, tmp_path):
    exp = from_mlflow("searched", store)
    best = best_configuration(exp).text
    assert "The baseline, trial s5" in best and "pruned at epoch 2" in best and "no search-time gain" in best
    assert "the search gained" not in best
    names = {p.name for p in write_report(exp, tmp_path, ("md", "csv"))}
    assert "final.csv" in names
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.index("## Final evaluation (test split)") < markdown.index("## Overview")


def test_a_gain_line_only_over_a_completed_baseline():
    exp = hand_made()
    exp.trials["baseline"] = exp.trials["trial_id"] == "b"  # completed, 0.90; the best trial a: 0.95
    assert "completed with best val_acc 0.9000: the search gained +5.00 points on val" in best_configuration(exp).text
    exp.trials["baseline"] = exp.trials["trial_id"] == "c"  # pruned at epoch 2
    text = best_configuration(exp).text
    assert "the search gained" not in text and "pruned at epoch 2: its number is not a finished one" in text


def test_without_a_final_phase_one_line_says_so():
    section = final_evaluation(hand_made())
    assert not section.tables and "No final evaluation ran" in section.text and "optimistic" in section.text


def test_the_configuration_to_retrain_is_the_final_winners(store):
    from analysis.summarize import best_config

    exp = from_mlflow("searched", store)
    assert best_config(exp, "s2")["model"]["depth"] == 3  # a named trial's, e.g. a winner the search ranked 2nd
    assert best_config(exp)["model"]["depth"] == 4  # without one, the search's best trial's (s1)
