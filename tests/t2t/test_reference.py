"""Equivalence with the official T2T-ViT: fixtures computed by the official code, and its state-dict manifest."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import t2t

OFFICIAL = [
    "t2t_vit_7",
    "t2t_vit_10",
    "t2t_vit_12",
    "t2t_vit_14",
    "t2t_vit_19",
    "t2t_vit_24",
    "t2t_vit_t_14",
    "t2t_vit_t_19",
    "t2t_vit_t_24",
]
MANIFEST_ENTRIES = [*OFFICIAL, "t2t_vit_14@384"]


def _variant(entry: str) -> tuple[str, dict]:
    name, _, size = entry.partition("@")
    return name, (dict(img_size=int(size)) if size else {})


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_t2t_vit_7_matches_official_logits(reference, fused):
    fixture = torch.load(reference / "t2t_vit_7_fixture.pt", weights_only=True)
    model = t2t.create_model("t2t_vit_7", fused_attn=fused, fused_soft_split=fused).eval()
    report = t2t.load_pretrained(model, fixture["state_dict"])
    assert not report.skipped and not report.missing and not report.unexpected
    with torch.no_grad():
        logits = model(fixture["input"])
    torch.testing.assert_close(logits, fixture["logits"], atol=5e-6, rtol=0)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("fixture_name", ["t2t_vit_t_small_224.pt", "t2t_vit_p_small_64.pt"])
def test_small_redrawn_models_match_official(reference, fixture_name, fused):
    fixture = torch.load(reference / fixture_name, weights_only=True)
    model = t2t.T2TViT(**fixture["constructor_kwargs"], fused_attn=fused, fused_soft_split=fused).eval()
    t2t.load_pretrained(model, fixture["state_dict"])
    with torch.no_grad():
        tokens = model.tokens_to_token(fixture["input"])
        logits = model(fixture["input"])
    torch.testing.assert_close(tokens, fixture["tokens_to_token_out"], atol=2e-5, rtol=0)
    torch.testing.assert_close(logits, fixture["logits"], atol=2e-5, rtol=0)


@pytest.mark.parametrize("entry", MANIFEST_ENTRIES)
def test_state_dict_matches_manifest_key_for_key(manifest, entry):
    expected = manifest["variants"][entry]
    name, kwargs = _variant(entry)
    model = t2t.create_model(name, **kwargs)
    state = model.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(e["key"], e["shape"]) for e in expected["state_dict"]]
    params = dict(model.named_parameters())
    assert {k: p.requires_grad for k, p in params.items()} == {
        e["key"]: e["requires_grad"] for e in expected["state_dict"]
    }
    assert not list(model.buffers())
    assert sum(p.numel() for p in params.values()) == expected["params_all"]
    assert sum(p.numel() for p in params.values() if p.requires_grad) == expected["params_trainable"]


@pytest.mark.parametrize("entry", MANIFEST_ENTRIES)
def test_analytic_complexity_matches_manifest(manifest, entry):
    expected = manifest["variants"][entry]
    name, kwargs = _variant(entry)
    cost = t2t.complexity(t2t.model_config(name, **kwargs))  # from the config alone: nothing is built
    flops = expected.get("flops_224") or expected["flops_384"]
    assert cost.params == expected["params_all"]
    assert cost.params_trainable == expected["params_trainable"]
    assert cost.macs == flops["macs_total"]
    assert cost.macs_tokens_to_token == flops["macs_by_top_module"]["tokens_to_token"]
    assert cost.macs_head == flops["macs_by_top_module"]["head"]


def _measured_macs(model: torch.nn.Module) -> int:
    """MACs per image: a batch of 2 minus a batch of 1, so work done once per call (the fused soft split folds
    its LayerNorm into the projection's weights) drops out."""
    macs = []
    for batch in (1, 2):
        x = torch.randn(batch, model.config.in_chans, *model.img_size)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(x)
        macs.append(counter.get_total_flops() // 2)
    return macs[1] - macs[0]


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("t2t_vit_7", {}),
        ("t2t_vit_t_14", {}),
        ("t2t_vit_c_14", {}),
        ("t2t_vit_mini", {}),
        ("t2t_vit_7_cifar", {"tokens_type": "transformer"}),
        ("t2t_vit_test", {"tokens_type": "transformer", "token_heads": 2, "qkv_bias": True, "img_size": (40, 24)}),
        ("t2t_vit_test", {"soft_split": ((4, 4, 0),), "num_classes": 0}),
    ],
)
def test_analytic_complexity_equals_flop_counter(name, overrides):
    # On the plain paths: every torch counts their matmuls and unfolds alike, while what the counter makes of a fused
    # kernel (SDPA's CPU flash kernel, the soft split as one convolution) changed between torch 2.14 and 2.15. The
    # fused paths compute the same function (test_model.py, the fixtures above), so they do the same work.
    model = t2t.create_model(name, fused_attn=False, fused_soft_split=False, **overrides)
    cost = t2t.complexity(model.config)
    assert cost.macs == _measured_macs(model)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.params_trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
