"""T2T-ViT in PyTorch: the official function and checkpoints, any image size, a fused attention path."""

from t2t.complexity import Complexity, complexity
from t2t.config import SOFT_SPLIT_PRESETS, TOKENS_TYPES, T2TConfig
from t2t.model import T2TViT, sinusoid_table
from t2t.pretrained import LoadReport, load_pretrained
from t2t.registry import create_model, list_models, model_config

__all__ = [
    "SOFT_SPLIT_PRESETS",
    "TOKENS_TYPES",
    "Complexity",
    "LoadReport",
    "T2TConfig",
    "T2TViT",
    "complexity",
    "create_model",
    "list_models",
    "load_pretrained",
    "model_config",
    "sinusoid_table",
]
