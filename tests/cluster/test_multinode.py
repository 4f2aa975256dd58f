"""The search on a real two-host Ray cluster (two network namespaces, token auth, the head's MLflow server with basic
auth), and the faults a cluster has: a worker host's raylet dies, the MLflow server goes away for 30 s, a worker host
lacks the shared storage. See tests/cluster/netns.py for the hosts and how they are torn down."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from contract import metrics as M
from contract.files import PENDING_WRITES
from contract.status import COMPLETED
from contract.tracking import DATASET_CONTEXT_TAG, NODE_IPS_TAG, TRAIN_SPLIT, VAL_SPLIT
from tests.cluster.netns import HEAD_IP, WORKER_IP, Cluster
from tests.processes import wait_for

pytestmark = pytest.mark.cluster
CPU_METRIC = "system/cpu_utilization_percentage"  # one of the telemetry a trial's process sends (MLflow's name)


def _search_args(name: str, cluster: Cluster, *sets: str) -> list[str]:
    args = ["--smoke-test", "--name", name, "--storage-path", str(cluster.storage)]
    # every trial runs every epoch; the final phase (the same Tune machinery, tests/search/test_final.py) is off
    for item in ("search.scheduler=none", "base.data.batch_size=32", "search.final.enabled=false", *sets):
        args += ["--set", item]
    return args


def _rows(cluster: Cluster, name: str) -> dict[str, list[dict]]:
    """Tune's own per-trial history (result.json), by trial folder."""
    out = {}
    for path in (cluster.storage / name).glob("trial_*/result.json"):
        lines = path.read_text().splitlines()
        out[path.parent.name] = [json.loads(line) for line in lines if line.strip()]
    return out


def _finish(cluster: Cluster, proc, timeout_s: float) -> tuple[int, str]:
    code = proc.wait(timeout=timeout_s)  # a driver still running after a failure goes with the cluster's teardown
    return code, (cluster.folder / "search.log").read_text()


def client_of(cluster: Cluster) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cluster.mlflow}/mlflow.db")  # the server's own store, read directly


def _runs(cluster: Cluster, name: str):
    client = client_of(cluster)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _start_two_hosts_and_mlflow(cluster: Cluster) -> None:
    cluster.start_node(HEAD_IP)
    cluster.start_node(WORKER_IP)
    cluster.start_mlflow()


