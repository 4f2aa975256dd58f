"""The three splits: train, val (what the search sees) and test (measured only by the final phase)."""

from __future__ import annotations

import pytest
import torch

from trainables.config import ConfigError, DataSection, TrainConfig
from trainables.data import _split, build_data, has_test_split

CPU = torch.device("cpu")


def _splits(cfg: DataSection, generator_seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of train, val and test as built for a run whose train.seed is ``generator_seed``."""
    data = build_data(cfg, CPU, generator=torch.Generator().manual_seed(generator_seed))
    return [(b.images, b.labels) for b in (data.train, data.val, data.test)]


def _rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_the_three_splits_are_disjoint_cover_the_data_and_are_stratified():
    labels = torch.arange(10).repeat_interleave(torch.arange(20, 30))  # classes of 20..29 images
    train, val, test = _split(labels, (0.2, 0.2), seed=0)
    assert not set(train.tolist()) & set(val.tolist())
    assert not set(train.tolist()) & set(test.tolist())
    assert not set(val.tolist()) & set(test.tolist())
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(len(labels)))
    for part in (val, test):
        per_class = torch.bincount(labels[part], minlength=10)
        assert torch.equal(per_class, (torch.arange(20, 30) * 0.2).round().long())


def test_digits_images_are_in_exactly_one_split():
    train, val, test = (_rows(x) for x, _ in _splits(DataSection(img_size=8)))  # native size: rows are images
    assert not train & val and not train & test and not val & test
    # digits holds a few duplicate images, so the union of distinct images is at most the 1,797
    assert len(train) + len(val) + len(test) <= 1797 and len(train | val | test) >= 1700


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_the_split_depends_on_split_seed_not_on_train_seed(name):
    cfg = DataSection(name=name, synthetic_samples=200)
    first = _splits(cfg, generator_seed=0)
    for again in (_splits(cfg, generator_seed=0), _splits(cfg, generator_seed=7)):
        for (x1, y1), (x2, y2) in zip(first, again, strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = _splits(cfg.model_copy(update={"split_seed": 1}))
    assert not torch.equal(other[2][1], first[2][1]) or not torch.equal(other[2][0], first[2][0])


def test_the_trainer_builds_the_same_split_for_every_train_seed():
    from trainables.loop import Trainer

    tiny = ["model.name=t2t_vit_test", "data.name=synthetic", "data.synthetic_samples=96", "data.batch_size=16"]
    a, b = (Trainer(TrainConfig.load(None, [*tiny, f"train.seed={s}"]), CPU) for s in (0, 3))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a.data, split).images, getattr(b.data, split).images)


def test_fractions_that_leave_no_training_images_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"data.val_fraction=0.5 plus data.test_fraction=0.5 must be below 1"):
        TrainConfig.load(None, ["data.val_fraction=0.5", "data.test_fraction=0.5"])


def test_cifar_val_size_must_leave_training_images(tmp_path):
    from trainables.data import DataError
    from trainables.data_check import check_data

    with pytest.raises(DataError, match=r"data.val_size=50000 of the 50000 official training images"):
        check_data(DataSection(name="cifar10", root=str(tmp_path), download=True, val_size=50_000))


def _image_folder(root, splits):
    from PIL import Image

    for split in splits:
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(root / split / cls / f"{i}.png")


def test_image_folder_has_a_test_split_only_with_test_folder(tmp_path):
    _image_folder(tmp_path / "with", ("train", "val", "test"))
    _image_folder(tmp_path / "without", ("train", "val"))
    for case, expected in (("with", True), ("without", False)):
        cfg = DataSection(name="imagefolder", root=str(tmp_path / case), batch_size=4, num_workers=0)
        data = build_data(cfg, CPU, torch.Generator().manual_seed(0))
        assert has_test_split(cfg) is expected
        assert (data.test is data.val) is not expected
        assert len(data.test.loader.dataset) == 8
    assert has_test_split(DataSection()) and has_test_split(DataSection(name="cifar10"))
