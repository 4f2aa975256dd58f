"""``python -m search.cluster check FILE...`` / ``python -m search.cluster mlflow-server [...]``."""

from __future__ import annotations

import sys
from pathlib import Path

from contract.cli import Parser
from search.cluster import __doc__ as DOC
from search.cluster.lint import check
from search.cluster.mlflow_server import mlflow_server


def parse_args(argv: list[str] | None):
    """The subcommand (``check`` or ``mlflow-server``) and its flags."""
    parser = Parser(prog="python -m search.cluster", description=DOC.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate cluster YAMLs offline (Ray's checks + the security lint)")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("mlflow-server", help="the head's MLflow tracking server, with basic auth")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback; reach it by SSH tunnel)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--backend-store-uri",
        default="sqlite:///" + str(Path("~/mlflow/mlflow.db").expanduser()),
        help="sqlite:///PATH (default, on the head) or postgresql://USER@HOST:PORT/DB (password in ~/.pgpass)",
    )
    p.add_argument("--artifacts-destination", default=str(Path("~/mlflow/artifacts").expanduser()))
    p.add_argument("--state-dir", default="~/mlflow", help="the auth database, its config, the log and the pid")
    p.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the server to answer")
    p.add_argument("--foreground", action="store_true", help="run the server in this process (for supervisors)")
    return parser.parse_args(argv)


def check_files(files: list[str]) -> int:
    """Print each file's problems (standard error, a line each) and warnings; 2 if any file has a problem (bad
    input, as at every entry point), else 0."""
    worst = 0
    for name in files:
        found = check(name)
        for problem in found.problems:
            print(f"error: {name}: {problem}", file=sys.stderr)
        for warning in found.warnings:
            print(f"{name}: warning: {warning}")
        if not found.problems:
            print(f"{name}: ok (Ray's validation and the security lint)")
        worst = max(worst, 2 if found.problems else 0)
    return worst


def readable(files: list[str]) -> str | None:
    """The one-line reason the first file that is not a readable YAML mapping is not; None when all are."""
    from trainables.yaml_reader import YamlError, read_file

    for name in files:
        try:
            raw = read_file(name)
        except YamlError as e:
            return str(e)
        if not isinstance(raw, dict):
            return f"{name} must hold a YAML mapping (a Ray cluster config), got {type(raw).__name__}"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m search.cluster``: the exit code (0 fine, 2 bad input or a file with a problem)."""
    args = parse_args(argv)
    if args.command == "check":
        problem = readable(args.files)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        return check_files(args.files)
    try:
        return mlflow_server(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
