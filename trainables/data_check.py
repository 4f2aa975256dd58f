"""Whether a data set can train at all, found without loading it: its files are there, and every split holds data.

A ``DataError`` names the folder or the key and the fix; ``search.run`` and ``trainables.train`` call this before
they start, so a missing CIFAR batch or a ``val_fraction`` that empties a split never costs an epoch.
"""

from __future__ import annotations

from pathlib import Path

from contract.redact import redact
from trainables.config import DataSection
from trainables.data import TEST_DIR, TRAIN_DIR, VAL_DIR, DataError, check_available, has_test_split
from trainables.staging import StagingError, cached_listing, is_remote

_CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train", "test"]),
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}  # torchvision's
_CIFAR_TRAIN_IMAGES = 50_000  # CIFAR-10's and CIFAR-100's official training sets


def check_data(cfg: DataSection, seed: int | None = None) -> None:
    """Raise ``DataError`` when ``cfg`` cannot train (``seed``, a run's ``train.seed``, does not move the split).
    A ``data.root`` on shared storage is listed, not copied: each node copies it when a trial first needs it."""
    if is_remote(cfg.root):
        _check_remote(cfg)
        return
    check_available(cfg)
    if cfg.name in _CIFAR_FILES:
        _check_val_size(cfg)
        if not cfg.download:
            _check_cifar(cfg)
    elif cfg.name == "imagefolder":
        _check_imagefolder(cfg)
    elif cfg.name in ("digits", "synthetic"):
        _check_split(cfg)


def _check_remote(cfg: DataSection) -> None:
    """The URI can be read and holds what the data set reads (CIFAR's batches, an image folder's train/ and val/)."""
    if redact(cfg.root) != cfg.root:  # it would reach the run's parameters and the logs
        raise DataError(
            f"data.root {redact(cfg.root)} holds a credential: give the storage's credentials in its environment "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3), not in the URI"
        )
    if cfg.download:
        raise DataError(f"data.download=true needs a local data.root, not {cfg.root}: put the data set there once")
    try:
        files = cached_listing(cfg.root)  # the one listing has_test_split and the model's pricing read too
    except StagingError as e:
        raise DataError(str(e)) from e
    if cfg.name in _CIFAR_FILES:
        _check_val_size(cfg)
        folder, names = _CIFAR_FILES[cfg.name]
        missing = [n for n in names if f"{folder}/{n}" not in files]
        if missing:
            raise DataError(f"{cfg.root}/{folder} lacks {', '.join(missing)}: copy the whole {folder} folder there")
    elif cfg.name == "imagefolder":
        splits = (TRAIN_DIR, VAL_DIR, TEST_DIR) if has_test_split(cfg) else (TRAIN_DIR, VAL_DIR)
        empty = [s for s in splits if not any(name.startswith(f"{s}/") for name in files)]
        if empty:
            raise DataError(f"{cfg.root} holds nothing under {', '.join(empty)}/: data.root must hold train/ and "
                            "val/ (and test/) with one subfolder per class")  # fmt: skip


def _check_val_size(cfg: DataSection) -> None:
    if cfg.val_size >= _CIFAR_TRAIN_IMAGES - cfg.batch_size:
        raise DataError(
            f"data.val_size={cfg.val_size} of the {_CIFAR_TRAIN_IMAGES} official training images leaves less than "
            f"one batch (data.batch_size={cfg.batch_size}) to train on; choose a val_size near 5000"
        )


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
    splits = (TRAIN_DIR, VAL_DIR, TEST_DIR) if has_test_split(cfg) else (TRAIN_DIR, VAL_DIR)
    counts = {split: _count_images(root / split) for split in splits}
    for split, per_class in counts.items():
        if not per_class or not sum(per_class.values()):
            raise DataError(
                f"image folder {root / split} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in class "
                f"subfolders: data.root must hold {'/CLASS/*.jpg and '.join(splits)}/CLASS/*.jpg"
            )
        if sorted(per_class) != sorted(counts[TRAIN_DIR]):
            raise DataError(
                f"{root}/{TRAIN_DIR} and {root}/{split} have different class folders: give both the same classes"
            )
    train = sum(counts[TRAIN_DIR].values())
    if train < cfg.batch_size:
        raise DataError(
            f"data.batch_size={cfg.batch_size} is larger than the {train} training images in {root / 'train'}: "
            "no full batch to train on; lower data.batch_size"
        )


def _count_images(folder: Path) -> dict[str, int]:
    """Images per class subfolder (torchvision's ImageFolder reads the same ones)."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    return {c.name: sum(1 for f in c.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES) for c in classes}


def _check_split(cfg: DataSection) -> None:
    """Every side of the stratified split holds data (sizes as ``trainables.data._split`` rounds them, per class)."""
    if cfg.name == "digits":
        from trainables import digits

        labels = digits.load()[1].tolist()
        per_class = [labels.count(c) for c in set(labels)]
    else:  # synthetic: uniform labels; the expected class size (the labels are drawn with the images)
        per_class = [cfg.synthetic_samples // cfg.synthetic_classes] * cfg.synthetic_classes
    val = sum(round(n * cfg.val_fraction) for n in per_class)
    test = sum(round(n * cfg.test_fraction) for n in per_class)
    train = sum(per_class) - val - test
    fractions = f"data.val_fraction={cfg.val_fraction} and data.test_fraction={cfg.test_fraction}"
    for name, size in (("validation", val), ("test", test)):
        if size < 1:
            raise DataError(
                f"{fractions} of {sum(per_class)} {cfg.name} images: the {name} set is empty; choose fractions near 0.2"
            )
    if train < cfg.batch_size:
        raise DataError(
            f"{fractions} of {sum(per_class)} {cfg.name} images: the training set has {train} images, below one "
            f"batch (data.batch_size={cfg.batch_size}); choose fractions near 0.2 or lower data.batch_size"
        )
