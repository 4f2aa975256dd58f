"""cluster.yaml and cluster.local.yaml: Ray's own offline validation and the security lint (search/cluster/lint.py),
and the head's MLflow server with basic auth, started as the cluster YAMLs start it."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from search.cluster.lint import PLACEHOLDERS, TOKEN_FILE, check, lint, prepare
from tests.processes import free_port, kill_sid

ROOT = Path(__file__).resolve().parents[2]
FILES = ("cluster.yaml", "cluster.local.yaml")


def _raw(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _problems(raw: dict) -> list[str]:
    return lint(prepare(raw)).problems


@pytest.mark.parametrize("name", FILES)
def test_shipped_configs_pass_ray_validation_and_the_lint(name):
    found = check(ROOT / name)
    assert found.problems == []
    assert found.warnings and all(any(p in w for p in PLACEHOLDERS) for w in found.warnings)  # fields to edit


def test_the_image_runs_the_ray_version_pyproject_pins():
    pin = re.search(r'"ray\[tune\]==(\d+\.\d+)\.\*"', (ROOT / "pyproject.toml").read_text()).group(1)
    image = _raw("cluster.yaml")["docker"]["image"]
    assert image.startswith(f"rayproject/ray:{pin}.") and image.endswith("-gpu")


def test_the_aws_cluster_is_what_the_design_says():
    config = prepare(_raw("cluster.yaml"))
    head, worker = config["available_node_types"]["head"], config["available_node_types"]["gpu_worker"]
    assert head["resources"] == {"CPU": 0}  # the head takes no trials
    assert worker["min_workers"] == 0 and worker["resources"]["GPU"] == 1
    assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert config["idle_timeout_minutes"] > 0 and config["provider"]["cache_stopped_nodes"] is False
    head_commands = " ".join(config["head_start_ray_commands"])
    assert "search.cluster mlflow-server --host 127.0.0.1" in head_commands
    options = " ".join(config["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in options and "T2T_STORAGE_PATH=s3://" in options


def test_the_four_gpu_node_type_holds_a_trial_of_four_one_gpu_workers():
    from search.plugins.resources import ResourceError, check_resources

    types = prepare(_raw("cluster.yaml"))["available_node_types"]
    for name in ("gpu_worker", "gpu4_worker"):  # GPUs scale from zero, on spot
        assert types[name]["min_workers"] == 0 and types[name]["node_config"]["InstanceMarketOptions"]
    node = [{"Alive": True, "Resources": types["gpu4_worker"]["resources"]}]
    check_resources(4, 4, node, autoscaling=False, workers=4)  # the example's trial: 4 workers of 1 GPU, 1 node
    with pytest.raises(ResourceError, match=r"search.workers_per_trial=4 workers of 1 CPUs and 1 GPUs each"):
        check_resources(4, 4, [{"Alive": True, "Resources": types["gpu_worker"]["resources"]}], False, workers=4)


def test_every_ray_start_of_the_local_cluster_has_token_auth_and_no_ray_stop():
    config = prepare(_raw("cluster.local.yaml"))
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert not any(re.search(r"\bray stop\b", c) for c in starts)  # it would stop other people's Ray too


def _set(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return raw


AWS_MUTATIONS = {
    "the dashboard on every interface": (
        "head_start_ray_commands",
        ["ray start --head --port=6379 --dashboard-host=0.0.0.0"],
        "--dashboard-host=0.0.0.0 exposes the dashboard",
    ),
    "Ray's default head commands (which bind the dashboard to 0.0.0.0)": (
        "head_start_ray_commands",
        None,
        "--dashboard-host=0.0.0.0",
    ),
    "Ray's own security group": (
        "available_node_types.gpu_worker.node_config.SecurityGroupIds",
        None,
        "gpu_worker: no SecurityGroupIds",
    ),
    "SSH from anywhere": (
        "provider.security_group",
        {"GroupName": "t2t", "IpPermissions": [{"FromPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]},
        "0.0.0.0/0 appears",
    ),
    "no token auth in the containers": ("docker.run_options", ["--ulimit nofile=65536:65536"], "without token auth"),
    "no cluster token on the nodes": ("file_mounts", {"~/t2t-search": "."}, "no ~/.ray/auth_token"),
    "an image of another Ray": ("docker.image", "rayproject/ray:2.50.0-py311-gpu", "runs Ray 2.50"),
    "an unpinned image": ("docker.image", "rayproject/ray:latest-gpu", "is not a pinned"),
    "MLflow on every interface": (
        "head_start_ray_commands",
        ["ray start --head --dashboard-host=127.0.0.1", "mlflow server --host 0.0.0.0"],
        "--host 0.0.0.0 listens beyond loopback",
    ),
}


@pytest.mark.parametrize("case", sorted(AWS_MUTATIONS))
def test_the_lint_refuses_an_unsafe_aws_cluster(case):
    path, value, expected = AWS_MUTATIONS[case]
    problems = _problems(_set(_raw("cluster.yaml"), path, value))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("name", FILES)
def test_the_mounts_carry_what_pip_installs_one_item_each(name):
    import tomllib
    from setuptools import find_packages

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = found["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.split(".")[0] for p in find_packages(ROOT, include=include)}  # what pip installs, top level
    mounts = _raw(name)["file_mounts"]
    needed = {"pyproject.toml", found["project"]["readme"], *packages}
    assert {f"~/t2t-search/{item}": item for item in needed}.items() <= mounts.items()
    assert all((ROOT / local).exists() for remote, local in mounts.items() if remote.startswith("~/t2t-search/"))


def test_the_lint_refuses_a_mounted_folder_that_holds_a_venv(tmp_path):
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    raw = _set(_raw("cluster.local.yaml"), "file_mounts", {"~/t2t-search": str(tmp_path), TOKEN_FILE: TOKEN_FILE})
    problems = _problems(raw)
    assert len(problems) == 1 and "holds a virtual environment" in problems[0], problems
    (tmp_path / ".venv" / "pyvenv.cfg").unlink()
    assert _problems(raw) == []


def test_the_lint_refuses_a_local_worker_without_token_auth():
    raw = _set(_raw("cluster.local.yaml"), "worker_start_ray_commands", ["ray start --address=$RAY_HEAD_IP:6379"])
    problems = _problems(raw)
    assert any("worker_start_ray_commands" in p and "without token auth" in p for p in problems), problems


def test_ray_validation_errors_are_reported_not_raised(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**_raw("cluster.yaml"), "max_worker": 3}))  # a typo of max_workers
    found = check(bad)
    assert len(found.problems) == 1 and found.problems[0].startswith("Ray rejects it:")
    assert "max_worker" in found.problems[0]
    (tmp_path / "list.yaml").write_text("- a\n")
    assert check(tmp_path / "list.yaml").problems == ["it is not a YAML mapping"]
    assert check(tmp_path / "missing.yaml").problems[0].startswith("cannot read it:")


@pytest.mark.processes
def test_the_check_command(tmp_path):
    def run(*files):
        command = [sys.executable, "-m", "search.cluster", "check", *files]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    ok = run(*FILES)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cluster.yaml: ok" in ok.stdout and "cluster.local.yaml: ok" in ok.stdout
    bad = tmp_path / "open.yaml"
    raw = _set(_raw("cluster.yaml"), "available_node_types.head.node_config.SecurityGroupIds", None)
    bad.write_text(yaml.safe_dump(raw))
    out = run(str(bad))
    assert out.returncode == 2  # bad input, as at every entry point
    errors = out.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: ")
    assert "available_node_types.head: no SecurityGroupIds" in errors[0]


@pytest.mark.processes
def test_the_head_mlflow_server_requires_its_password(tmp_path):
    home = tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    env = {"HOME": str(home), "PATH": str(Path(sys.executable).parent), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    port = free_port()
    command = [sys.executable, "-m", "search.cluster", "mlflow-server", "--port", str(port), "--workers", "1",
               "--state-dir", str(tmp_path / "state"), "--backend-store-uri", f"sqlite:///{tmp_path}/store/mlflow.db",
               "--artifacts-destination", str(tmp_path / "artifacts")]  # fmt: skip

    missing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no MLflow admin password")
    assert not (tmp_path / "state").exists()  # refused before writing anything

    (home / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = pw-for-this-test\n"
    )
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr + (tmp_path / "state/server.log").read_text()
    pid = int((tmp_path / "state" / "server.pid").read_text())
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("admin", "wrong"), timeout=10).status_code == 401
        assert requests.get(url, auth=("admin", "pw-for-this-test"), timeout=10).status_code == 200
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "already answers" in again.stdout  # `ray up` again: no second server
        assert "pw-for-this-test" not in "".join(p.read_text() for p in (tmp_path / "state").glob("*.ini"))

        from search.experiment.preflight import check_tracking
        from search.tracking.tracker import TrackingError

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HOME", str(tmp_path / "nobody"))  # no credentials: refused up front, with the fix
            with pytest.raises(TrackingError, match=r"refused missing credentials \(HTTP 401\): set MLFLOW_TRACKING"):
                check_tracking(f"http://127.0.0.1:{port}")
            mp.setenv("HOME", str(home))
            check_tracking(f"http://127.0.0.1:{port}")
    finally:
        kill_sid(pid)
