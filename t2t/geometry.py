"""Soft-split geometry: the token grids follow from the image size and the (kernel, stride, padding) spec."""

from __future__ import annotations

from collections.abc import Sequence


def split_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of ``nn.Unfold`` / a convolution along one axis (0 or less when it cannot fit)."""
    return (size + 2 * padding - kernel) // stride + 1


def token_grids(img_size: tuple[int, int], soft_split: Sequence[tuple[int, int, int]]) -> tuple[tuple[int, int], ...]:
    """The (H, W) grid after each soft split, or ``ValueError`` naming the stage that cannot tile its input."""
    h, w = img_size
    grids = []
    for i, (k, s, p) in enumerate(soft_split):
        nh, nw = split_size(h, k, s, p), split_size(w, k, s, p)
        if nh < 1 or nw < 1:
            raise ValueError(
                f"image size {tuple(img_size)} is too small for soft split {i} (kernel={k}, stride={s}, "
                f"padding={p}): its input is {h}x{w}; use a larger image or a smaller soft_split "
                "(e.g. the 'cifar' or 'compact' preset)"
            )
        h, w = nh, nw
        grids.append((h, w))
    return tuple(grids)
