"""Whether a data set can train at all, found without loading it: its files are there, and every split holds data.

A ``DataError`` names the folder or the key and the fix; ``search.run`` and ``trainables.train`` call this before
they start, so a missing CIFAR batch or a ``val_fraction`` that empties a split never costs an epoch.
"""

from __future__ import annotations

from pathlib import Path

from trainables.config import DataSection
from trainables.data import DataError, check_available

_CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train", "test"]),
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}  # torchvision's
_DIGITS = 1797  # scikit-learn's bundled digits; 10 classes of 174-183 images


def check_data(cfg: DataSection, seed: int) -> None:
    check_available(cfg)
    if cfg.name in _CIFAR_FILES and not cfg.download:
        _check_cifar(cfg)
    elif cfg.name == "imagefolder":
        _check_imagefolder(cfg)
    elif cfg.name in ("digits", "synthetic"):
        _check_split(cfg, seed)


def _check_cifar(cfg: DataSection) -> None:
    folder, files = _CIFAR_FILES[cfg.name]
    path = Path(cfg.root).expanduser() / folder
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: copy the whole {folder} folder there, or set data.download=true"
        )


def _check_imagefolder(cfg: DataSection) -> None:
    root = Path(cfg.root).expanduser()
    counts = {split: _count_images(root / split) for split in ("train", "val")}
    for split, per_class in counts.items():
        if not per_class or not sum(per_class.values()):
            raise DataError(
                f"image folder {root / split} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in class "
                "subfolders: data.root must hold train/CLASS/*.jpg and val/CLASS/*.jpg"
            )
    if sorted(counts["train"]) != sorted(counts["val"]):
        raise DataError(f"{root}/train and {root}/val have different class folders: give both the same classes")
    train = sum(counts["train"].values())
    if train < cfg.batch_size:
        raise DataError(
            f"data.batch_size={cfg.batch_size} is larger than the {train} training images in {root / 'train'}: "
            "no full batch to train on; lower data.batch_size"
        )


def _count_images(folder: Path) -> dict[str, int]:
    """Images per class subfolder (torchvision's ImageFolder reads the same ones)."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    return {c.name: sum(1 for f in c.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES) for c in classes}


def _check_split(cfg: DataSection, seed: int) -> None:
    """Both sides of the stratified split hold data (sizes as ``trainables.data._split`` rounds them, per class)."""
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        labels = load_digits().target.tolist()
        per_class = [labels.count(c) for c in set(labels)]
    else:  # synthetic: uniform labels; the expected class size (the labels are drawn with the images)
        per_class = [cfg.synthetic_samples // cfg.synthetic_classes] * cfg.synthetic_classes
    val = sum(round(n * cfg.val_fraction) for n in per_class)
    train = sum(per_class) - val
    if val < 1 or train < cfg.batch_size:
        side = "validation set is empty" if val < 1 else f"training set has {train} images, below one batch"
        raise DataError(
            f"data.val_fraction={cfg.val_fraction} of {sum(per_class)} {cfg.name} images: the {side} "
            f"(data.batch_size={cfg.batch_size}); choose a val_fraction near 0.2"
        )
