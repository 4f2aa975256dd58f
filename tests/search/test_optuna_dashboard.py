"""optuna-dashboard, as the README tells a user to start it, on the smoke search's study: started on loopback,
read through its HTTP API (the same the dashboard's page uses), stopped by PID."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

from contract.files import STUDY_JOURNAL
from tests.processes import free_port, kill_session, serve
from tests.search.stores import load_study

pytestmark = pytest.mark.processes


def dashboard(storage: str, port: int, log: Path):
    """``optuna-dashboard STORAGE`` on 127.0.0.1:port (the venv's own console script), answering when returned."""
    script = Path(sys.executable).parent / "optuna-dashboard"
    args = [str(script), storage, "--host", "127.0.0.1", "--port", str(port)]
    return serve(args, log, f"http://127.0.0.1:{port}/api/meta", f"optuna-dashboard on port {port}")


def test_the_dashboard_reads_the_search_study(smoke_search, tmp_path):
    storage = str(smoke_search / "ray_results" / "smoke" / STUDY_JOURNAL)
    study = load_study(storage, "smoke")
    port = free_port()
    proc = dashboard(storage, port, tmp_path / "dashboard.log")
    try:
        base = f"http://127.0.0.1:{port}"
        studies = requests.get(f"{base}/api/studies", timeout=10).json()["study_summaries"]
        found = [s for s in studies if s["study_name"] == "smoke"]
        assert len(found) == 1, studies
        detail = requests.get(f"{base}/api/studies/{found[0]['study_id']}", params={"after": 0}, timeout=10).json()
        assert len(detail["trials"]) == len(study.trials) == 3
        assert detail["name"] == "smoke"
        assert sorted(t["state"] for t in detail["trials"]) == sorted(t.state.name.title() for t in study.trials)
        params = {t["number"]: {p["name"] for p in t["params"]} for t in detail["trials"]}
        assert params == {t.number: set(t.params) for t in study.trials}  # the searched space, as sampled
        values = sorted(t["values"][0] for t in detail["trials"] if t.get("values"))
        assert values == pytest.approx(sorted(t.value for t in study.trials if t.value is not None))
        page = requests.get(f"{base}/dashboard", timeout=10)
        assert page.ok and page.text.lstrip().lower().startswith("<!doctype html")  # the page a user opens
    finally:
        kill_session(proc)
    assert proc.poll() is not None
