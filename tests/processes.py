"""Processes that tests start: each in its own session, stopped by PID (the whole session), even on failure."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (read from /proc; no names, no pkill)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session, ...
            pids.append(int(entry.name))
    return pids


def kill_all(find: Callable[[], set[int] | list[int]], timeout_s: float = 15.0) -> None:
    """SIGKILL what ``find()`` returns until it returns nothing (processes may fork meanwhile), for ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = find()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def kill_sid(sid: int, timeout_s: float = 15.0) -> None:
    """SIGKILL every process of session ``sid`` (a process started with a new session has sid == its pid)."""
    kill_all(lambda: session_pids(sid), timeout_s)


def kill_session(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGKILL the process and everything in its session (Ray agents a killed driver leaves behind)."""
    kill_sid(proc.pid, timeout_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def spawn(args: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 -- owned by the child
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def serve(args: list[str], log: Path, health_url: str, what: str, env: dict | None = None) -> subprocess.Popen:
    """Start a server in its own session; return once ``health_url`` answers (it is stopped by PID on failure)."""
    import requests

    proc = spawn(args, log, env=env)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            return requests.get(health_url, timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, 120, what)
    except BaseException:
        kill_session(proc)
        raise
    return proc


def mlflow_server(port: int, store: Path, artifacts: Path, log: Path) -> subprocess.Popen:
    """A real MLflow tracking server on 127.0.0.1:port (1 worker), healthy when this returns."""
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{store}", "--artifacts-destination", str(artifacts)]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return serve(args, log, f"http://127.0.0.1:{port}/health", f"the MLflow server on port {port}", env)


_TEMPLATE: list[Path] = []  # the session's migrated MLflow store, made on first use


def migrated_store(folder: Path) -> str:
    """``sqlite:///FOLDER/mlflow.db``; a new file is a copy of an empty store whose tables MLflow created and migrated
    once per test session (5 s a search otherwise). The smoke search creates its own, as a new user's does."""
    path = Path(folder) / "mlflow.db"
    if not path.exists():
        if not _TEMPLATE:
            template = Path(tempfile.mkdtemp(prefix="t2t-mlflow-template-")) / "mlflow.db"
            code = (
                f"from mlflow.tracking import MlflowClient; MlflowClient('sqlite:///{template}').search_experiments()"
            )
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
            atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
            _TEMPLATE.append(template)
        shutil.copyfile(_TEMPLATE[0], path)
    return f"sqlite:///{path}"
