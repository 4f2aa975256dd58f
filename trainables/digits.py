"""The embedded default data set: scikit-learn's bundled 8x8 digits (1,797 images, values 0..16, 10 classes).

The file is read straight from scikit-learn's package folder. Importing scikit-learn to reach it costs ~2 s, paid
by the driver and by every trial's process. ``sklearn.datasets.load_digits`` reads the same file.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np


def _csv() -> Path:
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn ships the digits data set and is not installed: make run installs it")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


@functools.cache
def load() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: images of shape (1797, 8, 8) and labels, the values ``load_digits`` gives, as float32
    and int64. Both are read-only: every caller in the process shares them."""
    with gzip.open(_csv(), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images, labels = rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(np.int64)
    for array in (images, labels):
        array.setflags(write=False)
    return images, labels
