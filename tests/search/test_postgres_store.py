"""The cluster's MLflow server on a real PostgreSQL: a smoke search writes through the server, and the runs, their
metrics and the registered winner are in the database. Everything started here is stopped by PID."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.postgres import SUPERUSER, postgres, query
from tests.processes import free_port, kill_session, kill_sid, spawn

pytestmark = [pytest.mark.postgres, pytest.mark.processes]
ROOT = Path(__file__).resolve().parents[2]


def _server_command(port: int, store: str, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "search.cluster", "mlflow-server", "--port", str(port), "--workers", "1",
            "--state-dir", str(tmp_path / "state"), "--backend-store-uri", store,
            "--artifacts-destination", str(tmp_path / "artifacts"), "--wait-s", "300"]  # fmt: skip


def test_a_password_in_the_store_uri_is_refused(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_PASSWORD": "admin-pw", "PYTHONPATH": str(ROOT)}
    store = "postgresql://mlflow:s3cret@127.0.0.1:5432/mlflow"
    out = subprocess.run(_server_command(free_port(), store, tmp_path), env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "must not carry the database password" in out.stderr and "~/.pgpass" in out.stderr
    assert "s3cret" not in out.stderr and not (tmp_path / "state").exists()


def test_a_search_writes_through_the_server_into_postgres(tmp_path):
    pg_password, admin_password = secrets.token_hex(12), secrets.token_hex(12)
    with postgres(pg_password) as pg_port:
        query(pg_port, pg_password, "postgres", "CREATE DATABASE mlflow")
        port = free_port()
        store = f"postgresql://{SUPERUSER}@127.0.0.1:{pg_port}/mlflow"  # the password from PGPASSWORD, not the URI
        env = {**os.environ, "PGPASSWORD": pg_password, "MLFLOW_TRACKING_USERNAME": "admin",
               "MLFLOW_TRACKING_PASSWORD": admin_password, "PYTHONPATH": str(ROOT)}  # fmt: skip
        started = subprocess.run(_server_command(port, store, tmp_path), env=env, capture_output=True, text=True,
                                 timeout=400)  # fmt: skip
        server_log = tmp_path / "state" / "server.log"
        assert started.returncode == 0, started.stdout + started.stderr + server_log.read_text()[-3000:]
        server_pid = int((tmp_path / "state" / "server.pid").read_text())
        try:
            uri = f"http://127.0.0.1:{port}"
            search_env = {k: v for k, v in env.items() if k != "PGPASSWORD"} | {"MLFLOW_TRACKING_URI": uri}
            # the store is what is tested here: no final phase
            command = [sys.executable, "-m", "search.run", "--smoke-test", "--name", "pg", "--set",
                       "search.final.enabled=false"]  # fmt: skip
            proc = spawn(command, tmp_path / "search.log", cwd=tmp_path, env=search_env)
            try:
                code = proc.wait(timeout=600)
            finally:
                kill_session(proc)
            assert code == 0, (tmp_path / "search.log").read_text()[-3000:]

            os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=admin_password)
            try:
                client = MlflowClient(uri)
                runs = client.search_runs([client.get_experiment_by_name("pg").experiment_id])
            finally:
                os.environ.pop("MLFLOW_TRACKING_USERNAME")
                os.environ.pop("MLFLOW_TRACKING_PASSWORD")
            assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}  # the parent and 3 trials

            rows = query(pg_port, pg_password, "mlflow", "SELECT status, count(*) FROM runs GROUP BY status")
            assert rows == [("FINISHED", 4)]  # in PostgreSQL itself, not in a file beside the server
            epochs = query(pg_port, pg_password, "mlflow", "SELECT count(*) FROM metrics WHERE key = 'val_acc'")
            assert epochs[0][0] >= 3
            versions = query(pg_port, pg_password, "mlflow", "SELECT name, version FROM model_versions")
            assert versions == [("pg", 1)]
            logs = server_log.read_text() + (tmp_path / "search.log").read_text()
            assert pg_password not in logs and admin_password not in logs
        finally:
            kill_sid(server_pid)
