"""Reading a search's record from MLflow: the metric histories, read in bulk from a database store."""

from __future__ import annotations

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from analysis import load
from contract import metrics as M

KEYS = (M.VAL_ACC, M.TRAIN_LOSS)


def _as_tuples(metrics) -> list[tuple]:
    return [(m.key, m.value, m.timestamp, m.step) for m in metrics]


def test_histories_read_in_bulk_are_the_ones_read_run_by_run(tmp_path, monkeypatch):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = client.create_experiment("bulk")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(5)]
    for i, run_id in enumerate(run_ids[:4]):  # the last run logs nothing
        metrics = [Metric(M.VAL_ACC, 0.1 * i + 0.01 * e, 1000 * e, e) for e in range(1, i + 2)]
        metrics += [Metric(M.TRAIN_LOSS, 2.0 - e, 1000 * e, e) for e in range(1, 3)] if i % 2 else []
        client.log_batch(run_id, metrics)
    client.log_batch(run_ids[1], [Metric(M.VAL_ACC, 0.5, 9000, 1)])  # step 1 again, later: last in its history
    monkeypatch.setattr(load, "BULK_RUNS", 2)  # three queries a key: the pages meet between runs
    one_by_one = client.get_metric_history
    monkeypatch.setattr(client, "get_metric_history", None)  # a database store is read in bulk, never run by run

    histories = load.metric_histories(client, run_ids, KEYS)

    monkeypatch.setattr(client, "get_metric_history", one_by_one)
    assert set(histories) == {(run_id, key) for run_id in run_ids for key in KEYS}
    for (run_id, key), metrics in histories.items():
        assert _as_tuples(metrics) == _as_tuples(client.get_metric_history(run_id, key)), (run_id, key)
    assert _as_tuples(histories[run_ids[1], M.VAL_ACC])[-1] == (M.VAL_ACC, 0.5, 9000, 1)
    assert histories[run_ids[4], M.VAL_ACC] == [] and histories[run_ids[0], M.TRAIN_LOSS] == []
