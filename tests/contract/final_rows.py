"""Constructed final-phase rows: one per seed, with per-image hits on a test set of ``IMAGES``."""

from __future__ import annotations

import zlib

import numpy as np

from contract.final import BASELINE, HITS, SEED, SOURCE
from contract.hits import encode
from contract.metrics import STATUS, TEST_ACC, VAL_ACC
from contract.status import COMPLETED

IMAGES = 400
LABELS = [i % 10 for i in range(IMAGES)]  # the test images' labels, in the split's order


def runs(source: str, val: float, test: float, baseline: bool = False, ends=(COMPLETED,) * 3, hits=True):
    """One row per seed: val_acc near ``val``, test hits with accuracy near ``test`` (a little spread by seed)."""
    rows = []
    for seed, end in enumerate(ends, start=1):
        rng = np.random.default_rng([zlib.crc32(source.encode()), seed])
        h = rng.random(IMAGES) < test + 0.005 * seed
        row = {SOURCE: source, SEED: seed, BASELINE: baseline, STATUS: end, VAL_ACC: val + seed / 1000}
        if end == COMPLETED:
            row |= {TEST_ACC: float(h.mean()), HITS: encode(h, LABELS) if hits else None}
        rows.append(row)
    return rows
