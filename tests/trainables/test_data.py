from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainables.config import DataSection
from trainables.data import DataError, TensorBatches, build_data, random_crop, random_erasing, random_flip

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]


def _data(**kwargs):
    return build_data(DataSection(**kwargs), CPU, generator=torch.Generator().manual_seed(0))


def test_digits_split_is_stratified_and_upscaled():
    data = _data()
    train, val, test = data.train, data.val, data.test
    assert (data.in_chans, data.num_classes) == (1, 10)
    assert (len(train.labels), len(val.labels), len(test.labels)) == (1079, 359, 359)  # docs/training.md
    assert train.images.shape[1:] == (1, 8, 8)  # held at the native size, resized per batch
    assert next(iter(val))[0].shape[1:] == (1, 32, 32)
    for split in (val, test):  # every class held out in proportion (174-183 images per class)
        assert torch.bincount(split.labels, minlength=10).min() >= 35


@pytest.mark.processes
def test_the_digits_are_scikit_learns_without_importing_it():
    code = (
        "import sys; from trainables import digits; images, labels = digits.load(); "
        "assert 'sklearn' not in sys.modules; from sklearn.datasets import load_digits; d = load_digits(); "
        "assert (images == d.images).all() and (labels == d.target).all(), 'not the same digits'; "
        "assert images.shape == (1797, 8, 8) and labels.dtype.name == 'int64'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # a fresh process: nothing imported before


def test_training_batches_are_normalised_augmented_and_reproducible():
    x1, y1 = next(iter(_data().train))
    x2, y2 = next(iter(_data().train))
    assert x1.shape == (64, 1, 32, 32)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # same generator seed, same batch
    val_x, _ = next(iter(_data().val))
    assert abs(val_x.mean().item()) < 0.1 and 0.8 < val_x.std().item() < 1.2


def test_img_size_is_configurable():
    data = _data(img_size=48)
    assert next(iter(data.train))[0].shape[-2:] == (48, 48)


@pytest.mark.parametrize("size", [96, 24])
@pytest.mark.parametrize("stored", [torch.uint8, torch.float32])
def test_per_batch_resize_gives_the_images_of_resizing_the_data_set_once(stored, size):
    """Evaluation batches of native-size images (CIFAR: uint8) are those of the whole set resized up front."""
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (70, 3, 32, 32), generator=g, dtype=torch.uint8)
    images = pixels if stored == torch.uint8 else pixels.float() / 255
    labels = torch.randint(0, 10, (70,), generator=g)
    cfg = DataSection(name="cifar10", img_size=size, eval_batch_size=32)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    common = dict(cfg=cfg, mean=mean, std=std, generator=g, train=False, flip=True, device=CPU)
    per_batch = torch.cat([x for x, _ in TensorBatches(images, labels, **common)])
    once = torch.nn.functional.interpolate(pixels.float() / 255, size=(size, size), mode="bilinear", antialias=True)
    expected = (once - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert per_batch.shape == (70, 3, size, size)
    torch.testing.assert_close(per_batch, expected)


def test_random_crop_shifts_content_within_padding():
    x = torch.zeros(16, 1, 8, 8)
    x[:, :, 4, 4] = 1
    y = random_crop(x, pad=2, generator=torch.Generator().manual_seed(0))
    for image in y:
        (r, c) = image[0].nonzero()[0].tolist()
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
    assert y.sum() == 16


def test_random_flip_flips_about_half():
    x = torch.arange(8.0).expand(400, 1, 1, 8)
    y = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (y[:, 0, 0, 0] == 7).float().mean()
    assert 0.4 < flipped < 0.6


def test_random_erasing_respects_probability_and_area():
    x = torch.zeros(500, 3, 32, 32)
    y = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    erased = (y != 0).flatten(1).any(dim=1)
    assert 0.4 < erased.float().mean() < 0.6
    area = (y[erased] != 0).any(dim=1).flatten(1).float().mean(dim=1)
    assert area.min() >= 0.01 and area.max() <= 0.4


def test_synthetic_data():
    data = _data(name="synthetic", synthetic_samples=100, synthetic_classes=4)
    assert (data.in_chans, data.num_classes) == (3, 4)
    assert len(data.train.labels) + len(data.val.labels) + len(data.test.labels) == 100


def test_missing_cifar_without_download_names_folder_and_fix(tmp_path):
    with pytest.raises(DataError, match=f"CIFAR-10 not found in {tmp_path}/cifar-10-batches-py: set data.download"):
        _data(name="cifar10", root=str(tmp_path))
    with pytest.raises(DataError, match="CIFAR-100 not found"):
        _data(name="cifar100", root=str(tmp_path))


def test_missing_image_folder(tmp_path):
    with pytest.raises(DataError, match=f"image folder {tmp_path}/train not found"):
        _data(name="imagefolder", root=str(tmp_path))


def test_image_folder_streams_real_files(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(6):
                pixels = (torch.rand(40, 36, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    data = _data(
        name="imagefolder",
        root=str(tmp_path),
        batch_size=4,
        num_workers=0,
        randaugment_magnitude=9,
        random_erasing=0.25,
    )
    assert (data.in_chans, data.num_classes) == (3, 2)
    assert len(data.train) == 3
    x, y = next(iter(data.train))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.long
    assert next(iter(data.val))[0].shape == (12, 3, 32, 32)
