"""The named variants as data: each sets some ``T2TConfig`` fields, the others keep their defaults.

The official variants: 224 px, 1000 classes, token_dim 64, backbone head_dim 64, qkv_bias False.
"lite" (7/10/12) and the others use performer tokens; the t2t_vit_t_* use transformer tokens.
"""

from __future__ import annotations

from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "t2t_vit_7": dict(tokens_type="performer", embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0),
    "t2t_vit_10": dict(tokens_type="performer", embed_dim=256, depth=10, num_heads=4, mlp_ratio=2.0),
    "t2t_vit_12": dict(tokens_type="performer", embed_dim=256, depth=12, num_heads=4, mlp_ratio=2.0),
    "t2t_vit_14": dict(tokens_type="performer", embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0),
    "t2t_vit_19": dict(tokens_type="performer", embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.0),
    "t2t_vit_24": dict(tokens_type="performer", embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.0),
    "t2t_vit_t_14": dict(tokens_type="transformer", embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0),
    "t2t_vit_t_19": dict(tokens_type="transformer", embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.0),
    "t2t_vit_t_24": dict(tokens_type="transformer", embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.0),
    # The paper's T2T-ViT_c-14: three convolutions instead of soft splits + token layers (80.8%, 21.3M).
    "t2t_vit_c_14": dict(tokens_type="convolution", embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0),
    # Small variants for 32 px images (CIFAR, upscaled digits) on a CPU, and a tiny one for tests.
    # About 0.6M parameters, 16 tokens at 32 px: the default of the CPU search.
    "t2t_vit_mini": dict(
        img_size=32,
        num_classes=10,
        soft_split="compact",
        token_dim=32,
        embed_dim=128,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
    ),
    # t2t_vit_7 on 32 px images with 64 tokens; loads the ImageNet t2t_vit_7 checkpoint.
    "t2t_vit_7_cifar": dict(
        img_size=32, num_classes=10, soft_split="cifar", embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0
    ),
    # Tiny, for tests: 2 blocks of width 32 on 32 px images.
    "t2t_vit_test": dict(
        img_size=32,
        num_classes=10,
        soft_split="compact",
        token_dim=16,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
    ),
}
