"""Benchmark 1: a training step (forward + backward) of our T2T-ViT against the plain official math.

    python benchmarks/model_step.py [--threads 2] [--repeats 7] [--quick] [--only NAME]

Both models hold the same weights (checked: same logits) and run in one process, interleaved; the table shows
medians. A third column runs our model with ``fused_soft_split=False`` (unfold, LayerNorm and linear as three
steps), to show what the fused soft split adds. Writes benchmarks/results/model_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import t2t
from benchmarks.official_math import OfficialT2TViT

CASES = [  # name, model, overrides, batch
    ("performer 224", "t2t_vit_7", {}, 8),
    ("transformer 224", "t2t_vit_t_14", {}, 4),
    ("performer 32 (CPU search)", "t2t_vit_mini", {"tokens_type": "performer"}, 64),
    ("transformer 32 (CPU search)", "t2t_vit_mini", {"tokens_type": "transformer"}, 64),
]


def step_time(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    out.float().logsumexp(-1).mean().backward()
    return time.perf_counter() - start


def run_case(name: str, variant: str, overrides: dict, batch: int, repeats: int, bf16: bool) -> dict:
    ours = t2t.create_model(variant, num_classes=10, performer_drop=0.0, **overrides).train()
    unfused = t2t.create_model(variant, num_classes=10, performer_drop=0.0, fused_soft_split=False, **overrides)
    unfused.load_state_dict(ours.state_dict())
    official = OfficialT2TViT(ours.config).train()
    for module in official.modules():  # same function: no dropout in either
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    official.load_state_dict(ours.state_dict())
    x = torch.randn(batch, ours.config.in_chans, *ours.img_size)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), official.eval()(x), atol=1e-4, rtol=1e-4)
    models = {"ours": ours.train(), "unfused": unfused.train(), "official": official.train()}
    for model in models.values():  # warm-up
        step_time(model, x, bf16)
    times = {label: [] for label in models}
    for _ in range(repeats):  # interleaved, so drift hits all alike
        for label, model in models.items():
            model.zero_grad(set_to_none=True)
            times[label].append(step_time(model, x, bf16))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "case": name,
        "dtype": "bf16" if bf16 else "fp32",
        "batch": batch,
        "ours_ms": med["ours"] * 1e3,
        "unfused_ms": med["unfused"] * 1e3,
        "official_ms": med["official"] * 1e3,
        "speedup": med["official"] / med["ours"],
        "speedup_unfused": med["official"] / med["unfused"],
        "ours_img_s": batch / med["ours"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fp32 only, 3 repeats")
    parser.add_argument("--only", default="", help="run the cases whose name contains this, e.g. '32'")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for dtype_bf16 in (False,) if args.quick else (False, True):
        for case in (c for c in CASES if args.only in c[0]):
            rows.append(run_case(*case, repeats=3 if args.quick else args.repeats, bf16=dtype_bf16))
            r = rows[-1]
            print(
                f"{r['case']:<30} {r['dtype']:<5} batch {r['batch']:>3}  ours {r['ours_ms']:8.1f} ms  "
                f"unfused split {r['unfused_ms']:8.1f} ms  official {r['official_ms']:8.1f} ms  "
                f"speedup {r['speedup']:.2f}x (unfused split {r['speedup_unfused']:.2f}x)",
                flush=True,
            )
    out = Path(__file__).resolve().parent / "results" / "model_step.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
