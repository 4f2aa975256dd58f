"""The training loop: plain PyTorch, no Ray. The official T2T-ViT recipe, scaled to the data set.

``Trainer`` owns everything a run needs to continue exactly where it stopped (model, optimizer, EMA, step, epoch,
RNG states, best metrics, history); ``state_dict``/``load_state_dict`` carry it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import t2t
from contract import metrics as M
from contract import schedule
from contract.hits import encode as encode_hits
from contract.tracking import TEST_SPLIT, VAL_SPLIT
from trainables.config import MUTABLE, OptimSection, TrainConfig
from trainables.data import Data, build_data
from trainables.ranks import ONE, Group

CHECK_EVERY = 25  # steps between NaN checks of the loss on a GPU
# The metric names of each evaluated split: (loss, top-1, top-5).
SPLIT_METRICS = {
    VAL_SPLIT: (M.VAL_LOSS, M.VAL_ACC, M.VAL_ACC5),
    TEST_SPLIT: (M.TEST_LOSS, M.TEST_ACC, M.TEST_ACC5),
}


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda`` without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use train.device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether the run autocasts to bfloat16: ``bf16``, or ``auto`` on a GPU that supports it."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The official groups: no decay on 1-D params (norms), biases and the model's ``no_weight_decay`` names;
    frozen parameters (position table, performer features) are left out."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total_steps: int, warmup_steps: int, cfg: OptimSection) -> float:
    """Linear warmup from ``warmup_lr`` to ``lr``, then cosine to ``min_lr``, per optimizer step."""
    if step < warmup_steps:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def mix(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup: float, cutmix: float, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix (one of them per batch, 50/50 when both are on) with smoothed soft targets."""
    off = smoothing / num_classes
    target = F.one_hot(y, num_classes).to(x.dtype) * (1 - smoothing) + off
    alpha = cutmix if mixup == 0 or (cutmix > 0 and torch.rand(()) < 0.5) else mixup
    if alpha == 0:
        return x, target
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if alpha == cutmix and cutmix > 0:
        H, W = x.shape[-2:]
        cut_h, cut_w = int(H * math.sqrt(1 - lam)), int(W * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(0, H, ())), int(torch.randint(0, W, ()))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, H)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, W)
        x = x.clone()
        x[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (H * W)
    else:
        x = x * lam + x.flip(0) * (1 - lam)
    return x, target * lam + target.flip(0) * (1 - lam)


class ModelEma:
    """Exponential moving average of a model's floating-point state, its decay warmed up over the first updates.

    With a constant decay the random initial weights keep a share ``decay**t`` of the average after ``t`` updates
    (at 0.9998 still ~82% after 1,000 steps), so early evaluations would measure the initialisation, not training.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        """The decay of the update that follows ``updates`` earlier ones: ``min(decay, (1 + t) / (10 + t))``."""
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module, updates: int) -> None:
        """Move the average towards ``model``; ``updates`` is how many updates came before (the trainer's step,
        so a resumed run continues the warm-up exactly)."""
        ema = [v for v in self.module.state_dict().values() if v.is_floating_point()]
        new = [v for v in model.state_dict().values() if v.is_floating_point()]
        torch._foreach_lerp_(ema, new, 1 - self.decay_at(updates))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    bf16: bool,
    num_classes: int,
    split: str = VAL_SPLIT,
    hits: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    group: Group = ONE,
) -> dict[str, float]:
    """Loss, top-1 and (with at least 5 classes) top-5 accuracy of ``model`` on ``batches``, named for ``split``;
    ``hits``, where given, gets each batch's per-image top-1 hits and labels (in the batches' fixed order). Over a
    ``group``, each rank measures its share of the batches and the sums are the whole split's."""
    loss_key, acc_key, acc5_key = SPLIT_METRICS[split]
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=next(model.parameters()).device)  # loss, top-1, top-5, images
    for x, y in batches:
        hit = torch.zeros(0, dtype=torch.bool, device=y.device)
        if len(y):  # a rank's share of a short last batch may be empty
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            logits = logits.float()
            top = logits.topk(min(5, num_classes), dim=-1).indices
            hit = top[:, 0] == y
            batch = [F.cross_entropy(logits, y, reduction="sum"), hit.sum(), (top == y[:, None]).any(dim=-1).sum()]
            sums += torch.stack([*(b.double() for b in batch), sums.new_tensor(len(y))])
        if hits is not None:
            hits.append((group.whole(hit), group.whole(y)))
    loss_sum, correct1, correct5, n = group.sum(sums).tolist()
    out = {loss_key: loss_sum / n, acc_key: correct1 / n}
    if num_classes >= 5:
        out[acc5_key] = correct5 / n
    return out


