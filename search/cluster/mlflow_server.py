"""The head's MLflow tracking server: basic auth, loopback only, started once (a second start finds it answering)."""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import time
from pathlib import Path

from search.cluster.backend_store import check_backend_store

CREDENTIALS_FILE = "~/.mlflow/credentials"


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
    """The server's command line and environment: basic auth from an ini file written in ``folder``
    (mode 600), the admin ``user`` and ``password`` passed in the environment, never on the command line."""
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
    check_backend_store(args.backend_store_uri)
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
