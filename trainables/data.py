"""Data sets by name. Small ones (digits, CIFAR, synthetic) live as tensors on the training device and are
augmented there in batches; image folders stream through a DataLoader that uses the available CPUs.

Every source yields ``(images, labels)`` batches, images normalised float32 on the device, and has ``len()``.
Order and augmentation draw from one ``torch.Generator`` whose state travels with the checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from trainables.config import DataSection
from trainables.ranks import ONE, Group
from trainables.staging import cached_listing, is_remote, stage

CIFAR_STATS = {  # per-channel mean and std of the training images
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TRAIN_DIR, VAL_DIR, TEST_DIR = "train", "val", "test"  # an image folder's splits: root/train/CLASS/*.jpg, ...


class DataError(RuntimeError):
    """A data set cannot be had; the message names the folder and how to get the data."""


@dataclass
class Data:
    """The three splits of a data set, as batches on the training device or from a loader."""

    train: TensorBatches | LoaderBatches
    val: TensorBatches | LoaderBatches  # what the scheduler and the searcher see
    test: TensorBatches | LoaderBatches  # measured only with train.evaluate_test; ``val`` itself without a test split
    in_chans: int
    num_classes: int

    @property
    def has_test_split(self) -> bool:
        """Whether ``test`` is a split of its own (not ``val`` standing in for it)."""
        return self.test is not self.val

    def share(self, group: Group) -> None:
        """Every split yields this rank's share of each batch (``trainables.ranks``)."""
        for split in (self.train, self.val, self.test):
            split.group = group


class TensorBatches:
    """Batches of an in-memory data set held on ``device`` at its native size: images (N, C, H, W), float in
    [0, 1] or uint8 in [0, 255] (CIFAR: a quarter of the memory).

    Each batch is resized to ``img_size`` on the device, not the whole set once: CIFAR at 224 px in float32 would
    take 36 GB. Training batches are then shuffled and augmented there (RandAugment, random crop, flip, normalise,
    random erasing); evaluation batches are only resized and normalised.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        cfg: DataSection,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        generator: torch.Generator,
        train: bool,
        flip: bool,
        device: torch.device,
    ) -> None:
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size = cfg.batch_size if train else cfg.eval_batch_size
        self.cfg, self.train, self.flip, self.generator = cfg, train, flip, generator
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, device=device).view(shape)
        self.std = torch.tensor(std, device=device).view(shape)
        self.size = cfg.img_size
        self.group = ONE

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train and n >= self.batch_size else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.train else torch.arange(n)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size].to(self.images.device)
            # the whole batch augmented, then this rank's share: each image as one process augments it, and every
            # rank's generator in step with the others' (the next epoch's order is drawn from it)
            yield self.group.share(self._prepare(self.images[index])), self.group.share(self.labels[index])

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        x = resize(x, self.size)
        if self.train and self.cfg.randaugment_magnitude is not None:  # at the size the model sees
            x = _randaugment(x, self.cfg.randaugment_magnitude, self.generator)
        if self.train and self.cfg.augment:
            x = random_crop(x, pad=self.size // 8, generator=self.generator)
            if self.flip:
                x = random_flip(x, self.generator)
        x = (x - self.mean) / self.std
        if self.train and self.cfg.random_erasing > 0:
            x = random_erasing(x, self.cfg.random_erasing, self.generator)
        return x


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, C, H, W) resized to (size, size), antialiased when shrinking; unchanged at that size already."""
    if x.shape[-2:] == (size, size):
        return x
    # antialiasing changes nothing when enlarging (to float rounding) but costs 1.5x per batch there
    shrink = size < max(x.shape[-2:])
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


