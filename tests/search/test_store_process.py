"""MLflow's client in a process of its own: the same answers and errors, a dead child replaced, no child left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.tracking import MlflowClient

from search.tracking.store_process import StoreProcess, _portable
from tests.processes import kill_all, wait_for
from tests.search.stores import ROOT

pytestmark = pytest.mark.processes  # each test starts the store's child process


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended too
    except FileNotFoundError:
        return False


class _Odd(MlflowException):
    """An error whose ``__init__`` takes what pickling's copy does not pass (as MLflow's ``RestException``)."""

    def __init__(self, payload: dict):
        super().__init__(payload["message"], error_code=ErrorCode.Value(payload["code"]))


@pytest.fixture
def store(tmp_path):
    process = StoreProcess(f"sqlite:///{tmp_path}/mlflow.db")
    yield process
    pid = process.pid
    process.close()
    if pid is not None:
        kill_all(lambda: {pid} if _alive(pid) else set())


def test_calls_run_in_the_child_and_their_answers_come_back(store, tmp_path):
    experiment = store.create_experiment("exp")
    run = store.create_run(experiment, run_name="r", tags={"k": "v"})
    store.log_batch(run.info.run_id, params=[], metrics=[])
    store.set_terminated(run.info.run_id, "FINISHED")
    assert store.pid is not None and store.pid != os.getpid()
    seen = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run.info.run_id)  # the same store, read here
    assert seen.data.tags["k"] == "v" and seen.info.status == "FINISHED"
    assert [r.info.run_id for r in store.search_runs([experiment])] == [run.info.run_id]


def test_a_child_started_early_makes_nothing_before_its_first_call(tmp_path):
    """What ``search.driver`` starts before Ray, before it has checked the search; and what it leaves."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    unused = StoreProcess(uri)
    unused.start()
    unused.close()  # the child read its URI, then the end
    assert list(tmp_path.iterdir()) == []
    early = StoreProcess(uri)
    try:
        early.start()
        early.create_experiment("exp")
    finally:
        early.close()
    assert not (tmp_path / "mlflow.db-wal").exists()  # closed as it left: SQLite merged its log into the file
    assert MlflowClient(uri).get_experiment_by_name("exp").name == "exp"


def test_an_error_comes_back_with_its_type_and_error_code(store):
    store.create_experiment("exp")
    with pytest.raises(MlflowException) as raised:
        store.create_experiment("exp")
    assert raised.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert store.get_experiment_by_name("exp") is not None  # the child goes on after an error


def test_an_error_that_cannot_be_pickled_keeps_its_message_and_code():
    class Local(Exception):  # a local class cannot be pickled
        pass

    local = _portable(Local("no"))
    assert type(local) is RuntimeError and str(local) == "Local: no"
    odd = _portable(_Odd({"message": "gone", "code": "RESOURCE_DOES_NOT_EXIST"}))
    assert type(odd) is MlflowException and str(odd) == "gone" and odd.error_code == "RESOURCE_DOES_NOT_EXIST"
    error = MlflowException("kept", error_code=ErrorCode.Value("INVALID_PARAMETER_VALUE"))
    assert _portable(error) is error  # what pickles comes back as it is


def test_a_dead_child_fails_one_call_and_the_next_starts_a_new_one(store):
    store.create_experiment("exp")
    first = store.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ConnectionError, match="store process ended"):
        store.get_experiment_by_name("exp")
    assert not _alive(first)
    assert store.get_experiment_by_name("exp").name == "exp"  # a new child, the same store
    assert store.pid not in (None, first)


def test_the_child_ignores_ctrl_c_and_a_terminate_of_the_process_group(store):
    store.create_experiment("exp")
    for stop in (signal.SIGINT, signal.SIGTERM):
        os.kill(store.pid, stop)
    assert store.get_experiment_by_name("exp").name == "exp"


def test_close_ends_the_child(store):
    store.create_experiment("exp")
    pid = store.pid
    store.close()
    assert store.pid is None and not _alive(pid)


_DRIVER = """
import sys
from search.tracking.store_process import StoreProcess
store = StoreProcess(sys.argv[1])
store.create_experiment("exp")
print(store.pid, flush=True)
sys.stdin.read()  # until killed
"""


def test_a_driver_killed_with_sigkill_leaves_no_child(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, f"sqlite:///{tmp_path}/mlflow.db"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = None
    try:
        child = int(driver.stdout.readline())
        assert _alive(child)
        driver.kill()
        driver.wait(timeout=15)
        wait_for(lambda: not _alive(child), timeout_s=30, what="the store process to end after its driver")
    finally:
        driver.kill()
        driver.wait(timeout=15)
        if child is not None:
            kill_all(lambda: {child} if _alive(child) else set())
