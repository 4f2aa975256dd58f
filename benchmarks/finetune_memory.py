"""Benchmark 7: the memory of configs/finetune_cifar10.yaml (T2T-ViT-14 at 224 px on CIFAR-10), at reduced size.

    python benchmarks/finetune_memory.py [--images 2000] [--batches 4 8] [--steps 2]

The config's model, optimizer, precision and image size, on CIFAR-shaped synthetic data (uint8, 32 px, held at
that size and resized per batch, as ``trainables.data`` holds CIFAR). It measures the data's bytes, the host's peak
RSS, the bytes autograd saves for backward per training batch (``torch.autograd.graph.saved_tensors_hooks``, at
two batch sizes to check they scale linearly) and, with CUDA, the device's peak; then extrapolates to the full
50,000 + 10,000 images and the config's batch size. Writes benchmarks/results/finetune_memory.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.config import TrainConfig, read_yaml
from trainables.data import TensorBatches
from trainables.loop import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "finetune_cifar10.yaml"
CIFAR_IMAGES = 50_000 + 10_000  # the official training and test sets (val is carved from training)
GIB = 2**30


def finetune_config(device: str) -> TrainConfig:
    """The config's base section on synthetic data of its image size (no checkpoint: the shapes are the same)."""
    base = read_yaml(CONFIG)["base"]
    model = {k: v for k, v in base["model"].items() if k != "pretrained"}
    data = {**base["data"], "name": "synthetic", "synthetic_samples": 10, "root": "unused"}
    train = {**base.get("train", {}), "device": device, "epochs": 1}
    return TrainConfig.from_dict({"model": model, "data": data, "optim": base.get("optim", {}), "train": train})


def saved_bytes(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for backward in one training forward: the activations."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    trainer.model.train()
    autocast = torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.bf16)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        loss = torch.nn.functional.cross_entropy(trainer.forward(x).float(), y)
    loss.backward()
    trainer.optimizer.step()  # creates AdamW's state, counted below
    trainer.optimizer.zero_grad(set_to_none=True)
    return sum(seen.values())


def state_bytes(trainer: Trainer) -> int:
    """Weights, gradients and AdamW's two moments (and the EMA's copy when on)."""
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    moments = sum(t.numel() * t.element_size() for s in trainer.optimizer.state.values() for t in s.values())
    ema = params if trainer.ema else 0
    return params + trainable + moments + ema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="CIFAR-shaped images held in memory")
    parser.add_argument("--batches", type=int, nargs=2, default=(4, 8), help="two training batch sizes measured")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "finetune_memory.json"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = finetune_config(device)
    trainer = Trainer(cfg, torch.device(device))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.images,), generator=g)
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3, generator=g, flip=True, device=trainer.device)
    activations = {}
    for batch in args.batches:
        data_cfg = cfg.data.model_copy(update={"batch_size": batch})
        x, y = next(iter(TensorBatches(images, labels, data_cfg, train=True, **common)))
        activations[batch] = saved_bytes(trainer, x, y)
    small, large = args.batches
    per_image = (activations[large] - activations[small]) / (large - small)
    state = state_bytes(trainer)
    data_bytes = images.nbytes + labels.nbytes
    full_data = data_bytes / args.images * CIFAR_IMAGES
    batch = cfg.data.batch_size
    device_estimate = state + per_image * batch + full_data + batch * 3 * cfg.data.img_size**2 * 4
    result = {
        "model": cfg.model.name,
        "img_size": cfg.data.img_size,
        "bf16": trainer.bf16,
        "device": device,
        "images_measured": args.images,
        "data_bytes_measured": data_bytes,
        "data_gib_full": full_data / GIB,
        "data_gib_full_if_resized_once_float32": CIFAR_IMAGES * 3 * cfg.data.img_size**2 * 4 / GIB,
        "host_peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "state_gib": state / GIB,
        "activations_gib": {b: v / GIB for b, v in activations.items()},
        "activation_mib_per_image": per_image / 2**20,
        "config_batch": batch,
        "device_estimate_gib": device_estimate / GIB,
        "device_peak_gib": torch.cuda.max_memory_allocated() / GIB if device == "cuda" else None,
    }
    for key, value in result.items():
        print(f"{key:42s} {value:.3f}" if isinstance(value, float) else f"{key:42s} {value}")
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
