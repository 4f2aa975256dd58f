"""Benchmark 2: T2T-ViT training throughput and MFU on a GPU, and a CIFAR-size trial's epoch with data on the GPU.

    python benchmarks/gpu_step.py [--model t2t_vit_14] [--batch 128] [--steps 30] [--peak-tflops 989]
    python benchmarks/gpu_step.py --smoke          # the same code on the CPU with a tiny model: checks, no numbers

Rows, each a fresh model and a fused AdamW (``fused=True``), forward + backward + step on random 224 px images:
fp32 (TF32 matmuls), bf16 autocast, bf16 autocast with flash attention forced, and bf16 + ``torch.compile``.
MFU = 6 x MACs per image (forward 2, backward 4) x images/s / the GPU's dense bf16 peak. Then one epoch of
``trainables.loop.Trainer`` on a CIFAR-10-sized synthetic set (50,000 images, 32 px) that lives on the GPU.
Needs torch only, and pydantic + pyyaml for the epoch row (skipped with a message without them; no Ray, Optuna or
MLflow). Writes benchmarks/results/gpu_step.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import t2t

# Dense bf16 tensor-core peaks (TFLOP/s), from the vendors' data sheets.
PEAKS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10G": 70.0}


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args, device: torch.device, label: str, bf16: bool, flash: bool, compile_: bool) -> dict:
    torch.manual_seed(0)
    model = t2t.create_model(args.model, img_size=args.img_size, drop_path_rate=0.1).to(device).train()
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, **fused)
    forward = torch.compile(model) if compile_ else model
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, model.num_classes, (args.batch,), device=device)
    attention = contextlib.nullcontext()
    if flash:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        attention = sdpa_kernel([SDPBackend.FLASH_ATTENTION])

    def step() -> None:
        with attention, torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    compile_start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync(device)
    warmup_s = time.perf_counter() - compile_start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    elapsed = time.perf_counter() - start
    images_s = args.batch * args.steps / elapsed
    macs = t2t.complexity(model.config).macs
    peak = peak_tflops(device, args.peak_tflops)
    row = {
        "row": label,
        "batch": args.batch,
        "step_ms": elapsed / args.steps * 1e3,
        "images_s": images_s,
        "tflops": 6 * macs * images_s / 1e12,
        "mfu": 6 * macs * images_s / (peak * 1e12) if peak else None,
        "warmup_s": warmup_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    return row


def cifar_epoch(device: torch.device, smoke: bool) -> dict | None:
    try:
        from contract import metrics as M
        from trainables.config import TrainConfig
        from trainables.loop import Trainer
    except ImportError as e:
        print(f"CIFAR-size epoch skipped: {e} (install pydantic and pyyaml)")
        return None
    samples = 256 if smoke else 50_000
    cfg = TrainConfig.from_dict({
        "model": {"name": "t2t_vit_mini" if smoke else "t2t_vit_7_cifar"},
        "data": {"name": "synthetic", "synthetic_samples": samples, "img_size": 32, "batch_size": 128,
                 "val_fraction": 0.05, "test_fraction": 0.05},
        "train": {"epochs": 2, "device": device.type},
    })  # fmt: skip
    trainer = Trainer(cfg, device)
    first = trainer.run_epoch()  # includes the first steps' kernel selection
    second = trainer.run_epoch()
    on_device = trainer.data.train.images.device.type  # the data set lives where the model trains
    return {"model": cfg.model.name, "train_images": len(trainer.data.train.labels), "data_on": on_device,
            "first_epoch_s": first[M.EPOCH_TIME_S], "epoch_s": second[M.EPOCH_TIME_S],
            "images_s": second[M.IMAGES_PER_S], "bf16": trainer.bf16}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="t2t_vit_14")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, if not in the table")
    parser.add_argument("--smoke", action="store_true", help="CPU, t2t_vit_test at 32 px, 2 steps: checks the code")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu_step.json"))
    args = parser.parse_args()
    if args.smoke:
        args.model, args.img_size, args.batch, args.steps, args.warmup = "t2t_vit_test", 32, 4, 2, 1
        args.peak_tflops = args.peak_tflops or 1.0
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        sys.exit("gpu_step: no CUDA device here; run it where one is, or use --smoke to check the code on a CPU")
    else:
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rows_spec = [("fp32 (TF32)", False, False, False), ("bf16", True, False, False),
                 ("bf16 + flash forced", True, True, False), ("bf16 + compile", True, False, True)]  # fmt: skip
    if args.smoke:
        rows_spec = [r for r in rows_spec if not r[2] and not r[3]]  # flash needs CUDA; compile takes minutes
    rows = []
    for label, bf16, flash, compile_ in rows_spec:
        try:
            rows.append(measure(args, device, label, bf16, flash, compile_))
        except RuntimeError as e:  # e.g. flash not available for this GPU or dtype
            rows.append({"row": label, "error": str(e).splitlines()[0]})
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the row's model and optimizer are gone with measure()
        r = rows[-1]
        if "error" in r:
            print(f"{label:<22} failed: {r['error']}")
        else:
            mfu = f"{r['mfu'] * 100:.1f}%" if r["mfu"] is not None else "-"
            print(f"{label:<22} {r['images_s']:9.1f} img/s  {r['step_ms']:8.1f} ms/step  {r['tflops']:7.1f} TFLOP/s  "
                  f"MFU {mfu}  (warm-up {r['warmup_s']:.1f} s)", flush=True)  # fmt: skip
    epoch = cifar_epoch(device, args.smoke)
    if epoch:
        print(f"CIFAR-size epoch ({epoch['model']}, {epoch['train_images']} images on {epoch['data_on']}): "
              f"{epoch['epoch_s']:.2f} s, {epoch['images_s']:.0f} img/s", flush=True)  # fmt: skip
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)"
    meta = {"device": name, "torch": torch.__version__, "model": args.model, "img_size": args.img_size}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows, "cifar_epoch": epoch}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
