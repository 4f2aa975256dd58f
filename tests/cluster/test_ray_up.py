"""``ray up cluster.local.yaml`` for real, over SSH, onto the two namespace hosts; then the search through ``ray exec``,
as the README tells users. The YAML is the shipped one with only what this machine needs changed (see _test_yaml)."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

from contract.status import COMPLETED
from contract.tracking import FINAL_SOURCE_TAG, NODE_IP_TAG, ROLE_FINAL, ROLE_TAG, ROLE_TRIAL
from tests.cluster.netns import HEAD_IP, ROOT, WORKER_IP, Cluster

pytestmark = pytest.mark.cluster


def _test_yaml(cluster: Cluster) -> dict:
    """cluster.local.yaml with this machine's hosts, key and user; the project's venv linked, not installed again
    (a fresh venv would download torch); Ray's memory capped (two hosts share 24 GiB). Everything else as shipped:
    file mounts, the env file, the start commands with token auth, the MLflow server."""
    config = yaml.safe_load((ROOT / "cluster.local.yaml").read_text())
    config["cluster_name"] = cluster.cluster_name
    config["provider"].update(head_ip=HEAD_IP, worker_ips=[WORKER_IP])
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(cluster.home / ".ssh" / "id_ed25519")}
    config["min_workers"] = config["max_workers"] = 1
    venv = config["setup_commands"][0]
    assert venv.startswith("python3 -m venv ~/t2t-venv")
    config["setup_commands"][0] = f"ln -sfn {ROOT}/.venv ~/t2t-venv"
    caps = " --memory=3000000000 --object-store-memory=200000000"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        config[key] = [c + caps if "ray start" in c else c for c in config[key]]
    shared = str(cluster.storage)  # the env file's T2T_STORAGE_PATH: storage both hosts see
    config["setup_commands"] = [c.replace("/mnt/shared/t2t-search", shared) for c in config["setup_commands"]]
    return config


def test_ray_up_the_local_cluster_yaml_then_search_through_ray_exec(cluster):
    head_home = cluster.start_sshd(HEAD_IP)
    cluster.start_sshd(WORKER_IP)
    path = cluster.folder / "cluster.test.yaml"
    path.write_text(yaml.safe_dump(_test_yaml(cluster), sort_keys=False))

    up = cluster.ray_cli("up", "-y", "--no-config-cache", str(path), log="ray-up.log")
    assert up.returncode == 0, (cluster.folder / "ray-up.log").read_text()[-5000:]

    search = "cd ~/t2t-search && python -m search.run --smoke-test --name up --address auto --set search.scheduler=none"
    out = cluster.ray_cli("exec", str(path), search, log="ray-exec.log", timeout_s=600)
    log = (cluster.folder / "ray-exec.log").read_text()
    assert out.returncode == 0, log[-5000:]
    assert "search 'up' done" in log and "3 completed" in log

    # The head's MLflow server (basic auth, loopback) got every run; every trial ran on the worker host.
    client = MlflowClient(f"sqlite:///{head_home}/mlflow/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("up").experiment_id])
    children = [r for r in runs if r.data.tags.get(ROLE_TAG) == ROLE_TRIAL]
    finals = [r for r in runs if r.data.tags.get(ROLE_TAG) == ROLE_FINAL]  # the final phase, on the cluster too
    sources = {r.data.tags[FINAL_SOURCE_TAG] for r in finals}
    assert len(children) == 3 and sources and len(finals) == 2 * len(sources)  # --smoke-test: 2 seeds each
    assert len(runs) == 1 + len(children) + len(finals) and all(r.info.status == "FINISHED" for r in runs)
    assert {c.data.tags[NODE_IP_TAG] for c in children + finals} == {WORKER_IP}  # the head takes no trials
    summary = json.loads((cluster.storage / "up" / "search_summary.json").read_text())
    assert summary[f"trials_{COMPLETED}"] == 3  # T2T_STORAGE_PATH from the env file: the shared storage

    # The dashboard (when installed: rayproject images have it, a bare ray[tune] has not) and MLflow listen on the
    # head's loopback only; a caller without the cluster token is refused by the GCS.
    listening = cluster.run_in(HEAD_IP, ["ss", "-ltnH"]).stdout.splitlines()
    local = {line.split()[3] for line in listening if line.strip()}
    assert "127.0.0.1:5000" in local, local
    assert not any(a.endswith((":8265", ":5000")) and not a.startswith("127.0.0.1") for a in local), local
    # A driver on the head (through `ray exec`, so in the head's own view of /tmp/ray) with a wrong token is refused;
    # the same driver with the token `ray up` copied connects.
    probe = cluster.folder / "probe.py"
    probe.write_text(
        "import ray\n"
        "try:\n"
        f"    ray.init(address='{HEAD_IP}:6379', log_to_driver=False)\n"
        "    print('PROBE connected')\n"
        "except Exception as e:\n"
        "    print('PROBE refused', type(e).__name__)\n"
    )
    # Ray retries a refused connection for 20 s; 2 tries are enough to be refused
    stranger = "RAY_AUTH_TOKEN=not-the-token RAY_gcs_server_port_wait_time_s=2 "
    for token, expected in ((stranger, "PROBE refused"), ("", "PROBE connected")):
        log = f"probe-{'stranger' if token else 'member'}.log"
        cluster.ray_cli("exec", str(path), f"{token}python {probe}", log=log, timeout_s=180)
        lines = [line for line in (cluster.folder / log).read_text().splitlines() if line.startswith("PROBE")]
        assert lines and lines[-1].startswith(expected), (cluster.folder / log).read_text()[-3000:]
        assert ("InvalidAuthToken" in (cluster.folder / log).read_text()) == bool(token)  # refused for its token
