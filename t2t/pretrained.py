"""Load official (or our own) T2T-ViT checkpoints into a model of possibly another size or head."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

log = logging.getLogger(__name__)

# Where training scripts keep the weights inside a checkpoint file, in order of preference.
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema")  # timm's, the official T2T-ViT's, trainables.train's
_PLAIN_KEYS = ("state_dict", "model")


@dataclass
class LoadReport:
    """What ``load_pretrained`` loaded, skipped (and why) and left as initialised."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint key -> why it was not loaded
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint lacks (left as initialised)
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the model has no place for

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        parts += [f"skipped {k}: {why}" for k, why in self.skipped.items()]
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {', '.join(self.missing[:5])}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {', '.join(self.unexpected[:5])}")
        return "; ".join(parts)


def read_state_dict(checkpoint: str | os.PathLike | Mapping, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file or mapping, unwrapped from the usual containers.

    Accepts a bare state dict or one under ``state_dict_ema`` / ``model_ema`` / ``ema`` (preferred when
    ``use_ema``), ``state_dict`` or ``model`` (so ``trainables.train``'s own ``checkpoint.pt`` too); strips a
    DataParallel ``module.`` prefix. Files load with ``weights_only=True``.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint file not found: {os.fspath(checkpoint)}")
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"a checkpoint must be a mapping of tensors, got {type(checkpoint).__name__}")
    for key in (_EMA_KEYS if use_ema else ()) + _PLAIN_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor; expected a state dict, "
                f"possibly under one of {_EMA_KEYS + _PLAIN_KEYS}"
            )
        state[key.removeprefix("module.")] = value
    return state


def load_pretrained(
    model: nn.Module, checkpoint: str | os.PathLike | Mapping, use_ema: bool = True, strict: bool = True
) -> LoadReport:
    """Load ``checkpoint`` into a ``T2TViT``, adapting what legitimately differs, and report what happened.

    - ``head.*`` of another class count (or a model without a head) is skipped; the head is re-initialised.
    - ``pos_embed`` of another grid (another image size or soft split) is skipped: the model's own fixed sinusoid
      table for its grid is kept, which is what the official table would be at that size.
    - Any other shape mismatch raises ``ValueError`` naming the tensor. With ``strict``, so do keys missing from
      the checkpoint or left over in it (e.g. another depth); without, they are reported and left as initialised.
    """
    state = read_state_dict(checkpoint, use_ema)
    own = model.state_dict()
    report = LoadReport()
    to_load = {}
    for key, value in state.items():
        if key.startswith("head.") and (key not in own or own[key].shape != value.shape):
            report.skipped[key] = f"new head for {model.num_classes} classes (checkpoint: {value.shape[0]})"
        elif key not in own:
            report.unexpected.append(key)
        elif own[key].shape == value.shape:
            to_load[key] = value
        elif key == "pos_embed":
            report.skipped[key] = (
                f"position table regenerated for {own[key].shape[1] - 1} patches (checkpoint: {value.shape[1] - 1})"
            )
        else:
            raise ValueError(
                f"checkpoint tensor {key!r} has shape {tuple(value.shape)} but the model needs "
                f"{tuple(own[key].shape)}: the checkpoint is of another architecture "
                "(embed_dim, depth, token_dim, tokens_type or soft-split kernel sizes differ)"
            )
    report.loaded = list(to_load)
    report.missing = [k for k in own if k not in to_load and k not in report.skipped]
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"checkpoint does not fit the model (pass strict=False to load it partially): {report}")
    model.load_state_dict(to_load, strict=False)
    if any(k.startswith("head.") for k in report.skipped) and hasattr(model, "reset_classifier"):
        model.reset_classifier(model.num_classes)
    for key, why in report.skipped.items():
        log.info("load_pretrained: skipped %s: %s", key, why)
    return report
