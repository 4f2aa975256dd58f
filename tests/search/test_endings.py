"""Every way a search ends leaves Tune, the Optuna study and MLflow telling the same story (tests/search/stores.py),
and a --resume finishes what was left. Real searches: subprocess drivers, a real local Ray, real MLflow stores."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract import metrics as M
from contract.files import PENDING_WRITES, SEARCH_ID
from contract.status import COMPLETED, INTERRUPTED, PRUNED
from contract.tracking import SEARCH_ID_TAG
from tests.processes import free_port, kill_session, mlflow_server, wait_for
from tests.search.stores import (
    RESUMABLE,
    assert_agree,
    epochs,
    finish,
    mlflow_story,
    runs,
    search,
    study_story,
    tune_story,
)

pytestmark = pytest.mark.processes
# Every trial runs every epoch. No final phase unless a test asks: the endings of the search are what is tested
# here, and the final phase's own ending (a killed driver, --resume) is in tests/search/test_killed_search.py. No
# registered champion and no report either (tests/search/test_mlflow_usage.py and tests/analysis read the smoke
# search's): each costs seconds of every driver's end.
SMALL = ["--smoke-test", "--set", "search.scheduler=none", "--set", "base.data.batch_size=32", "--set",
         "search.final.enabled=false", "--set", "search.register_model=false", "--set",
         "search.report=false"]  # fmt: skip
STOPPED = "stopped"  # the search the signal tests stop
BUDGET_S = 25  # the time-budget search's: its two trials at a time have each reported epochs by then


def _results(folder: Path, name: str) -> int:
    """Epochs reported so far, over all trials (Tune's result.json lines)."""
    return sum(len(f.read_text().splitlines()) for f in (folder / "ray_results" / name).glob("trial_*/result.json"))


def _log(folder: Path, name: str = "search.log") -> str:
    return (folder / name).read_text()


def test_a_completed_search_agrees(smoke_search):
    story = assert_agree(smoke_search, "smoke")
    assert set(story.values()) <= {COMPLETED, PRUNED} and len(story) == 3
    _, parents, _ = runs(f"sqlite:///{smoke_search}/mlflow.db", "smoke")
    search_id = (smoke_search / "ray_results" / "smoke" / SEARCH_ID).read_text().strip()
    assert [p.data.tags[SEARCH_ID_TAG] for p in parents] == [search_id]


def test_the_time_budget_ends_a_finished_search(tmp_path):
    args = [*SMALL, "--name", "budget", "--set", "base.train.epochs=200", "--set", f"search.time_budget_s={BUDGET_S}",
            "--set", "search.num_trials=4", "--set", "search.max_concurrent=2",
            "--set", "search.final.enabled=true"]  # fmt: skip
    assert finish(search(tmp_path, *args)) == 0, _log(tmp_path)[-3000:]
    assert f"time budget ({BUDGET_S} s) ran out" in _log(tmp_path)
    assert "no trial completed: no final phase" in _log(tmp_path)  # nothing to retrain 200 epochs for
    story = assert_agree(tmp_path, "budget")
    assert PRUNED in story.values() and RESUMABLE not in story.values()
    client, parents, children = runs(f"sqlite:///{tmp_path}/mlflow.db", "budget")
    assert parents[0].info.status == "FINISHED" and "time budget" in parents[0].data.tags[M.REASON]
    pruned = [c for c in children if c.data.tags[M.STATUS] == PRUNED]
    assert pruned and all("time budget" in c.data.tags[M.REASON] and epochs(client, c) for c in pruned)
    assert (tmp_path / "ray_results" / "budget" / "search_summary.json").is_file()
    # search.register_model and search.report off (SMALL): no model version, no report, the line saying how to make one
    assert client.search_registered_models() == [] and not (tmp_path / "ray_results" / "budget" / "report").exists()
    assert not [a for a in client.list_artifacts(parents[0].info.run_id) if a.path == "report"]
    made = f"report:   not written (search.report: false); make one: python -m analysis.report {parents[0].info.run_id}"
    assert made in _log(tmp_path).splitlines()
    assert finish(search(tmp_path, "--name", "budget", "--resume", log="again.log")) == 2
    assert "has finished: nothing to resume" in _log(tmp_path, "again.log")


@dataclass
class Stop:
    """What the stores said when a driver ended on a signal."""

    code: int
    log: str
    parents: list  # MLflow's parent runs of the search
    stories: tuple[dict, dict, dict]  # Tune's, the study's and MLflow's (tests/search/stores.py)


@dataclass
class Stopped:
    folder: Path
    second: tuple[int, str]  # a second driver started on the search while the first ran: its exit code and log
    stops: list[Stop]
    end: int  # the last resume's exit code


def _interrupt(folder: Path, proc, log: str, sig: int, after: int) -> Stop:
    """Send ``sig`` once ``after`` more epochs were reported; what the stores (and the driver's ``log``) say once
    the driver ended."""
    start = _results(folder, STOPPED)
    try:
        wait_for(lambda: _results(folder, STOPPED) >= start + after, 180, f"{after} more epochs")
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        kill_session(proc)
    experiment = folder / "ray_results" / STOPPED
    uri = f"sqlite:///{folder}/mlflow.db"
    stories = tune_story(experiment), study_story(experiment, STOPPED), mlflow_story(uri, STOPPED)
    return Stop(code, _log(folder, log), runs(uri, STOPPED)[1], stories)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Stopped:
    """One search stopped twice and resumed to its end: Ctrl-C stops the first driver, SIGTERM the resumed one (whose
    callback was unpickled), so each signal once, and a resumed driver's stop as well as a fresh one's. While the
    first driver starts, a second driver is started on the same search (before tuner.pkl exists)."""
    folder = tmp_path_factory.mktemp("stopped")
    args = [*SMALL, "--name", STOPPED, "--set", "base.train.epochs=8"]
    proc = search(folder, *args)
    try:
        wait_for(lambda: "(id " in _log(folder), 120, "the first driver's start")
        second = finish(search(folder, *args, log="second.log"), timeout_s=60), _log(folder, "second.log")
    except BaseException:
        kill_session(proc)
        raise
    stops = []
    for attempt, sig in enumerate((signal.SIGINT, signal.SIGTERM)):
        stops.append(_interrupt(folder, proc, f"search{attempt}.log" if attempt else "search.log", sig, after=1))
        proc = search(folder, "--name", STOPPED, "--resume", log=f"search{attempt + 1}.log")  # the saved config
    return Stopped(folder, second, stops, finish(proc))


def test_a_signal_leaves_a_resumable_search_that_resume_finishes(stopped):
    assert [s.code for s in stopped.stops] == [130, 143]  # Ctrl-C, then SIGTERM
    for stop in stopped.stops:
        assert f"continue with: python -m search.run --name {STOPPED} --resume" in stop.log
        assert len(stop.parents) == 1 and stop.parents[0].info.status == "KILLED"
        parent = stop.parents[0].data.tags
        assert parent[M.STATUS] == INTERRUPTED and "best_run_id" not in parent
        tune, study, mlflow = stop.stories
        assert tune == study == mlflow and RESUMABLE in tune.values()
    assert stopped.end == 0, _log(stopped.folder, "search2.log")[-3000:]
    story = assert_agree(stopped.folder, STOPPED)
    assert list(story.values()) == [COMPLETED] * 3
    client, parents, children = runs(f"sqlite:///{stopped.folder}/mlflow.db", STOPPED)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(epochs(client, c) == list(range(1, 9)) for c in children)


def test_a_second_driver_on_the_same_search_is_refused(stopped):
    code, log = stopped.second
    errors = log.strip().splitlines()
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: another driver (pid"), errors
    assert stopped.stops[0].code == 130  # the first driver went on until its Ctrl-C
    assert len(runs(f"sqlite:///{stopped.folder}/mlflow.db", STOPPED)[1]) == 1  # one parent: the second made none


def test_a_full_disk_stops_the_search_with_one_line_and_resume_finishes_it_elsewhere(tmp_path):
    small, roomy = tmp_path / "small", tmp_path / "roomy"
    small.mkdir()
    roomy.mkdir()
    # 4 MB fill up while the first two trials train: the third is created by the resumed driver, in the moved folder
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        args = [*SMALL, "--name", "full", "--set", "base.train.epochs=10", "--storage-path", str(small)]
        code = finish(search(tmp_path, *args))
        errors = [line for line in _log(tmp_path).splitlines() if line.startswith("error:")]
        assert code == 3 and len(errors) == 1 and "MB free" in errors[0], _log(tmp_path)[-3000:]
        experiment = small / "full"
        for state in experiment.glob("experiment_state-*.json"):
            json.loads(state.read_text())  # complete, not cut short by the full disk
        _, parents, children = runs(f"sqlite:///{tmp_path}/mlflow.db", "full")
        assert parents[0].info.status == "FAILED" and "MB free" in parents[0].data.tags[M.REASON]
        assert len(children) == 2 and all(c.info.status != "RUNNING" for c in children)  # the third: not yet
        shutil.copytree(experiment, roomy / "full")  # moved: the study and Tune's state travel with the folder
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    resumed = search(tmp_path, "--name", "full", "--resume", "--storage-path", str(roomy), log="resume.log")
    assert finish(resumed) == 0, _log(tmp_path, "resume.log")[-3000:]
    (tmp_path / "ray_results").symlink_to(roomy)  # where assert_agree looks
    story = assert_agree(tmp_path, "full")
    assert list(story.values()) == [COMPLETED] * 3


def _ended_in_snapshot(experiment: Path) -> bool:
    """Tune's experiment snapshot holds a trial as ended (False while there is no snapshot yet)."""
    from ray.tune import ExperimentAnalysis

    try:
        return any(t.status == "TERMINATED" for t in ExperimentAnalysis(str(experiment)).trials)
    except (ValueError, OSError):
        return False


def test_a_driver_killed_while_mlflow_is_away_loses_nothing_and_no_credential_is_logged(tmp_path):
    """MLflow goes away while trials report and end; the driver is killed once Tune's snapshot holds a trial that
    ended meanwhile (so no resume runs it again: its last epochs and its end were only in the driver's queue). With
    MLflow back, --resume delivers what the killed driver had queued, and the three stores agree."""
    port = free_port()
    store, artifacts, log = tmp_path / "server.db", tmp_path / "artifacts", tmp_path / "server.log"
    server = mlflow_server(port, store, artifacts, log)
    plain, secret = f"http://127.0.0.1:{port}", "s3cret-pw"
    env = {"MLFLOW_TRACKING_URI": f"http://admin:{secret}@127.0.0.1:{port}"}
    experiment = tmp_path / "ray_results" / "away"
    args = ["--set", "base.train.epochs=4", "--set", "search.num_trials=5"]
    try:
        proc = search(tmp_path, *SMALL, "--name", "away", *args, env=env)
        try:
            wait_for(lambda: _results(tmp_path, "away") >= 1, 180, "a first epoch")
            kill_session(server)  # away while trials keep reporting and ending
            wait_for(lambda: _ended_in_snapshot(experiment), 240, "a trial ended in Tune's snapshot", interval_s=2)
        finally:
            kill_session(proc)  # killed: nothing saved at an ending, only what was kept as it queued
        assert '"kind": "end"' in (experiment / PENDING_WRITES).read_text()  # a trial's end MLflow had not taken
        server = mlflow_server(port, store, artifacts, log)
        resumed = search(tmp_path, "--name", "away", "--resume", log="again.log", env=env)
        assert finish(resumed) == 0, _log(tmp_path, "again.log")[-3000:]
        story = assert_agree(tmp_path, "away", uri=plain)
        assert list(story.values()) == [COMPLETED] * 5
        assert "is not answering" in _log(tmp_path) and "left undelivered" in _log(tmp_path, "again.log")
        assert secret not in _log(tmp_path) + _log(tmp_path, "again.log")
        _, parents, children = runs(plain, "away")
        for run in [*parents, *children]:
            values = {**run.data.params, **run.data.tags}
            assert not [k for k, v in values.items() if secret in v], values
        assert not (experiment / PENDING_WRITES).exists()
    finally:
        kill_session(server)
