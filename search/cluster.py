"""Cluster tools: check a cluster YAML offline, run the head's MLflow server, check that every node sees the storage.

    python -m search.cluster check cluster.yaml cluster.local.yaml    # Ray's own validation + the security lint
    python -m search.cluster mlflow-server --backend-store-uri sqlite:///$HOME/mlflow/mlflow.db \\
        --artifacts-destination s3://bucket/mlflow          # basic auth, loopback, started once (idempotent)

``check`` makes no cloud call: it runs ``prepare_config`` and ``validate_config`` (the jsonschema and the semantic
checks ``ray up`` runs first) on the file, then the lint below on the config ``ray up`` would use (Ray's defaults
filled in, so an omitted field that defaults to something unsafe is caught too).
"""

from __future__ import annotations

import argparse
import configparser
import ipaddress
import json
import os
import re
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_FILE = "~/.ray/auth_token"
CREDENTIALS_FILE = "~/.mlflow/credentials"
# Values the shipped YAMLs carry until the user edits them: reported as warnings, not problems.
PLACEHOLDERS = ("YOUR-BUCKET", "sg-0123456789abcdef0", "123456789012", "10.0.0.10")
_WORLD = ("0.0.0.0/0", "::/0")


class StorageError(RuntimeError):
    pass


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)  # the cluster would be insecure or not start
    warnings: list[str] = field(default_factory=list)  # fields still to edit


def _ray_minor() -> str:
    import ray

    return ".".join(ray.__version__.split(".")[:2])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _option(command: str, name: str) -> list[str]:
    """Every value of ``--name=V`` or ``--name V`` in a shell command."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    values = []
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            values.append(words[i + 1])
        elif word.startswith(name + "="):
            values.append(word.split("=", 1)[1])
    return values


def prepare(raw: dict[str, Any]) -> dict[str, Any]:
    """The config as ``ray up`` would use it, validated by Ray; raises ``ValueError`` with Ray's reason."""
    import logging

    from ray.autoscaler._private.util import prepare_config, validate_config

    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)  # its INFO lines are about defaults it fills
    try:
        config = prepare_config(raw)
        validate_config(config)
    except Exception as e:  # jsonschema, ValueError, click's abort: all are "Ray rejects this file"
        message = getattr(e, "message", None) or str(e) or type(e).__name__
        raise ValueError(f"Ray rejects it: {message.splitlines()[0]}") from None
    except SystemExit:
        raise ValueError("Ray rejects it (see the message above)") from None
    return config