class LoaderBatches:
    """A DataLoader over an image folder, moving batches to the device."""

    def __init__(self, loader: torch.utils.data.DataLoader, device: torch.device) -> None:
        self.loader, self.device, self.group = loader, device, ONE

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:  # each rank reads the whole batch (the same order: the same seed) and keeps its share
            x, y = self.group.share(x), self.group.share(y)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch (shift by up to ``pad`` pixels)."""
    if pad == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    rows = (top[:, None] + torch.arange(H, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left[:, None] + torch.arange(W, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(B, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch flipped left-right with probability 1/2 (``generator``'s draws)."""
    flip = _rand((x.shape[0],), generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erasing(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Per image with probability ``p``: replace a random rectangle (2-33% of the area, aspect 0.3-3.3) by noise."""
    B, _, H, W = x.shape
    u = _rand((B, 5), generator, x.device)
    area = (0.02 + u[:, 0] * (1 / 3 - 0.02)) * H * W
    aspect = torch.exp(math.log(0.3) + u[:, 1] * (math.log(1 / 0.3) - math.log(0.3)))
    h = torch.sqrt(area * aspect).clamp(1, H).floor()
    w = torch.sqrt(area / aspect).clamp(1, W).floor()
    top = (u[:, 2] * (H - h + 1)).floor()
    left = (u[:, 3] * (W - w + 1)).floor()
    rows = torch.arange(H, device=x.device)[None, :]
    cols = torch.arange(W, device=x.device)[None, :]
    inside = ((rows >= top[:, None]) & (rows < (top + h)[:, None]))[:, :, None] & (
        (cols >= left[:, None]) & (cols < (left + w)[:, None])
    )[:, None, :]
    mask = (inside & (u[:, 4] < p)[:, None, None])[:, None]  # (B, 1, H, W)
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return torch.where(mask, noise, x)


def _randaugment(x: torch.Tensor, magnitude: int, generator: torch.Generator) -> torch.Tensor:
    from torchvision.transforms import v2

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    augment = v2.RandAugment(num_ops=2, magnitude=magnitude)
    with torch.random.fork_rng(devices=[]):  # RandAugment draws from the global RNG: isolate and seed it
        torch.manual_seed(seed)
        images = (x * 255).round().to(torch.uint8)
        return torch.stack([augment(image) for image in images]).float() / 255


def _split(labels: torch.Tensor, fractions: tuple[float, ...], seed: int) -> list[torch.Tensor]:
    """Stratified, seeded indices: the rest of each class first, then a share of it per fraction.

    The same labels and seed give the same split in every trial, whatever its ``train.seed``.
    """
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for i, fraction in enumerate(fractions, start=1):
            k = round(len(idx) * fraction)
            parts[i].append(idx[start : start + k])
            start += k
        parts[0].append(idx[start:])
    return [torch.cat(p).sort().values for p in parts]


def _digits() -> tuple[torch.Tensor, torch.Tensor, int]:
    from trainables import digits

    images, labels = digits.load()
    return torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(labels, dtype=torch.long), 10


def _synthetic(cfg: DataSection) -> tuple[torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(cfg.split_seed)
    images = torch.rand((cfg.synthetic_samples, 3, cfg.img_size, cfg.img_size), generator=g)
    labels = torch.randint(0, cfg.synthetic_classes, (cfg.synthetic_samples,), generator=g)
    return images, labels, cfg.synthetic_classes


_CIFAR = {  # name -> (torchvision class name, folder, title)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "CIFAR-10"),
    "cifar100": ("CIFAR100", "cifar-100-python", "CIFAR-100"),
}


def _cifar(cfg: DataSection, train: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    from torchvision import datasets

    check_available(cfg)
    cls_name, folder, title = _CIFAR[cfg.name]
    root = Path(cfg.root).expanduser()
    try:
        ds = getattr(datasets, cls_name)(str(root), train=train, download=cfg.download)
    except (OSError, RuntimeError) as e:  # URLError is an OSError
        raise DataError(
            f"{title} could not be read from or downloaded to {root}: {' '.join(str(e).split())}; download it on "
            f"a machine with internet and copy {folder} into {root}"
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
    return images, torch.tensor(ds.targets, dtype=torch.long), len(ds.classes)


def _imagefolder(cfg: DataSection, device: torch.device, generator: torch.Generator) -> Data:
    from torchvision import datasets
    from torchvision.transforms import v2

    check_available(cfg)
    root = Path(cfg.root).expanduser()
    mean, std = IMAGENET_STATS
    size = cfg.img_size
    to_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    train_tf = [v2.RandomResizedCrop(size, interpolation=v2.InterpolationMode.BICUBIC), v2.RandomHorizontalFlip()]
    if cfg.randaugment_magnitude is not None:
        train_tf.append(v2.RandAugment(num_ops=2, magnitude=cfg.randaugment_magnitude))
    train_tf += [*to_tensor, v2.Normalize(mean, std)]
    if cfg.random_erasing > 0:
        train_tf.append(v2.RandomErasing(p=cfg.random_erasing, value="random"))
    eval_tf = [v2.Resize(int(size / 0.875), interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(size)]
    eval_tf += [*to_tensor, v2.Normalize(mean, std)]
    train_ds = datasets.ImageFolder(str(root / TRAIN_DIR), transform=v2.Compose(train_tf))
    workers = cfg.num_workers if cfg.num_workers is not None else len(os.sched_getaffinity(0))
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    train = torch.utils.data.DataLoader(
        train_ds, cfg.batch_size, shuffle=True, drop_last=True, generator=generator, **common
    )
    held_out = {}
    for folder in (VAL_DIR, TEST_DIR) if has_test_split(cfg) else (VAL_DIR,):
        ds = datasets.ImageFolder(str(root / folder), transform=v2.Compose(eval_tf))
        if ds.classes != train_ds.classes:
            raise DataError(f"{root}/{TRAIN_DIR} and {root}/{folder} have different class folders")
        held_out[folder] = LoaderBatches(torch.utils.data.DataLoader(ds, cfg.eval_batch_size, **common), device)
    val = held_out[VAL_DIR]
    return Data(LoaderBatches(train, device), val, held_out.get(TEST_DIR, val), 3, len(train_ds.classes))


def has_test_split(cfg: DataSection) -> bool:
    """Whether ``cfg`` has images of its own for the test split; without (an image folder lacking test/), the
    test split is the validation split and numbers measured on it are val numbers."""
    if cfg.name != "imagefolder":
        return True
    if is_remote(cfg.root):
        return any(name.startswith(f"{TEST_DIR}/") for name in cached_listing(cfg.root))
    return (Path(cfg.root).expanduser() / TEST_DIR).is_dir()


def check_available(cfg: DataSection) -> None:
    """Raise ``DataError`` when the data set is not there (and may not be downloaded), without loading it."""
    if cfg.name in _CIFAR:
        _, folder, title = _CIFAR[cfg.name]
        root = Path(cfg.root).expanduser()
        if not (root / folder).is_dir() and not cfg.download:
            raise DataError(
                f"{title} not found in {root / folder}: set data.download=true to download it once (needs "
                f"internet), or copy {folder} into {root}"
            )
    elif cfg.name == "imagefolder":
        root = Path(cfg.root).expanduser()
        for split in (TRAIN_DIR, VAL_DIR):
            if not (root / split).is_dir():
                raise DataError(
                    f"image folder {root / split} not found: data.root must hold train/ and val/ (and test/, "
                    "held out for the final evaluation) with one subfolder per class"
                )


def channels_and_classes(cfg: DataSection) -> tuple[int, int]:
    """(in_chans, num_classes) of a data set without loading it (to price a model before it is built)."""
    if is_remote(cfg.root):  # nothing local to check: the image folder's classes as the storage lists them
        if cfg.name == "imagefolder":
            parts = [name.split("/") for name in cached_listing(cfg.root)]
            return 3, len({p[1] for p in parts if len(p) > 2 and p[0] == TRAIN_DIR})
    else:
        check_available(cfg)
    if cfg.name == "imagefolder":
        return 3, sum(1 for p in (Path(cfg.root).expanduser() / TRAIN_DIR).iterdir() if p.is_dir())
    return {"digits": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100)}.get(cfg.name, (3, cfg.synthetic_classes))


def build_data(cfg: DataSection, device: torch.device, generator: torch.Generator) -> Data:
    """The data set named by ``cfg.name``, split three ways by ``cfg.split_seed``; ``generator`` drives order and
    augmentation of the training batches. A ``data.root`` on shared storage is read from this node's copy
    (``trainables.staging``)."""
    if is_remote(cfg.root):
        cfg = cfg.model_copy(update={"root": str(stage(cfg.root))})
    if cfg.name == "imagefolder":
        return _imagefolder(cfg, device, generator)
    if cfg.name in CIFAR_STATS:
        images, labels, classes = _cifar(cfg, train=True)
        if cfg.val_size >= len(labels):
            raise DataError(
                f"data.val_size={cfg.val_size} leaves no training images of the {len(labels)} in the official "
                f"training set; choose a val_size near 5000"
            )
        train_idx, val_idx = _split(labels, (cfg.val_size / len(labels),), cfg.split_seed)
        test_x, test_y, _ = _cifar(cfg, train=False)
        mean, std = CIFAR_STATS[cfg.name]
        flip = True
    else:
        images, labels, classes = _digits() if cfg.name == "digits" else _synthetic(cfg)
        train_idx, val_idx, test_idx = _split(labels, (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
        test_x, test_y = images[test_idx], labels[test_idx]
        mean = tuple(images[train_idx].mean(dim=(0, 2, 3)).tolist())
        std = tuple(images[train_idx].std(dim=(0, 2, 3)).tolist())
        flip = cfg.name == "synthetic"  # digits are not mirror-symmetric
    splits = [(images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx]), (test_x, test_y)]
    common = dict(cfg=cfg, mean=mean, std=std, generator=generator, flip=flip, device=device)
    train, val, test = (TensorBatches(x, y, train=i == 0, **common) for i, (x, y) in enumerate(splits))
    return Data(train, val, test, in_chans=images.shape[1], num_classes=classes)
