"""MLflow runs that are found again (no duplicates), never log an epoch twice, and survive a server outage."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from contract import metrics as M
from contract.files import PENDING_WRITES
from contract.status import COMPLETED, DIVERGED, FAILED, PRUNED, RUNNING, trial_status
from contract.tracking import BASELINE_TAG, DATASET_CONTEXT_TAG, TRAIN_SPLIT, VAL_SPLIT
from search.experiment.preflight import check_tracking
from search.tracking.run_index import RunIndex
from search.tracking.tracker import PARENT, MlflowTracker
from search.tracking.writes import EndRun, LogEpoch, LogInputs, SetTags, StartTrial, deliver, from_json
from tests.processes import free_port, kill_session, mlflow_server
from tests.search.stores import ROOT


def _row(epoch: int) -> dict:
    return {
        M.EPOCH: epoch,
        M.VAL_ACC: epoch / 10,
        M.TRAIN_LOSS: 1 / epoch,
        M.PARAMS: 1000,
        M.MACS: 5000,
        M.STATUS: RUNNING,
        "config": {"not": "logged"},
    }


def _tracker(uri: str, tmp_path) -> MlflowTracker:
    return MlflowTracker(uri, "exp", "search-1", str(tmp_path / PENDING_WRITES)).open()


def _start(tracker: MlflowTracker) -> str:
    return tracker.start_parent("search", {"search.num_trials": 2}, {"role": "parent"}, {"config.json": {"a": 1}})


@pytest.mark.processes
def test_writes_are_delivered_in_order_by_the_writer(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = _tracker(uri, tmp_path)
    _start(tracker)
    tracker.trial_started("t1", {"model": {"depth": 3}})
    for epoch in (1, 2, 3):
        tracker.epoch("t1", _row(epoch))
    tracker.trial_ended("t1", COMPLETED)
    assert tracker.drain(timeout_s=60) and tracker.pending() == 0
    client = MlflowClient(uri)
    run_id = tracker.run_id("t1")
    assert [m.step for m in client.get_metric_history(run_id, M.VAL_ACC)] == [1, 2, 3]
    assert client.get_run(run_id).info.status == "FINISHED"
    tracker.close()


def test_writes_that_queued_up_go_out_with_one_log_batch_per_run_and_again_change_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "exp", "search-1")  # not opened: no writer thread, writes applied here
    _start(tracker)
    for trial in ("a", "b"):
        StartTrial(trial, {"model": {"depth": 3}}).apply(tracker.index)
    queued = [LogEpoch("a", _row(1), tags={"node": "n1"}), LogEpoch("b", _row(1)), LogEpoch("a", _row(2)),
              EndRun("a", COMPLETED), SetTags("b", {"note": "x"})]  # fmt: skip
    calls = []
    log_batch = tracker.client.log_batch
    tracker.client.log_batch = lambda run_id, **kw: calls.append(run_id) or log_batch(run_id, **kw)
    deliver(queued, tracker.index)
    assert sorted(calls) == sorted([tracker.run_id("a"), tracker.run_id("b")])
    deliver(queued, RunIndex(uri, "exp", "search-1"))  # delivered again whole (the store failed midway)
    client = MlflowClient(uri)
    run_a, run_b = client.get_run(tracker.run_id("a")), client.get_run(tracker.run_id("b"))
    assert [m.step for m in client.get_metric_history(run_a.info.run_id, M.VAL_ACC)] == [1, 2]
    assert [m.step for m in client.get_metric_history(run_a.info.run_id, M.PARAMS)] == [0]
    assert (
        run_a.info.status == "FINISHED" and run_a.data.tags[M.STATUS] == COMPLETED and run_a.data.tags["node"] == "n1"
    )
    assert [m.step for m in client.get_metric_history(run_b.info.run_id, M.VAL_ACC)] == [1]
    assert run_b.info.status == "RUNNING" and run_b.data.tags["note"] == "x"


def test_a_start_goes_out_with_its_epochs_and_a_call_that_failed_after_it_creates_no_second_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "exp", "search-1")  # not opened: no writer thread, writes applied here
    _start(tracker)
    params = {"model": {f"p{i}": i for i in range(150)}}  # more than one log_batch takes
    queued = [StartTrial("a", params), LogEpoch("a", _row(1)), EndRun("a", COMPLETED)]
    calls, log_batch = [], tracker.client.log_batch

    def fails_once(run_id, **kw):
        calls.append(kw)
        if len(calls) == 1:
            raise ConnectionError("the store went away")
        return log_batch(run_id, **kw)

    tracker.client.log_batch = fails_once
    with pytest.raises(ConnectionError):
        deliver(queued, tracker.index)
    deliver(queued, tracker.index)  # the writer delivers the same writes again
    assert len(calls) == 3  # the failed one; 100 parameters with the epoch and the tags; the other 50
    assert len(calls[1]["params"]) == 100 and calls[1]["metrics"] and calls[1]["tags"]
    assert len(calls[2]["params"]) == 50
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.trial_id = 'a'")
    assert len(runs) == 1 and len(runs[0].data.params) == 150 and runs[0].info.status == "FINISHED"


def test_a_run_found_again_without_parameters_gets_them_from_the_trials_start(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = MlflowTracker(uri, "exp", "search-1")
    _start(first)
    first.index.child_run("b")  # created by a driver that stopped before the run's first log_batch
    again = MlflowTracker(uri, "exp", "search-1")
    deliver([StartTrial("b", {"model": {"depth": 3}})], again.index)
    assert again.run_id("b") == first.run_id("b")
    assert MlflowClient(uri).get_run(again.run_id("b")).data.params == {"model.depth": "3"}


@pytest.mark.processes
def test_an_unpickled_tracker_is_the_open_one(tmp_path):
    """What Tune's restored callback holds after --resume: the driver's own tracker, not a copy."""
    tracker = _tracker(f"sqlite:///{tmp_path}/mlflow.db", tmp_path)
    _start(tracker)
    tracker.trial_started("t1", {})
    assert pickle.loads(pickle.dumps(tracker)) is tracker
    tracker.close()
    other = pickle.loads(pickle.dumps(tracker))  # no open tracker of that search in this process: a new one
    assert other is not tracker and other.search_id == tracker.search_id and other.open_trials() == []


@pytest.mark.processes
def test_runs_are_found_again_and_epochs_never_logged_twice(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = _tracker(uri, tmp_path)
    parent = _start(tracker)
    tracker.trial_started("t1", {"model": {"depth": 3}})
    tracker.epoch("t1", _row(1))
    tracker.epoch("t1", _row(2))
    tracker.close()

    again = _tracker(uri, tmp_path)  # a restarted driver: nothing in memory
    assert _start(again) == parent
    again.trial_started("t1", {"model": {"depth": 3}})
    for epoch in (2, 3):  # the restored trial repeats epoch 2 and goes on
        again.epoch("t1", _row(epoch))
    again.trial_ended("t1", COMPLETED)
    again.trial_ended(PARENT, COMPLETED)
    again.close()

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert len(runs) == 2
    child = next(r for r in runs if r.data.tags.get("trial_id") == "t1")
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.params["model.depth"] == "3"
    assert [m.step for m in client.get_metric_history(child.info.run_id, M.VAL_ACC)] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(child.info.run_id, M.PARAMS)] == [0]
    assert child.info.status == "FINISHED" and child.data.tags[M.STATUS] == COMPLETED
    assert client.get_run(parent).info.status == "FINISHED"


@pytest.mark.processes
def test_a_new_search_under_the_same_name_gets_its_own_parent(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = _tracker(uri, tmp_path)
    other = MlflowTracker(uri, "exp", "search-2", str(tmp_path / "pending2.json")).open()
    assert _start(first) != _start(other)
    first.close()
    other.close()


@pytest.mark.processes
def test_a_tag_on_a_run_that_ended_before_this_driver_leaves_it_ended(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = _tracker(uri, tmp_path)
    _start(tracker)
    tracker.trial_started("t1", {"model": {"depth": 3}})
    tracker.trial_ended("t1", COMPLETED)
    tracker.close()

    again = _tracker(uri, tmp_path)  # a resumed search that tags the (finished) baseline trial at its end
    _start(again)
    again.set_tags("t1", {BASELINE_TAG: "true"})
    again.close()
    run = MlflowClient(uri).get_run(again.run_id("t1"))
    assert run.data.tags[BASELINE_TAG] == "true"
    assert run.info.status == "FINISHED" and run.data.tags[M.STATUS] == COMPLETED


def test_trial_status_from_its_last_result():
    assert trial_status({M.STATUS: COMPLETED}, error=False) == COMPLETED
    assert trial_status({M.STATUS: RUNNING}, error=False) == PRUNED  # stopped before its last epoch
    assert trial_status({M.STATUS: DIVERGED}, error=False) == DIVERGED
    assert trial_status({M.STATUS: RUNNING}, error=True) == FAILED
    assert trial_status(None, error=False) == FAILED


@pytest.mark.processes
def test_a_server_that_goes_away_loses_nothing_and_never_blocks(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    store, artifacts, log = tmp_path / "server.db", tmp_path / "artifacts", tmp_path / "server.log"
    server = mlflow_server(port, store, artifacts, log)
    try:
        check_tracking(uri)
        tracker = _tracker(uri, tmp_path)
        _start(tracker)
        tracker.trial_started("t1", {"model": {"depth": 2}})
        tracker.epoch("t1", _row(1))
        assert tracker.drain(timeout_s=60)
        kill_session(server)  # the server goes away mid-run

        with caplog.at_level(logging.WARNING, logger="search.tracking.tracker"):
            for epoch in (2, 3):
                tracker.epoch("t1", _row(epoch))  # returns at once: the writer thread is the one that waits
            assert not tracker.drain(timeout_s=3) and tracker.pending() == 2
        assert sum("is not answering" in r.message for r in caplog.records) == 1  # one warning per outage

        server = mlflow_server(port, store, artifacts, log)  # back, same store
        tracker.epoch("t1", _row(4))
        tracker.trial_ended("t1", COMPLETED)
        assert tracker.drain(timeout_s=90) and tracker.pending() == 0  # the backoff is at most 30 s
        client = MlflowClient(uri)
        child = client.search_runs([client.get_experiment_by_name("exp").experiment_id], "tags.trial_id = 't1'")[0]
        assert [m.step for m in client.get_metric_history(child.info.run_id, M.VAL_ACC)] == [1, 2, 3, 4]
        assert client.get_run(child.info.run_id).info.status == "FINISHED"

        kill_session(server)  # away at the very end: what is left is saved, not lost...
        tracker.epoch("t1", _row(5))
        tracker.close(timeout_s=2)
        assert "epoch" in (tmp_path / PENDING_WRITES).read_text()

        server = mlflow_server(port, store, artifacts, log)  # ...and the next driver of the search delivers it
        again = _tracker(uri, tmp_path)
        assert again.drain(timeout_s=60) and (tmp_path / PENDING_WRITES).read_text() == ""  # all delivered
        again.close()
        assert not (tmp_path / PENDING_WRITES).exists()
        assert [m.step for m in client.get_metric_history(child.info.run_id, M.VAL_ACC)] == [1, 2, 3, 4, 5]
    finally:
        kill_session(server)


@pytest.mark.processes
def test_deliver_sends_what_a_search_left_undelivered(tmp_path, capsys):
    """``python -m search.deliver``: a finished search whose store was away at its end (writes saved locally)."""
    import json

    from contract.files import SEARCH_CONFIG, SEARCH_ID
    from search.deliver import main as deliver
    from search.experiment.search_config import SearchConfig
    from search.tracking.writes import EndRun, LogEpoch, StartTrial

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = SearchConfig.load(None, [], name="late", storage_path=str(tmp_path / "results")).model_copy(
        update={"tracking_uri": uri}
    )
    folder = tmp_path / "results" / "late"
    folder.mkdir(parents=True)
    (folder / SEARCH_CONFIG).write_text(json.dumps(cfg.to_dict()))
    (folder / SEARCH_ID).write_text("search-late\n")
    tracker = MlflowTracker(uri, "late", "search-late").open()
    _start(tracker)
    tracker.close()
    writes = [StartTrial("t1", {}), LogEpoch("t1", _numbers(_row(1))), EndRun("t1", COMPLETED)]
    (folder / PENDING_WRITES).write_text("".join(json.dumps(w.to_json()) + "\n" for w in writes))

    assert deliver(["--name", "late", "--storage-path", str(tmp_path / "results")]) == 0
    assert not (folder / PENDING_WRITES).exists() and "delivered" in capsys.readouterr().out
    client = MlflowClient(uri)
    child = client.search_runs([client.get_experiment_by_name("late").experiment_id], "tags.trial_id = 't1'")[0]
    assert child.info.status == "FINISHED" and [
        m.step for m in client.get_metric_history(child.info.run_id, M.VAL_ACC)
    ] == [1]
    assert deliver(["--name", "late", "--storage-path", str(tmp_path / "results")]) == 0  # nothing left: fine


def _numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, (int, float))}


KILLED_DRIVER = """
import os, signal, sys
from search.tracking.tracker import MlflowTracker

