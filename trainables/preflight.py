"""Everything about a ``python -m trainables.train`` run that can be checked before it writes anything.

A problem raises ``ConfigError`` or ``DataError`` with one line; ``trainables.train`` prints it and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from contract.schedule import Schedule, changes, from_artifact
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.checkpoint_check import check_pretrained, read_checkpoint
from trainables.config import MUTABLE, ConfigError, TrainConfig
from trainables.data_check import check_data


def preflight(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any] | None, Schedule | None]:
    """The run's config, with ``--resume`` its checkpoint's contents (read once, weights only), and with
    ``--schedule`` the schedule it replays (its first config is the run's)."""
    follow = read_schedule(args.schedule, bool(args.config or args.sets)) if args.schedule else None
    cfg = TrainConfig.from_dict(follow[0]["config"]) if follow else TrainConfig.load(args.config, args.sets)
    state = check_output_dir(Path(args.output_dir), args.resume)
    check_data(cfg.data, cfg.train.seed)
    check_pretrained(cfg)
    return cfg, state, follow


def read_schedule(path: str, configured: bool) -> Schedule:
    """The schedule in a ``schedule.json``, each of its configs valid and able to continue the one before."""
    if configured:
        raise ConfigError("--schedule gives every epoch's config: drop --config and --set")
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"--schedule: no file at {file}: give a schedule.json of a population member's run")
    try:
        follow = from_artifact(json.loads(file.read_text()))
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise ConfigError(f"--schedule: {file} is not a schedule.json ({str(e).splitlines()[0]})") from None
    first = TrainConfig.from_dict(follow[0]["config"]).to_dict()
    for segment in follow[1:]:
        fixed = [k for k in changes(first, TrainConfig.from_dict(segment["config"]).to_dict()) if k not in MUTABLE]
        if fixed:
            raise ConfigError(
                f"--schedule: {file}: the segment from epoch {segment['epoch']} changes {', '.join(fixed)}, which "
                "a run cannot change as it trains"
            )
    return follow


def check_output_dir(out: Path, resume: bool) -> dict[str, Any] | None:
    """A new run needs a folder it can create and write; ``--resume`` needs a readable checkpoint in it."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} is a file, not a folder: give a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ConfigError(f"--output-dir {out}: {existing} is not a writable folder: give another --output-dir")
    checkpoint = out / CHECKPOINT_FILE
    if checkpoint.exists() and not resume:
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or another --output-dir")
    if not resume:
        return None
    if not checkpoint.exists():
        raise ConfigError(f"nothing to resume: {checkpoint} does not exist")
    state = read_checkpoint(checkpoint, "--resume")
    if not isinstance(state, dict) or "model" not in state:
        raise ConfigError(f"--resume: {checkpoint} is not a checkpoint of trainables.train: start a new --output-dir")
    return state
