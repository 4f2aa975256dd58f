"""What a trial trained and was evaluated on, as plain records: a data set's name, digest and size per split.

The digest identifies the data, not the file it came from: the labels in full and an evenly spaced sample of at
most ``_SAMPLED`` images (so a CIFAR-size split costs milliseconds), or an image folder's sorted file list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from contract.tracking import TEST_SPLIT, TRAIN_SPLIT, VAL_SPLIT
from trainables.config import DataSection
from trainables.data import Data, LoaderBatches, TensorBatches

_SAMPLED = 256  # images hashed per split
DIGEST_CHARS = 12


@dataclass(frozen=True)
class SplitRecord:
    """What an MLflow data set input records of one split: its name, digest and size."""

    name: str  # the data set (data.name), e.g. digits
    split: str  # TRAIN_SPLIT, VAL_SPLIT or TEST_SPLIT
    digest: str
    rows: int
    num_classes: int
    image_shape: tuple[int, ...]  # (C, H, W) as the model sees it
    source: str  # where it was read from: the bundled set, a folder


def _tensor_digest(batches: TensorBatches) -> str:
    h = hashlib.sha256()
    images, labels = batches.images.detach().cpu(), batches.labels.detach().cpu()
    h.update(str(tuple(images.shape)).encode())
    h.update(labels.numpy().tobytes())
    step = max(1, len(images) // _SAMPLED)
    h.update(images[::step].to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


def _folder_digest(batches: LoaderBatches) -> tuple[str, int]:
    samples = sorted(batches.loader.dataset.samples)  # (path, class) of every image
    h = hashlib.sha256()
    for path, label in samples:
        h.update(f"{path}\t{label}\n".encode())
    return h.hexdigest()[:DIGEST_CHARS], len(samples)


def _split(cfg: DataSection, data: Data, split: str, batches: TensorBatches | LoaderBatches) -> SplitRecord:
    shape = (data.in_chans, cfg.img_size, cfg.img_size)
    if isinstance(batches, TensorBatches):
        digest, rows = _tensor_digest(batches), len(batches.labels)
    else:
        digest, rows = _folder_digest(batches)
    source = {"digits": "sklearn.datasets.load_digits", "synthetic": "generated"}.get(cfg.name, str(cfg.root))
    return SplitRecord(cfg.name, split, digest, rows, data.num_classes, shape, source)


def describe(cfg: DataSection, data: Data, evaluate_test: bool = False) -> list[SplitRecord]:
    """The training and the validation split of ``data`` (built from ``cfg``), and the test split when the run
    measures it (``train.evaluate_test``) and has one of its own: a run that never reads a test split does not record
    one."""
    records = [_split(cfg, data, TRAIN_SPLIT, data.train), _split(cfg, data, VAL_SPLIT, data.val)]
    if evaluate_test and data.has_test_split:
        records.append(_split(cfg, data, TEST_SPLIT, data.test))
    return records
