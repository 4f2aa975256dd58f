"""What a search ran on: package versions and the git revision, as tags of its parent run."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
from pathlib import Path

from contract.tracking import GIT_REVISION_TAG, VERSION_TAG_PREFIX

PACKAGES = ("t2t-search", "torch", "ray", "optuna", "mlflow")


def versions() -> dict[str, str]:
    """The parent run's version tags: the packages a result depends on, and the git revision."""
    out = {}
    for name in PACKAGES:
        try:
            out[f"{VERSION_TAG_PREFIX}{name}"] = md.version(name)
        except md.PackageNotFoundError:
            out[f"{VERSION_TAG_PREFIX}{name}"] = "not installed"
    out[GIT_REVISION_TAG] = git_revision()
    return out


def git_revision() -> str:
    """This checkout's commit, or ``unknown`` (an installed copy, no git)."""
    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
