"""Checkpoint files read once, safely, before a run starts: a file that cannot be a checkpoint is one line.

Files load with ``torch.load(weights_only=True)`` only. torch's own message for a refused pickle advises
``weights_only=False``, which would run whatever code a hostile file carries: it is replaced by ours.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

import t2t
from trainables.config import ConfigError, TrainConfig
from trainables.data import channels_and_classes

# How torch.load fails on a file that is not a checkpoint of plain tensors (text, a truncated zip, code in a pickle).
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, UnicodeDecodeError)


def read_checkpoint(path: str | Path, key: str) -> Any:
    """The contents of the checkpoint file ``path`` (weights only); ``key`` names where it was given."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{key}: checkpoint file not found: {path}" if not path.exists() else f"{key}: {path} is not a file"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as e:
        refused = isinstance(e, pickle.UnpicklingError) and _is_torch_file(path)
        kind = "holds objects other than tensors and plain data" if refused else "is not a torch checkpoint"
        raise ConfigError(
            f"{key}: {path} {kind} ({type(e).__name__}); only weights-only checkpoints are loaded: re-save it with "
            "torch.save(model.state_dict(), path)"
        ) from None


def _is_torch_file(path: Path) -> bool:
    """A torch.save file: a zip archive (torch >= 1.6) or a legacy pickle (protocol 2+ starts with 0x80)."""
    with path.open("rb") as f:
        return zipfile.is_zipfile(f) or (f.seek(0) == 0 and f.read(1) == b"\x80")


def check_pretrained(cfg: TrainConfig, prefix: str = "", state: Any = None) -> Any:
    """``model.pretrained`` loads into the configured model (shapes matched as ``t2t.load_pretrained`` does);
    ``prefix`` is where the training config sits in the user's config (``base.`` in a search). Returns the file's
    contents, to pass back as ``state`` when checking the same file against other models."""
    path = cfg.model.pretrained
    if not path:
        return None
    state = read_checkpoint(path, f"{prefix}model.pretrained") if state is None else state
    model = t2t.T2TViT(cfg.model.build_config(cfg.data.img_size, *channels_and_classes(cfg.data)))
    try:
        t2t.load_pretrained(model, state, strict=False)
    except ValueError as e:
        raise ConfigError(f"{prefix}model.pretrained: {path}: {e}") from None
    return state