def lint(config: dict[str, Any]) -> Findings:
    """The security and consistency rules for a prepared cluster config."""
    found = Findings()
    problems = found.problems
    text = json.dumps(config)
    for world in _WORLD:
        if world in text:
            problems.append(f"{world} appears in the config: nothing may be open to the whole internet")

    docker = config.get("docker") or {}
    run_options = " ".join(docker.get("run_options", []) + docker.get("head_run_options", []))
    image = docker.get("image") or docker.get("head_image") or ""
    token_in_container = bool(image) and re.search(r"--env[ =]RAY_AUTH_MODE=token\b", run_options) is not None

    starts = [("head_start_ray_commands", c) for c in config.get("head_start_ray_commands", [])]
    starts += [("worker_start_ray_commands", c) for c in config.get("worker_start_ray_commands", [])]
    ray_starts = [(key, c) for key, c in starts if re.search(r"\bray start\b", c)]
    if not any("--head" in c for key, c in ray_starts if key == "head_start_ray_commands"):
        problems.append("head_start_ray_commands has no `ray start --head`")
    if not any(key == "worker_start_ray_commands" for key, _ in ray_starts):
        problems.append("worker_start_ray_commands has no `ray start --address=...`")
    for key, command in ray_starts:
        if not token_in_container and "RAY_AUTH_MODE=token" not in command:
            problems.append(
                f"{key}: `{command[:60]}...` starts Ray without token auth: prefix it with RAY_AUTH_MODE=token "
                "(or pass --env RAY_AUTH_MODE=token in docker.run_options)"
            )
        for host in _option(command, "--dashboard-host"):
            if not _is_loopback(host):
                problems.append(
                    f"{key}: --dashboard-host={host} exposes the dashboard and Jobs API (remote code execution); "
                    "use 127.0.0.1 and `ray dashboard`"
                )
    for key, command in starts:
        for host in _option(command, "--host"):
            if not _is_loopback(host):
                problems.append(f"{key}: --host {host} listens beyond loopback; use 127.0.0.1 and an SSH tunnel")
        if "0.0.0.0" in command:
            problems.append(f"{key}: `{command[:60]}...` binds 0.0.0.0 (every interface)")

    mounts = {str(k).rstrip("/"): str(v) for k, v in (config.get("file_mounts") or {}).items()}
    if TOKEN_FILE not in mounts:
        problems.append(
            f"file_mounts has no {TOKEN_FILE}: the nodes would have no cluster token "
            f"(add '{TOKEN_FILE}: {TOKEN_FILE}' after `ray get-auth-token --generate`)"
        )

    provider = config.get("provider", {})
    if provider.get("type") == "aws":
        for name, node in config.get("available_node_types", {}).items():
            if not node.get("node_config", {}).get("SecurityGroupIds"):
                problems.append(
                    f"available_node_types.{name}: no SecurityGroupIds, so Ray creates a group with SSH open to "
                    "0.0.0.0/0; reference a pre-created group that allows SSH from your CIDR only"
                )
    if image:
        match = re.fullmatch(r"rayproject/ray:(\d+\.\d+)\.\d+(-[\w.-]+)?", image)
        if match is None:
            problems.append(f"docker.image {image!r} is not a pinned rayproject/ray:X.Y.Z image")
        elif match.group(1) != _ray_minor():
            problems.append(
                f"docker.image {image!r} runs Ray {match.group(1)}, but this project pins Ray {_ray_minor()}: "
                "the driver and the nodes must run the same Ray"
            )
    for placeholder in PLACEHOLDERS:
        if placeholder in text:
            found.warnings.append(f"{placeholder} is a placeholder: edit the lines marked EDIT")
    return found


