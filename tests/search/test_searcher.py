"""The searcher on a real Optuna study: what the study learns from each kind of trial ending."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import t2t
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, FAILED, RUNNING
from search.experiment.search_config import SearchConfig
from search.study.searcher import RAY_TRIAL_ID, StudySearcher
from trainables.config import TrainConfig

SPACE = [
    "space={}",
    "space.model.embed_dim={type: choice, values: [32, 128]}",
    "space.model.depth={type: int, low: 1, high: 2}",
    "space.model.tokens_type={type: choice, values: [performer, transformer]}",
    "space.model.performer_kernel_ratio={type: float, low: 0.25, high: 1.0, when: {model.tokens_type: performer}}",
    "base.model.name=t2t_vit_test",
    "search.head_dim=16",
]


def _searcher(tmp_path, *sets: str, storage: bool = True) -> StudySearcher:
    cfg = SearchConfig.load(None, [*SPACE, *sets], name="study")
    return StudySearcher.from_config(cfg, str(tmp_path / "o.journal") if storage else None)


def _params(config: dict) -> int:
    cfg = TrainConfig.from_dict(config)
    return t2t.complexity(cfg.model.build_config(32, 1, 10)).params


def test_conditional_parameters_and_derived_heads(tmp_path):
    searcher = _searcher(tmp_path, "search.sampler=random")
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        model = config["model"]
        assert model["num_heads"] == model["embed_dim"] // 16
        assert ("performer_kernel_ratio" in model) == (model["tokens_type"] == "performer")
        TrainConfig.from_dict(config)  # every proposal is a valid config


def test_over_budget_configs_are_refused_before_they_train(tmp_path):
    small = _params(TrainConfig.load(None, ["model.name=t2t_vit_test", "model.depth=2"]).to_dict())
    budget = small + 1000  # embed_dim 32 fits, embed_dim 128 does not
    searcher = _searcher(tmp_path, "search.sampler=random", f"search.max_params={budget}")
    proposed = [searcher.suggest(f"t{i}") for i in range(6)]
    assert all(_params(c) <= budget for c in proposed)
    assert all(c["model"]["embed_dim"] == 32 for c in proposed)
    trials = searcher.study.get_trials()
    refused = [t for t in trials if t.user_attrs.get(M.STATUS) == "refused"]
    assert refused, "the random sampler must have proposed embed_dim 128 at least once"
    for trial in refused:
        assert trial.state == TrialState.PRUNED
        assert trial.constraints["params"] > 0
        assert RAY_TRIAL_ID not in trial.user_attrs  # never became a Ray trial
        assert "over budget: params by" in trial.user_attrs[M.REASON]
    live = [t for t in trials if RAY_TRIAL_ID in t.user_attrs]
    assert len(live) == 6 and all(t.constraints["params"] <= 0 for t in live)


def _result(epoch: int, acc: float, status: str, **extra) -> dict:
    return {M.EPOCH: epoch, M.VAL_ACC: acc, M.BEST_VAL_ACC: acc, M.STATUS: status, M.MACS: 1e6, **extra}


def test_each_ending_reaches_the_study_as_it_happened(tmp_path):
    searcher = _searcher(tmp_path)
    for name in ("completed", "pruned", "diverged", "failed"):
        searcher.suggest(name)
        searcher.on_trial_result(name, _result(1, 0.2, RUNNING))
        searcher.on_trial_result(name, _result(1, 0.2, RUNNING))  # a repeated epoch is reported once
    searcher.on_trial_complete("completed", _result(2, 0.5, COMPLETED))
    searcher.on_trial_complete("pruned", _result(2, 0.3, RUNNING))  # the scheduler stopped it
    searcher.on_trial_complete("diverged", _result(2, 0.0, DIVERGED, reason="loss became nan"))
    searcher.on_trial_complete("failed", None, error=True)
    by_id = {t.user_attrs[RAY_TRIAL_ID]: t for t in searcher.study.get_trials()}
    assert by_id["completed"].state == TrialState.COMPLETE and by_id["completed"].value == 0.5
    assert by_id["completed"].intermediate_values == {1: 0.2, 2: 0.5}
    assert by_id["pruned"].state == TrialState.PRUNED
    assert by_id["pruned"].intermediate_values == {1: 0.2, 2: 0.3}
    assert by_id["pruned"].user_attrs["stopped_at_epoch"] == 2
    assert by_id["diverged"].state == TrialState.FAIL
    assert by_id["diverged"].user_attrs[M.REASON] == "loss became nan"
    assert by_id["failed"].state == TrialState.FAIL and by_id["failed"].user_attrs[M.STATUS] == FAILED


def test_multi_objective_tells_accuracy_and_macs(tmp_path):
    searcher = _searcher(tmp_path, "search.multi_objective=true", "search.scheduler=none")
    searcher.suggest("a")
    searcher.on_trial_complete("a", _result(2, 0.5, COMPLETED))
    assert searcher.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert searcher.study.get_trials()[0].values == [0.5, 1e6]


def test_restore_rebuilds_the_trial_map_from_the_study(tmp_path):
    searcher = _searcher(tmp_path)
    first = searcher.suggest("running")
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = _searcher(tmp_path)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("running") == first  # the same proposal, not a new trial
    restored.on_trial_complete("running", _result(3, 0.7, COMPLETED))
    trials = restored.study.get_trials()
    assert len(trials) == 1 and trials[0].state == TrialState.COMPLETE


def test_in_memory_study_cannot_be_pickled_silently(tmp_path):
    import pickle

    with pytest.raises(RuntimeError, match="give the searcher a storage URL"):
        pickle.dumps(_searcher(tmp_path, storage=False))


def test_warm_start_copies_the_finished_trials_of_a_previous_search(tmp_path):
    old = _searcher(tmp_path)
    for name, status in (("a", COMPLETED), ("b", RUNNING)):
        old.suggest(name)
        old.on_trial_complete(name, _result(2, 0.4, status))
    (tmp_path / "new").mkdir()
    new = _searcher(tmp_path / "new", f"search.warm_start={tmp_path}/o.journal")
    copied = new.study.get_trials()
    assert [t.state for t in copied] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert copied[0].params == old.study.get_trials()[0].params
    new.suggest("c")  # proposals continue after the copied trials
    assert len(new.study.get_trials()) == 3


def test_the_first_trial_trains_the_base_config_values(tmp_path):
    lr = "space.optim.lr={type: float, low: 1.0e-3, high: 1.0e-2, log: true}"
    wd = "space.optim.weight_decay={type: float, low: 0.1, high: 0.2}"  # the base's 0.05 lies outside
    searcher = _searcher(tmp_path, "search.sampler=random", "base.optim.lr=0.003", lr, wd)
    first = searcher.suggest("t0")
    assert (first["model"]["embed_dim"], first["model"]["depth"]) == (32, 2)  # t2t_vit_test's own values
    assert first["model"]["tokens_type"] == "performer" and first["model"]["performer_kernel_ratio"] == 0.5
    assert first["optim"]["lr"] == 0.003
    assert 0.1 <= first["optim"]["weight_decay"] <= 0.2  # sampled instead
    for i in range(1, 8):
        searcher.suggest(f"t{i}")
    trials = searcher.study.get_trials()
    assert [t.user_attrs.get("baseline", False) for t in trials] == [True] + [False] * 7
    assert len({(t.params["model.embed_dim"], t.params["optim.lr"]) for t in trials}) == 8  # the rest are sampled

    reopened = StudySearcher.from_config(SearchConfig.load(None, [*SPACE, lr, wd], name="study"), searcher.storage_url)
    reopened.suggest("t8")  # a restored search does not enqueue the baseline again
    assert sum(t.user_attrs.get("baseline", False) for t in reopened.study.get_trials()) == 1

    (tmp_path / "off").mkdir()
    off = _searcher(tmp_path / "off", "search.baseline=false", "search.sampler=random", "base.optim.lr=0.003", lr)
    off.suggest("t0")
    assert off.study.get_trials()[0].params["optim.lr"] != 0.003
    assert "baseline" not in off.study.get_trials()[0].user_attrs


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_restored_searcher_continues_the_study_without_repeating_its_proposals(tmp_path, sampler):
    first = _searcher(tmp_path, f"search.sampler={sampler}", "search.baseline=false")
    proposed = [first.suggest(f"t{i}") for i in range(3)]
    path = tmp_path / "searcher-state.pkl"
    first.save(str(path))

    again = _searcher(tmp_path, f"search.sampler={sampler}", "search.baseline=false")  # a resumed driver
    again.restore(str(path))
    assert again.suggest("t0") == proposed[0]  # a trial it had already proposed: the same config
    (tmp_path / "other").mkdir()
    fresh = _searcher(tmp_path / "other", f"search.sampler={sampler}", "search.baseline=false")  # a new search
    assert [again.suggest(f"n{i}") for i in range(3)] != [fresh.suggest(f"n{i}") for i in range(3)]
    assert len(again.study.trials) == 6


def test_a_moved_results_folder_keeps_its_study(tmp_path, monkeypatch):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    searcher = StudySearcher.from_config(SearchConfig.load(None, SPACE, name="study"), str(old / "optuna.journal"))
    searcher.suggest("t0")
    searcher.save(str(old / "searcher-state.pkl"))
    old.rename(new)
    monkeypatch.setattr(StudySearcher, "restored_storage", str(new / "optuna.journal"))  # what the driver sets
    restored = StudySearcher.from_config(SearchConfig.load(None, SPACE, name="study"), None)
    restored.restore(str(new / "searcher-state.pkl"))
    assert restored.storage_url == str(new / "optuna.journal") and len(restored.study.trials) == 1
