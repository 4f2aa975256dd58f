"""A population-based search (``search.mode=pbt``) on digits, end to end: a member copies another's checkpoint, the
lineage is in MLflow (copy tags, ``hp/*`` metrics per epoch, ``schedule.json``), and the final phase retrains the
best member's schedule, epoch by epoch, against the base config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from contract import final
from contract import metrics as M
from contract import schedule as S
from contract.files import FINAL_EXPERIMENT, SCHEDULE_FILE, SEARCH_SUMMARY
from contract.tracking import COPY_TAG_PREFIX, FINAL_SOURCE_TAG, ROLE_FINAL, TRIAL_ID_TAG
from search.experiment.search_config import SearchConfig
from search.population.draw import draw_population
from search.population.scheduler import KeepInSpace, MemberPB2, MemberPBT, build_population_scheduler
from tests.search.stores import runs

# Two members on digits, the smallest model; the learning rate is the one key that changes. One member starts from the
# base config (3e-3: it learns), the other, for a seed found below, from 1e-7 (it cannot), so that it is the bottom
# half at a perturbation and copies the other one.
POPULATION = [
    "search.mode=pbt", "search.population.size=2", "search.population.quantile=0.5", "search.cpus_per_trial=0.5",
    "base.model.name=t2t_vit_test", "base.train.epochs=4", "base.data.batch_size=64", "base.optim.lr=0.003",
    "base.optim.min_lr=0.0",
    "search.head_dim=16", "search.final.seeds=2", "search.log_checkpoints=1",
    "space={}", "space.optim.lr={type: choice, values: [1.0e-7, 0.003]}",
]  # fmt: skip


def _seed_with_a_hopeless_member() -> int:
    """The first search.seed whose second member draws the learning rate that cannot learn."""
    for seed in range(50):
        cfg = SearchConfig.load(None, [*POPULATION, f"search.seed={seed}"])
        if draw_population(cfg)[1]["optim"]["lr"] == 1.0e-7:
            return seed
    raise AssertionError("no seed in 50 draws 1e-7 for the second member")


def _schedule(client, run_id: str, folder: Path) -> S.Schedule:
    """The schedule.json artifact of a run."""
    path = client.download_artifacts(run_id, SCHEDULE_FILE, str(folder))
    return S.from_artifact(json.loads(Path(path).read_text()))


def _merged(schedule: S.Schedule, key: str, epochs: int) -> list:
    """``key``'s value at each epoch, 1 to ``epochs``."""
    return [S.value(S.config_at(schedule, e), key) for e in range(1, epochs + 1)]


def test_the_population_starts_from_the_base_config_and_the_space():
    cfg = SearchConfig.load(None, [*POPULATION, "search.population.size=4", "search.seed=3"])
    members = draw_population(cfg)
    assert len(members) == 4 and members[0]["optim"]["lr"] == 0.003
    assert {m["optim"]["lr"] for m in members} <= {1.0e-7, 0.003}
    assert draw_population(cfg) == members  # seeded: the final phase draws the base member again


def test_a_base_config_over_the_budget_is_no_baseline():
    from search.population.draw import base_member

    cfg = SearchConfig.load(None, [*POPULATION, "search.seed=0"])
    assert base_member(cfg)["optim"]["lr"] == 0.003
    assert base_member(SearchConfig.load(None, [*POPULATION, "search.baseline=false"])) is None
    space = ["space.model.depth={type: int, low: 1, high: 2}", "base.model.depth=2"]
    small = SearchConfig.load(None, [*POPULATION, *space, "search.max_params=30000"])  # depth 2 is over, 1 is not
    assert all(m["model"]["depth"] == 1 for m in draw_population(small)) and base_member(small) is None


def test_a_population_smoke_test_is_long_enough_to_copy():
    from search.run import load_config, parse_args

    cfg = load_config(parse_args(["--smoke-test", "--set", "search.mode=pbt", "--set", "search.population.interval=2"]))
    assert (cfg.base.train.epochs, cfg.search.population.interval, cfg.search.population.quantile) == (3, 2, 0.5)
    assert load_config(parse_args(["--smoke-test"])).base.train.epochs == 2  # the study's is as it was


def test_the_schedulers_keep_values_in_the_space():
    cfg = SearchConfig.load(None, ["search.mode=pb2", "search.population.mutable=[optim.lr, model.drop_path_rate]"])
    space, population = cfg.search_space, cfg.search.population
    keys = population.mutable
    pb2 = build_population_scheduler("pb2", space, population, keys, 4)
    assert isinstance(pb2, MemberPB2) and pb2.last_epoch == 4
    assert pb2._hyperparam_bounds == {"optim": {"lr": [1e-3, 4e-3]}, "model": {"drop_path_rate": [0.0, 0.2]}}
    pbt = build_population_scheduler("pbt", space, population, keys, 4)
    assert isinstance(pbt, MemberPBT) and pbt._resample_probability == population.resample_probability
    clipped = KeepInSpace(space, keys)({"optim": {"lr": 9e-3}, "model": {"drop_path_rate": -0.1}})
    assert clipped == {"optim": {"lr": 4e-3}, "model": {"drop_path_rate": 0.0}}
    stepped = SearchConfig.load(
        None,
        [
            "search.mode=pbt",
            "space.train.label_smoothing={type: float, low: 0.0, high: 0.2, step: 0.05}",
            "search.population.mutable=[train.label_smoothing]",
        ],
    )
    snap = KeepInSpace(stepped.search_space, ("train.label_smoothing",))({"train": {"label_smoothing": 0.137}})
    assert snap["train"]["label_smoothing"] == pytest.approx(0.15)


