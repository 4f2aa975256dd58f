"""The offline check of a cluster YAML: Ray's own validation, then the security lint.

``check`` makes no cloud call: it runs ``prepare_config`` and ``validate_config`` (the jsonschema and the semantic
checks ``ray up`` runs first) on the file, then the lint below on the config ``ray up`` would use (Ray's defaults
filled in, so an omitted field that defaults to something unsafe is caught too).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_FILE = "~/.ray/auth_token"
# Values the shipped YAMLs carry until the user edits them: reported as warnings, not problems.
PLACEHOLDERS = ("YOUR-BUCKET", "sg-0123456789abcdef0", "123456789012", "10.0.0.10")
_WORLD = ("0.0.0.0/0", "::/0")


@dataclass
class Findings:
    """What the check of one cluster YAML found: problems (exit 2) and warnings (fields still to edit)."""

    problems: list[str] = field(default_factory=list)  # insecure, would not start, or every `ray up` would crawl
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
    text = json.dumps(config)
    found = Findings(
        problems=[f"{w} appears in the config: nothing may be open to the whole internet" for w in _WORLD if w in text]
    )
    docker = config.get("docker") or {}
    image = docker.get("image") or docker.get("head_image") or ""
    starts = [("head_start_ray_commands", c) for c in config.get("head_start_ray_commands", [])]
    starts += [("worker_start_ray_commands", c) for c in config.get("worker_start_ray_commands", [])]
    found.problems += _start_problems(starts, docker, image)
    found.problems += _listen_problems(starts)
    mounts = {str(k).rstrip("/"): str(v) for k, v in (config.get("file_mounts") or {}).items()}
    if TOKEN_FILE not in mounts:
        found.problems.append(
            f"file_mounts has no {TOKEN_FILE}: the nodes would have no cluster token "
            f"(add '{TOKEN_FILE}: {TOKEN_FILE}' after `ray get-auth-token --generate`)"
        )
    found.problems += [_venv_mount_problem(k, v) for k, v in mounts.items() if _holds_a_venv(Path(v).expanduser())]
    found.problems += _aws_problems(config) + _image_problems(image)
    found.warnings += [f"{p} is a placeholder: edit the lines marked EDIT" for p in PLACEHOLDERS if p in text]
    return found


def _holds_a_venv(folder: Path) -> bool:
    """A virtual environment is the folder or one of its subfolders (paths relative to where ``ray up`` runs)."""
    try:
        if not folder.is_dir():
            return False
        return any((d / "pyvenv.cfg").is_file() for d in (folder, *(p for p in folder.iterdir() if p.is_dir())))
    except OSError:  # unreadable: not ours to judge, and `ray up` will say so itself
        return False


def _venv_mount_problem(remote: str, local: str) -> str:
    return (
        f"file_mounts '{remote}: {local}' mounts a folder that holds a virtual environment: `ray up` reads every "
        "file under a mounted folder to hash it (rsync_exclude does not apply), gigabytes on every run; mount the "
        "project's items one by one, as the shipped cluster.yaml does"
    )


def _start_problems(starts: list[tuple[str, str]], docker: dict[str, Any], image: str) -> list[str]:
    """Every node starts Ray, with token auth, and the dashboard on loopback."""
    run_options = " ".join(docker.get("run_options", []) + docker.get("head_run_options", []))
    token_in_container = bool(image) and re.search(r"--env[ =]RAY_AUTH_MODE=token\b", run_options) is not None
    ray_starts = [(key, c) for key, c in starts if re.search(r"\bray start\b", c)]
    problems = []
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
    return problems


def _listen_problems(starts: list[tuple[str, str]]) -> list[str]:
    """No start command makes anything listen beyond loopback."""
    problems = []
    for key, command in starts:
        for host in _option(command, "--host"):
            if not _is_loopback(host):
                problems.append(f"{key}: --host {host} listens beyond loopback; use 127.0.0.1 and an SSH tunnel")
        if "0.0.0.0" in command:
            problems.append(f"{key}: `{command[:60]}...` binds 0.0.0.0 (every interface)")
    return problems


def _aws_problems(config: dict[str, Any]) -> list[str]:
    if config.get("provider", {}).get("type") != "aws":
        return []
    return [
        f"available_node_types.{name}: no SecurityGroupIds, so Ray creates a group with SSH open to "
        "0.0.0.0/0; reference a pre-created group that allows SSH from your CIDR only"
        for name, node in config.get("available_node_types", {}).items()
        if not node.get("node_config", {}).get("SecurityGroupIds")
    ]


def _image_problems(image: str) -> list[str]:
    if not image:
        return []
    match = re.fullmatch(r"rayproject/ray:(\d+\.\d+)\.\d+(-[\w.-]+)?", image)
    if match is None:
        return [f"docker.image {image!r} is not a pinned rayproject/ray:X.Y.Z image"]
    if match.group(1) != _ray_minor():
        return [
            f"docker.image {image!r} runs Ray {match.group(1)}, but this project pins Ray {_ray_minor()}: "
            "the driver and the nodes must run the same Ray"
        ]
    return []


def check(path: str | Path) -> Findings:
    """Ray's validation and the lint for one cluster YAML."""
    from trainables.yaml_reader import YamlError, read_file

    try:
        raw = read_file(path)
    except YamlError as e:
        return Findings(problems=[f"cannot read it: {e}"])
    if not isinstance(raw, dict):
        return Findings(problems=["it is not a YAML mapping"])
    try:
        config = prepare(raw)
    except ValueError as e:
        return Findings(problems=[str(e)])
    return lint(config)