def check(path: str | Path) -> Findings:
    """Ray's validation and the lint for one cluster YAML."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        return Findings(problems=[f"cannot read it: {str(e).splitlines()[0]}"])
    if not isinstance(raw, dict):
        return Findings(problems=["it is not a YAML mapping"])
    try:
        config = prepare(raw)
    except ValueError as e:
        return Findings(problems=[str(e)])
    return lint(config)


# --- the head's MLflow server ---


def admin_credentials() -> tuple[str, str]:
    """The MLflow admin user and password: MLFLOW_TRACKING_USERNAME/PASSWORD, else ~/.mlflow/credentials."""
    parser = configparser.ConfigParser()
    parser.read(Path(CREDENTIALS_FILE).expanduser())
    section = parser["mlflow"] if parser.has_section("mlflow") else {}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or section.get("mlflow_tracking_username") or "admin"
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or section.get("mlflow_tracking_password")
    if not password:
        raise ValueError(
            f"no MLflow admin password: write {CREDENTIALS_FILE} ([mlflow] mlflow_tracking_username = admin, "
            "mlflow_tracking_password = ...) or set MLFLOW_TRACKING_PASSWORD"
        )
    return user, password


def _healthy(host: str, port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://{host}:{port}/health", timeout=2).ok
    except requests.RequestException:
        return False


def mlflow_server_command(args: argparse.Namespace, folder: Path, user: str, password: str) -> tuple[list, dict]:
    ini = folder / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
        f"admin_username = {user}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    key_file = folder / "flask_secret_key"  # signs the UI's CSRF tokens; kept so restarts keep sessions valid
    if not key_file.is_file():
        import secrets

        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key_file.read_text().strip(),
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,  # the environment, never a file in the repository
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--backend-store-uri",
        args.backend_store_uri,
        "--artifacts-destination",
        args.artifacts_destination,
    ]
    return command, env


def mlflow_server(args: argparse.Namespace) -> int:
    """Start the tracking server unless one answers already; ``--foreground`` runs it in this process."""
    import subprocess

    if _healthy(args.host, args.port):
        print(f"an MLflow server already answers on {args.host}:{args.port}")
        return 0
    user, password = admin_credentials()
    if args.backend_store_uri.startswith("sqlite:///"):
        Path(args.backend_store_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    folder = Path(args.state_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    command, env = mlflow_server_command(args, folder, user, password)
    if args.foreground:
        os.execve(command[0], command, env)
    with open(folder / "server.log", "ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + args.wait_s
    log = folder / "server.log"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"error: the MLflow server exited with {proc.returncode}; see {log}", file=sys.stderr)
            return 1
        if _healthy(args.host, args.port):
            (folder / "server.pid").write_text(str(proc.pid))
            print(f"MLflow server (pid {proc.pid}) on http://{args.host}:{args.port}, user {user!r}")
            return 0
        time.sleep(1)
    print(f"error: the MLflow server did not answer in {args.wait_s:.0f} s; see {log}", file=sys.stderr)
    return 1


# --- shared storage ---


def _read_marker(uri: str) -> str:
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as f:
        return f.read().decode()


def check_storage(storage_path: str, timeout_s: float = 60.0) -> None:
    """Every alive node of the connected Ray cluster reads a marker this driver writes under ``storage_path``.

    Tune needs the storage path shared (S3, or NFS at the same path on every node); a node that cannot see it
    fails every trial it gets. Raises ``StorageError`` naming the nodes that cannot.
    """
    import ray
    from pyarrow import fs
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    uri = storage_path if "://" in storage_path else str(Path(storage_path).resolve())
    token = uuid.uuid4().hex
    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        filesystem.create_dir(root, recursive=True)
        marker = f"{root.rstrip('/')}/.t2t-storage-check-{token}"
        with filesystem.open_output_stream(marker) as f:
            f.write(token.encode())
    except Exception as e:  # bad URI, no credentials, read-only: all mean this driver cannot use the storage
        raise StorageError(f"cannot write to storage path {storage_path}: {str(e).splitlines()[0][:300]}") from None
    marker_uri = f"{uri.rstrip('/')}/.t2t-storage-check-{token}"
    read = ray.remote(num_cpus=0, max_retries=0)(_read_marker)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        pending = {
            read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                marker_uri
            ): n["NodeManagerAddress"]
            for n in nodes
        }
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        blind = []
        for ref in ready:
            try:
                ok = ray.get(ref) == token
            except Exception:
                ok = False
            if not ok:
                blind.append(pending[ref])
        blind += [f"{pending[ref]} (no answer in {timeout_s:.0f} s)" for ref in late]
    finally:
        filesystem.delete_file(marker)
    if blind:
        raise StorageError(
            f"storage path {storage_path} is not visible from node(s) {', '.join(sorted(blind))}: every node needs "
            "the same shared storage; give --storage-path s3://... or an NFS mount present at that path on every node"
        )


def main(argv: list[str] | None = None) -> int:
    from contract.cli import Parser

    parser = Parser(prog="python -m search.cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate cluster YAMLs offline (Ray's checks + the security lint)")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("mlflow-server", help="the head's MLflow tracking server, with basic auth")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback; reach it by SSH tunnel)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend-store-uri", default="sqlite:///" + str(Path("~/mlflow/mlflow.db").expanduser()))
    p.add_argument("--artifacts-destination", default=str(Path("~/mlflow/artifacts").expanduser()))
    p.add_argument("--state-dir", default="~/mlflow", help="the auth database, its config, the log and the pid")
    p.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the server to answer")
    p.add_argument("--foreground", action="store_true", help="run the server in this process (for supervisors)")
    args = parser.parse_args(argv)

    if args.command == "check":
        worst = 0
        for name in args.files:
            found = check(name)
            for problem in found.problems:
                print(f"{name}: error: {problem}")
            for warning in found.warnings:
                print(f"{name}: warning: {warning}")
            if not found.problems:
                print(f"{name}: ok (Ray's validation and the security lint)")
            worst = max(worst, 1 if found.problems else 0)
        return worst
    try:
        return mlflow_server(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