@pytest.mark.processes
def test_a_member_copies_another_and_the_final_phase_follows_its_schedule(tmp_path: Path):
    from tests.conftest import run_search

    sets = [*POPULATION, f"search.seed={_seed_with_a_hopeless_member()}"]
    args = [a for s in sets for a in ("--set", s)]
    assert run_search(tmp_path, "--name", "pop", *args) == 0, (tmp_path / "search.log").read_text()[-3000:]
    experiment = tmp_path / "ray_results" / "pop"
    summary = json.loads((experiment / SEARCH_SUMMARY).read_text())
    assert summary["trials_completed"] == 2

    client, parents, members = runs(f"sqlite:///{tmp_path}/mlflow.db", "pop")
    assert len(parents) == 1 and len(members) == 2
    schedules, copies = {}, 0
    for run in members:
        trial_id = run.data.tags[TRIAL_ID_TAG]
        schedule = _schedule(client, run.info.run_id, tmp_path / trial_id)
        schedules[trial_id] = schedule
        own = [s for s in schedule if s.get("from") and s["owner"] == trial_id]
        tags = {k: v for k, v in run.data.tags.items() if k.startswith(COPY_TAG_PREFIX)}
        # every copy the member made is a tag, those its weights' lineage still holds included
        assert set(tags) >= {f"{COPY_TAG_PREFIX}{s['id']}" for s in own}
        for segment in own:
            assert tags[f"{COPY_TAG_PREFIX}{segment['id']}"].startswith(
                f"epoch {segment['epoch']}: copied trial {segment['from']}"
            )
        others = set(schedules) | {run.data.tags[TRIAL_ID_TAG] for run in members}
        assert all(re.fullmatch(r"epoch \d: copied trial (\S+); .*", v)[1] in others for v in tags.values())
        copies += len(tags)
        # The epochs the member trained since its last copy are logged last, with the value that trained each
        # (the epochs before are its ancestors', in their runs).
        latest, start = {}, schedule[-1]["epoch"]
        for m in sorted(client.get_metric_history(run.info.run_id, "hp/optim.lr"), key=lambda m: m.timestamp):
            latest[m.step] = m.value
        assert [latest[e] for e in range(start + 1, 5)] == pytest.approx(_merged(schedule, "optim.lr", 4)[start:])
        assert {m.step for m in client.get_metric_history(run.info.run_id, M.VAL_ACC)} == {1, 2, 3, 4}
    assert copies >= 1, schedules  # the hopeless member copied the other one

    result = final.FinalResult.from_dict(summary["final"])
    assert result.baseline == final.BASE_SOURCE and result.pick in schedules
    parent_artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    if result.winner == final.BASE_SOURCE:  # the recommendation is a config, not a schedule
        assert SCHEDULE_FILE not in parent_artifacts and summary["best_config_file"] and not summary["schedule_file"]
    else:
        parent_schedule = _schedule(client, parents[0].info.run_id, tmp_path / "parent")
        assert parent_schedule == schedules[result.winner] and summary["schedule_file"]
        assert "--schedule" in (tmp_path / "search.log").read_text()

    _, _, finals = runs(f"sqlite:///{tmp_path}/mlflow.db", "pop", ROLE_FINAL)
    assert sorted(r.data.tags[FINAL_SOURCE_TAG] for r in finals) == sorted([result.pick] * 2 + [final.BASE_SOURCE] * 2)
    followed = 0
    for checkpoint in (experiment / FINAL_EXPERIMENT).glob("final_*/checkpoint_*/checkpoint.pt"):
        state = torch.load(checkpoint, weights_only=True)
        if state["epoch"] != 4:
            continue
        source = next(r for r in finals if r.data.tags[TRIAL_ID_TAG] == checkpoint.parts[-3].removeprefix("final_"))
        if source.data.tags[FINAL_SOURCE_TAG] == result.pick:  # each epoch trained with the pick's value
            assert _merged(state["schedule"], "optim.lr", 4) == _merged(schedules[result.pick], "optim.lr", 4)
            followed += 1
        else:  # the base config, as it is
            assert len(state["schedule"]) == 1 and state["schedule"][0]["config"]["optim"]["lr"] == 0.003
    assert followed == 2

    report = (experiment / "report" / "report.md").read_text()
    section = report[report.index("## Population") :].split("\n## ", 1)[0]
    assert f"{copies} copies" in section and section.count("| ") >= copies
    assert "## Hyperparameter importance" not in report  # a member's parameters are only where it started
    assert (experiment / "report" / "population.png").is_file()