tracker = MlflowTracker(sys.argv[1], "exp", "search-1", sys.argv[2]).open()  # nothing listens there
tracker.trial_started("t1", {"model": {"depth": 3}})
for epoch in (1, 2):
    tracker.epoch("t1", {"epoch": epoch, "val_acc": epoch / 10})
tracker.trial_ended("t1", "completed")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.processes
def test_a_driver_killed_with_writes_queued_leaves_them_for_the_next_one(tmp_path):
    """Killed while MLflow is away: every write it had queued is in its pending file (the last line may be cut short
    by the kill), and the next driver delivers them and removes the file."""
    pending = tmp_path / "local" / PENDING_WRITES
    dead = f"http://127.0.0.1:{free_port()}"
    killed = subprocess.run([sys.executable, "-c", KILLED_DRIVER, dead, str(pending)], cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(pending.read_text().splitlines()) == 4
    with pending.open("a") as f:
        f.write('{"kind": "epoch", "trial_id": "t1", "ro')  # a write the kill cut short
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _start(MlflowTracker(uri, "exp", "search-1"))  # the search's parent run, as the first driver made it
    resumed = MlflowTracker(uri, "exp", "search-1", str(pending)).open()
    assert resumed.drain(timeout_s=60)
    resumed.close()
    client = MlflowClient(uri)
    run = client.get_run(resumed.run_id("t1"))
    assert run.info.status == "FINISHED" and run.data.tags[M.STATUS] == COMPLETED
    assert run.data.params == {"model.depth": "3"}
    assert [m.step for m in client.get_metric_history(run.info.run_id, M.VAL_ACC)] == [1, 2]
    assert not pending.exists()


def test_a_trials_telemetry_and_data_sets_reach_its_run_from_its_results(tmp_path):
    """What a trial's process sent with its results (trainables.tune): ``system/*`` numbers at each epoch's step,
    GPU ones included, and its splits as data set inputs; delivered again (a resume) or read back from the pending
    file, they add nothing."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "exp", "search-1")  # not opened: no writer thread, writes applied here
    _start(tracker)
    split = {"name": "digits", "digest": "abc", "rows": 9, "num_classes": 10, "image_shape": [1, 8, 8], "source": "s"}
    records = [{**split, "split": TRAIN_SPLIT}, {**split, "split": VAL_SPLIT, "digest": "def", "rows": 3}]
    telemetry = {"system/cpu_utilization_percentage": 50.0, "system/gpu_0_utilization_percentage": 97.0}
    queued = [StartTrial("a", {}), LogInputs("a", records)]
    queued += [LogEpoch("a", {**_row(epoch), **telemetry}) for epoch in (1, 2)]
    queued = [from_json(json.loads(json.dumps(w.to_json()))) for w in queued]  # as kept in the pending file
    deliver(queued, tracker.index)
    deliver(queued, RunIndex(uri, "exp", "search-1"))
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id("a"))
    for name in telemetry:
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2]
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG}
    assert sorted(inputs) == [TRAIN_SPLIT, VAL_SPLIT] and inputs[VAL_SPLIT].digest == "def"
    assert json.loads(inputs[TRAIN_SPLIT].profile)["num_rows"] == 9
