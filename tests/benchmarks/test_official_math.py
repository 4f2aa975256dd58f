"""The benchmarks' reference is the official function: it matches the official fixture and our model."""

from __future__ import annotations

import torch

import t2t
from benchmarks.official_math import OfficialT2TViT


def test_reference_reproduces_the_official_fixture(reference):
    fixture = torch.load(reference / "t2t_vit_7_fixture.pt", weights_only=True)
    model = OfficialT2TViT(t2t.model_config("t2t_vit_7")).eval()
    model.load_state_dict(fixture["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["input"]), fixture["logits"], atol=5e-6, rtol=0)


def test_reference_and_ours_agree_on_transformer_tokens():
    ours = t2t.create_model("t2t_vit_7_cifar", tokens_type="transformer", depth=2).eval()
    official = OfficialT2TViT(ours.config).eval()
    official.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), official(x), atol=1e-5, rtol=1e-5)
