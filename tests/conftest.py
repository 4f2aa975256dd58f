from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from contract.tracking import no_telemetry

no_telemetry()  # the tests' own MLflow clients send nothing off the machine either
pytest_plugins = ["tests.tiers"]  # test tiers by what a test starts

# The reference fixtures (computed from the official code) live beside the checkout, in ../shared/reference.
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
STARTED = ".started"  # the smoke search's folder: a file made just before it starts


@pytest.fixture(scope="session")
def reference() -> Path:
    if not (REFERENCE / "t2t_state_dict_manifest.json").is_file():
        pytest.fail(f"reference fixtures not found in {REFERENCE}: clone the project with ../shared beside it")
    return REFERENCE


@pytest.fixture(scope="session")
def manifest(reference: Path) -> dict:
    return json.loads((reference / "t2t_state_dict_manifest.json").read_text())


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray of 2 CPUs on loopback, no dashboard, stopped at the end of the session (what it started)."""
    import ray

    from search.driver import local_ray

    root = Path(__file__).resolve().parents[1]
    local_ray(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": str(root)}})
    try:
        yield ray
    finally:
        ray.shutdown()


def run_search(
    folder: Path, *args: str, log: str = "search.log", timeout_s: float = 300, new_store: bool = False
) -> int:
    """``python -m search.run ARGS`` in ``folder`` as a subprocess in its own session, stopped by PID; its MLflow store
    ``folder/mlflow.db``. With ``new_store`` the search runs as a new user's does: no ``MLFLOW_TRACKING_URI``, so the
    default store, which the search makes itself; else a copy of a migrated one (``tests.processes.migrated_store``)."""
    import sys

    from tests.processes import kill_session, migrated_store, spawn

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(root)
    if not new_store:
        env["MLFLOW_TRACKING_URI"] = migrated_store(folder)
    proc = spawn([sys.executable, "-m", "search.run", *args], folder / log, cwd=folder, env=env)
    try:
        return proc.wait(timeout=timeout_s)
    finally:
        kill_session(proc)


@pytest.fixture(scope="session")
def smoke_search(tmp_path_factory) -> Path:
    """One finished ``--smoke-test`` search named 'smoke', run as a new user runs it (no environment variable set),
    shared read-only by the tests that inspect one: once per run, whichever worker of ``make test`` asks first (the
    others wait for it, under a lock in the run's temporary folder)."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the workers' common folder
    folder, code_file = shared / "smoke", shared / "smoke.code"
    with open(shared / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while the search runs: its time limit bounds the wait
        if not code_file.exists():
            folder.mkdir()
            (folder / STARTED).touch()
            try:
                code = str(run_search(folder, "--smoke-test", "--name", "smoke", new_store=True))
            except Exception as e:  # every worker's tests fail with the same cause
                code = f"{type(e).__name__}: {e}"
            code_file.write_text(code)
    assert code_file.read_text() == "0", (folder / "search.log").read_text()[-3000:]
    return folder


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """N tests at a time (make test WORKERS=N): each worker's torch gets its share of torch's threads; one at a time
    keeps torch's own count. Threads beyond the cores spin against each other: the fast tier took 1.6x as long on two
    workers of two threads each as on one."""
    from tests.tiers import tests_at_once  # imported here: pytest imports the plugin first, rewriting its asserts

    if tests_at_once() > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // tests_at_once()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _environment():
    """What a test sets in os.environ, and which runtime patches are installed (an entry point called in-process
    sets the driver's environment and applies the patches), is as before the test after it."""
    from search.patches import PATCHES

    before, installed = dict(os.environ), [p.installed for p in PATCHES]
    yield
    os.environ.clear()
    os.environ.update(before)
    for patch, was in zip(PATCHES, installed, strict=True):
        patch.install() if was else patch.remove()