class Trainer:
    """One training run of one configuration; ``epochs()`` yields each epoch's metrics. Over a ``group`` of
    processes (``trainables.ranks``), this process's rank of one run: every rank yields the same rows."""

    def __init__(
        self, cfg: TrainConfig, device: torch.device | None = None, owner: str | None = None, group: Group = ONE
    ) -> None:
        if cfg.data.batch_size % group.size:
            raise ValueError(f"data.batch_size={cfg.data.batch_size} is not a multiple of the {group.size} workers")
        self.cfg, self.group = cfg, group
        self.owner = owner  # the run this trainer trains for (a Tune trial id), named in its schedule
        self.device = device or resolve_device(cfg.train.device)
        self.bf16 = uses_bf16(cfg.train.precision, self.device)
        torch.manual_seed(cfg.train.seed)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)  # data order and augmentation
        self.data: Data = build_data(cfg.data, self.device, self.generator)
        self.data.share(group)
        self.model_config = cfg.model.build_config(cfg.data.img_size, self.data.in_chans, self.data.num_classes)
        self.cost = t2t.complexity(self.model_config)
        self.model = t2t.T2TViT(self.model_config)
        if cfg.model.pretrained:
            t2t.load_pretrained(self.model, cfg.model.pretrained, strict=False)
        self.model.to(self.device)
        trained = nn.parallel.DistributedDataParallel(self.model) if group.many else self.model  # averages gradients
        self.forward = torch.compile(trained) if cfg.train.compile else trained
        o = cfg.optim
        fused = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, o.weight_decay), lr=o.lr, betas=o.betas, eps=o.eps, **fused
        )
        self.ema = ModelEma(self.model, cfg.train.ema_decay) if cfg.train.ema_decay else None
        # A finiteness check reads the loss on the host: on a GPU that stalls the queue, so it runs every
        # CHECK_EVERY steps there (and on the epoch's summed loss at the end); on a CPU it is free. Over a group only
        # the epoch's, summed over every rank: a rank that stopped alone would leave the others waiting.
        self.nan_check_every = None if group.many else 1 if self.device.type == "cpu" else CHECK_EVERY
        self.steps_per_epoch = len(self.data.train)
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.warmup_steps = round(o.warmup_epochs * self.steps_per_epoch)
        self.epoch = 0
        self.step = 0
        self.best: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.schedule: list[dict[str, Any]] = schedule.start(owner, cfg.to_dict())
        self._own_draws()

    def _own_draws(self) -> None:
        """Rank k > 0 draws its dropout, drop path and mixup from a stream of its own (the run's seed, its rank, the
        step): with rank 0's stream it would mask its share's images as rank 0 masks its own. Rank 0's is one
        process's."""
        if self.group.rank:
            torch.manual_seed(hash((self.cfg.train.seed, self.group.rank, self.step)) % 2**63)

    @property
    def eval_model(self) -> nn.Module:
        """The weights every split is measured with, and that are saved as the run's model: the EMA's when on."""
        return self.ema.module if self.ema else self.model

    @property
    def done(self) -> bool:
        """Whether every epoch of ``train.epochs`` has run."""
        return self.epoch >= self.cfg.train.epochs

    def epochs(self) -> Iterator[dict[str, Any]]:
        """Run the remaining epochs, yielding each epoch's row."""
        while not self.done:
            yield self.run_epoch()

    def train_one_epoch(self) -> tuple[float, int]:
        """One pass over the training batches; returns (mean loss, images seen). Raises ``Diverged``."""
        model, cfg = self.model, self.cfg
        model.train()
        smoothing, mixup, cutmix = cfg.train.label_smoothing, cfg.data.mixup, cfg.data.cutmix
        loss_sum = torch.zeros((), device=self.device)
        images = 0
        for x, y in self.data.train:
            lr = lr_at(self.step, self.total_steps, self.warmup_steps, cfg.optim)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                if mixup or cutmix:
                    x, target = mix(x, y, self.data.num_classes, mixup, cutmix, smoothing)
                    loss = torch.sum(-target * F.log_softmax(self.forward(x).float(), dim=-1), dim=-1).mean()
                else:
                    loss = F.cross_entropy(self.forward(x).float(), y, label_smoothing=smoothing)
            if self.nan_check_every and self.step % self.nan_check_every == 0 and not torch.isfinite(loss):
                raise Diverged(f"loss became {loss.item()} at epoch {self.epoch + 1}, step {self.step} (lr={lr:.3g})")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            self.optimizer.step()
            if self.ema:
                self.ema.update(model, self.step)
            loss_sum += loss.detach() * len(y)
            images += len(y)
            self.step += 1
        loss_sum, images = self.group.sum(torch.stack([loss_sum, loss_sum.new_tensor(images)])).tolist()
        images = int(images)
        mean_loss = loss_sum / max(images, 1)
        if not math.isfinite(mean_loss):
            raise Diverged(f"loss became {mean_loss} in epoch {self.epoch + 1}, by step {self.step}")
        return mean_loss, images

    def run_epoch(self) -> dict[str, Any]:
        """One epoch of training, then val: the epoch's row (``contract.metrics`` names)."""
        start = time.perf_counter()
        train_loss, images = self.train_one_epoch()
        train_time = time.perf_counter() - start
        self.epoch += 1
        # The last epoch of a final run (train.evaluate_test) is measured on the final split: test, or val where the
        # data set has no test split (then no test_* number: the val numbers are the measurement), keeping each
        # image's hit there.
        final = self.done and self.cfg.train.evaluate_test
        hits: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if final else None
        on_test, nc, model = self.data.has_test_split, self.data.num_classes, self.eval_model
        result = evaluate(model, self.data.val, self.bf16, nc, VAL_SPLIT, None if on_test else hits, self.group)
        if result[M.VAL_ACC] >= self.best.get(M.VAL_ACC, -1.0):
            self.best = {**result, M.EPOCH: self.epoch}
        measured = {}
        if final:
            measured = evaluate(model, self.data.test, self.bf16, nc, TEST_SPLIT, hits, self.group) if on_test else {}
            measured[M.FINAL_HITS] = encode_hits(*(torch.cat(parts).tolist() for parts in zip(*hits, strict=True)))
        row = {
            M.EPOCH: self.epoch,
            M.TRAIN_LOSS: train_loss,
            **result,
            **measured,
            M.BEST_VAL_ACC: self.best[M.VAL_ACC],
            M.LR: self.optimizer.param_groups[0]["lr"],
            M.EPOCH_TIME_S: time.perf_counter() - start,
            M.IMAGES_PER_S: images / train_time,
            M.PARAMS: self.cost.params,
            M.MACS: self.cost.macs,
        }
        self.history.append(row)
        return row

    # --- checkpoints: tensors and plain values only, so they load with weights_only=True ---

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume exactly: config, model, optimizer, EMA, step, epoch, RNG states."""
        state = {
            "config": self.cfg.to_dict(),
            "model_config": dataclasses.asdict(self.model_config),  # the architecture, built for this data
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best": dict(self.best),
            "history": list(self.history),
            "owner": self.owner,
            "schedule": self.schedule,
            "rng": {"torch": torch.get_rng_state(), "data": self.generator.get_state()},
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema:
            state["ema"] = self.ema.module.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; keys this version does not write (an older checkpoint's ``extra``) are ignored.
        This trainer's config may differ from the checkpoint's in ``trainables.config.MUTABLE`` keys: the weights,
        the optimizer's moments, the EMA, the step and the data order continue, and the new values apply from the
        next step, a new segment of the weights' schedule (``contract.schedule``), as does another owner's state."""
        self.check_continues(state["config"])
        owner = state.get("owner", self.owner)  # a checkpoint from before schedules: this run's own
        saved = state.get("schedule") or schedule.start(owner, state["config"])
        self.schedule = schedule.continued(saved, state["epoch"], self.owner, owner, self.cfg.to_dict())
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.optimizer.param_groups[0]["weight_decay"] = self.cfg.optim.weight_decay  # the state holds the old one
        if self.ema:
            self.ema.module.load_state_dict(state["ema"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best, self.history = dict(state["best"]), list(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["data"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self._own_draws()

    def check_continues(self, saved: dict[str, Any]) -> list[str]:
        """The keys this trainer's config changes from ``saved``'s; ``ValueError`` unless it can continue that run."""
        changed = schedule.changes(saved, self.cfg.to_dict())
        fixed = [key for key in changed if key not in MUTABLE]
        if fixed:
            raise ValueError(
                f"the checkpoint was made with another configuration ({', '.join(fixed)} differ); resume with the "
                f"config it was made with (a run may continue with other values of {', '.join(MUTABLE)} only)"
            )
        if "train.ema_decay" in changed and None in (saved["train"]["ema_decay"], self.cfg.train.ema_decay):
            raise ValueError(
                f"train.ema_decay={self.cfg.train.ema_decay} where the checkpoint had "
                f"{saved['train']['ema_decay']}: a run may change the EMA's decay, not switch the EMA on or off"
            )
        return changed

    def save(self, path: str | Path) -> None:
        """Save ``state_dict`` to ``path``."""
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> dict[str, Any]:
        """Resume from a ``save``d file (read with ``weights_only=True``, onto the CPU: ``load_state_dict`` copies
        it to the device); the state, which a run's other ranks continue from too."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        return state

    def summary(self) -> dict[str, Any]:
        """Final and best metrics of the run so far."""
        last = self.history[-1] if self.history else {}
        best = {f"best_{k}": v for k, v in self.best.items() if k != M.EPOCH}
        cost = {M.PARAMS: self.cost.params, M.MACS: self.cost.macs}
        return {**last, **best, "best_epoch": self.best.get(M.EPOCH), **cost}


def following(trainer: Trainer, follow: schedule.Schedule | None) -> Trainer:
    """The trainer for the next epoch: ``trainer``, or where ``follow`` gives that epoch another configuration, a
    trainer of that one continuing ``trainer``'s state (as a population member continues a copied checkpoint). The
    old trainer's state goes to the CPU and its model and optimizer are freed first: two at once on a GPU would
    need twice the memory the run needs."""
    if not follow:
        return trainer
    config = schedule.config_at(follow, trainer.epoch + 1)
    if config == trainer.cfg.to_dict():
        return trainer
    state, device, owner = _on_cpu(trainer.state_dict()), trainer.device, trainer.owner
    trainer.model = trainer.forward = trainer.optimizer = trainer.ema = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    nxt = Trainer(TrainConfig.from_dict(config), device, owner=owner)
    nxt.load_state_dict(state)
    return nxt


def _on_cpu(value: Any) -> Any:
    """A state's tensors copied to the CPU (nested dicts and lists kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_on_cpu(v) for v in value]
    return value