def _assert_every_epoch_once(cluster: Cluster, name: str, trials: int, epochs: int) -> list:
    """One FINISHED run per trial, each with epochs 1..N exactly once, in MLflow and in Tune's history."""
    client, parents, children = _runs(cluster, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == trials and len({c.data.tags["trial_id"] for c in children}) == trials
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags[M.STATUS] == COMPLETED, child.data.tags
        steps = [m.step for m in client.get_metric_history(child.info.run_id, M.VAL_ACC)]
        assert steps == list(range(1, epochs + 1)), (child.data.tags["trial_id"], steps)
    for trial, rows in _rows(cluster, name).items():
        assert [r[M.EPOCH] for r in rows] == list(range(1, epochs + 1)), trial
    return children


def test_trials_spread_over_both_hosts_and_survive_a_dead_worker_raylet(cluster):
    _start_two_hosts_and_mlflow(cluster)
    name, epochs = "spread", 6
    proc = cluster.search(*_search_args(name, cluster, "search.num_trials=3", f"base.train.epochs={epochs}"))

    def a_trial_is_midway_on_the_worker() -> bool:
        return any(
            2 <= len(rows) < epochs and rows[-1]["node_ip"] == WORKER_IP for rows in _rows(cluster, name).values()
        )

    wait_for(a_trial_is_midway_on_the_worker, 240, "a trial past its second epoch on the worker host", 0.5)
    os.kill(cluster.raylet_pid(WORKER_IP), signal.SIGKILL)  # the worker host's raylet dies mid-trial

    code, log = _finish(cluster, proc, 420)
    assert code == 0, log[-4000:]
    assert f"lost its worker on node {WORKER_IP}" in log and f"continues on node {HEAD_IP}" in log, log[-4000:]
    children = _assert_every_epoch_once(cluster, name, trials=3, epochs=epochs)  # nothing lost, nothing repeated

    for child in children:  # sent with the results from either host: the worker's trials cannot reach MLflow
        steps = [m.step for m in client_of(cluster).get_metric_history(child.info.run_id, CPU_METRIC)]
        assert steps == list(range(1, epochs + 1)), (child.data.tags["trial_id"], steps)
        splits = {i.tags[0].value for i in child.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG}
        assert splits == {TRAIN_SPLIT, VAL_SPLIT}, child.data.tags["trial_id"]
    hosts = {c.data.tags[NODE_IPS_TAG] for c in children}
    assert f"{WORKER_IP},{HEAD_IP}" in hosts, hosts  # the moved trial: begun on the worker, finished on the head
    assert {HEAD_IP, WORKER_IP} <= {ip for h in hosts for ip in h.split(",")}
    nodes = {row["node_ip"] for rows in _rows(cluster, name).values() for row in rows}
    assert nodes == {HEAD_IP, WORKER_IP}
    assert list(cluster.mlflow.glob("artifacts/**/report.html")), "the report reached the server's artifact store"


def test_mlflow_server_down_for_30_s_mid_search(cluster):
    _start_two_hosts_and_mlflow(cluster)
    name, epochs = "outage", 12
    sets = "search.num_trials=2", f"base.train.epochs={epochs}", "search.register_model=false", "search.report=false"
    proc = cluster.search(*_search_args(name, cluster, *sets))

    def reported() -> int:
        return sum(len(rows) for rows in _rows(cluster, name).values())

    wait_for(lambda: reported() >= 2, 240, "the first results", 0.5)
    cluster.stop_mlflow()
    before = reported()
    time.sleep(30)
    during = reported() - before
    cluster.start_mlflow()  # same store, same port: the driver's buffered writes go through

    code, log = _finish(cluster, proc, 420)
    assert code == 0, log[-4000:]
    assert during >= 2, "the trials kept training while MLflow was away"
    assert log.count("is not answering") == 1 and "buffered writes delivered" in log, log[-4000:]
    _assert_every_epoch_once(cluster, name, trials=2, epochs=epochs)
    assert not (cluster.storage / name / PENDING_WRITES).exists()


def test_a_worker_without_the_shared_storage_is_a_clear_error(cluster):
    cluster.start_node(HEAD_IP)
    cluster.start_node(WORKER_IP, private_storage=True)  # its own empty tmpfs where the storage should be
    tracking = f"sqlite:///{cluster.folder}/mlflow.db"
    proc = cluster.search(*_search_args("blind", cluster), tracking_uri=tracking)

    code, log = _finish(cluster, proc, 240)
    assert code == 2, log[-4000:]
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log[-4000:]
    assert f"storage path {cluster.storage} is not visible from node(s) {WORKER_IP}" in errors[0]
    assert "--storage-path s3://" in errors[0]  # ...and the fix
    client = MlflowClient(tracking)
    assert client.get_experiment_by_name("blind") is None  # stopped before any run or trial was made
    assert not list(Path(cluster.storage).glob("blind/trial_*"))


def test_a_trial_on_both_hosts_whose_worker_host_dies_resumes_when_the_host_is_back(cluster):
    """A trial of two 1-CPU workers on two 1-CPU hosts: one rank on each (search.workers_per_trial). The worker
    host's raylet dies mid-trial, taking its rank; the trial waits for room for both ranks, the host comes back, and
    the trial continues from its checkpoint: every epoch once in MLflow and in Tune."""
    _start_two_hosts_and_mlflow(cluster)
    name, epochs = "ddp", 6
    sets = ("search.num_trials=1", "search.workers_per_trial=2", "search.cpus_per_trial=2",
            f"base.train.epochs={epochs}", "search.register_model=false", "search.report=false")  # fmt: skip
    proc = cluster.search(*_search_args(name, cluster, *sets))

    def midway() -> bool:
        return any(2 <= len(rows) < epochs for rows in _rows(cluster, name).values())

    wait_for(midway, 240, "the trial past its second epoch", 0.5)
    os.kill(cluster.raylet_pid(WORKER_IP), signal.SIGKILL)
    cluster.start_node(WORKER_IP)  # the host is back (a replaced spot node)

    code, log = _finish(cluster, proc, 420)
    assert code == 0, log[-4000:]
    _assert_every_epoch_once(cluster, name, trials=1, epochs=epochs)
    from ray.tune import ExperimentAnalysis

    (trial,) = ExperimentAnalysis(str(cluster.storage / name)).trials
    assert trial.num_failures >= 1 and trial.placement_group_factory.bundles == [{"CPU": 1.0}] * 2
