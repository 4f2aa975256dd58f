"""The final phase: the best configuration and the baseline retrained with seeds and measured once on test, as
Tune trials with MLflow runs under the search's parent; a killed driver's --resume finishes it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from contract import final
from contract import metrics as M
from contract.files import BEST_CONFIG, SEARCH_SUMMARY
from contract.status import COMPLETED
from contract.tracking import BASELINE_TAG, FINAL_SEED_TAG, FINAL_SOURCE_TAG, ROLE_FINAL
from search.study.searcher import RAY_TRIAL_ID
from tests.search.stores import assert_agree, load_study, runs


def _rows(client, finals) -> list[dict]:
    """contract.final's rows, read back from MLflow alone."""
    rows = []
    for run in finals:
        val = client.get_metric_history(run.info.run_id, M.VAL_ACC)
        rows.append({
            final.SOURCE: run.data.tags[FINAL_SOURCE_TAG],
            final.SEED: int(run.data.tags[FINAL_SEED_TAG]),
            final.BASELINE: run.data.tags.get(BASELINE_TAG) == "true",
            M.STATUS: run.data.tags[M.STATUS],
            M.VAL_ACC: max(val, key=lambda m: m.step).value,
            M.TEST_ACC: run.data.metrics.get(M.TEST_ACC),
        })  # fmt: skip
    return rows


def test_the_final_phase_retrains_the_best_and_the_baseline_on_test(smoke_search):
    folder = smoke_search
    uri = f"sqlite:///{folder}/mlflow.db"
    client, parents, trials = runs(uri, "smoke")
    _, _, finals = runs(uri, "smoke", ROLE_FINAL)
    study = load_study(folder / "ray_results" / "smoke", "smoke")
    searched = {t.user_attrs[RAY_TRIAL_ID] for t in study.trials}
    assert {c.data.tags["trial_id"] for c in trials} == searched  # the study never sees a final run

    summary = json.loads((folder / "ray_results" / "smoke" / SEARCH_SUMMARY).read_text())
    sources = {r.data.tags[FINAL_SOURCE_TAG] for r in finals}
    assert summary["best_trial_id"] in sources and summary["baseline_trial_id"] in sources and sources <= searched
    assert len(finals) == 2 * len(sources)  # --smoke-test: 2 seeds per configuration
    for run in finals:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.params["train.evaluate_test"] == "True"
        assert run.data.params["train.seed"] == run.data.tags[FINAL_SEED_TAG] != "0"  # not the search's seed
        assert run.data.tags[M.STATUS] == COMPLETED and M.TEST_ACC in run.data.metrics

    order = [c["source"] for c in summary["final"]["candidates"]]  # the search's ranking: it breaks ties on val
    rows = sorted(_rows(client, finals), key=lambda r: (order.index(r[final.SOURCE]), r[final.SEED]))
    expected = final.summarize(rows)  # the numbers MLflow holds give the summary's numbers
    assert final.FinalResult.from_dict(summary["final"]) == expected and summary["final_split"] == "test"
    metrics = parents[0].data.metrics
    assert metrics["final_test_acc_mean"] == expected.candidate(expected.winner).test.mean
    experiment = folder / "ray_results" / "smoke"
    winner_config = json.loads((experiment / f"trial_{expected.winner}" / "params.json").read_text())
    assert yaml.safe_load((experiment / BEST_CONFIG).read_text()) == winner_config  # the one to retrain
    log = (folder / "search.log").read_text()
    assert "final phase (test split" in log and expected.verdict() in log
    assert log.index("final phase (test split") < log.index("search-time numbers (val")
    assert_agree(folder, "smoke")  # Tune's final experiment and MLflow's final runs agree too


def test_no_test_number_reaches_the_search(smoke_search: Path):
    """The search's own records (Tune's results of its trials, the study) hold no test_* key."""
    experiment = smoke_search / "ray_results" / "smoke"
    for result in experiment.glob("trial_*/result.json"):
        for line in result.read_text().splitlines():
            assert not any(k.startswith("test_") for k in json.loads(line)), line
    study = load_study(experiment, "smoke")
    for trial in study.trials:
        assert not any("test" in k for k in trial.user_attrs), trial.user_attrs
