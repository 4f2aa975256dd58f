"""Everything about a ``python -m trainables.train`` run that can be checked before it writes anything.

A problem raises ``ConfigError`` or ``DataError`` with one line; ``trainables.train`` prints it and exits 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trainables.checkpoint import CHECKPOINT_FILE
from trainables.checkpoint_check import check_pretrained, read_checkpoint
from trainables.config import ConfigError, TrainConfig
from trainables.data_check import check_data


def preflight(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The run's config, and with ``--resume`` its checkpoint's contents (read once, weights only)."""
    cfg = TrainConfig.load(args.config, args.sets)
    state = check_output_dir(Path(args.output_dir), args.resume)
    check_data(cfg.data, cfg.train.seed)
    check_pretrained(cfg)
    return cfg, state


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
