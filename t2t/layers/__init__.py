from t2t.layers.attention import Attention, attend
from t2t.layers.block import LN_EPS, Block
from t2t.layers.drop import DropPath, drop_path
from t2t.layers.mlp import Mlp

__all__ = ["LN_EPS", "Attention", "Block", "DropPath", "Mlp", "attend", "drop_path"]
