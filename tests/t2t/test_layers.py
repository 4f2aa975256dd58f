from __future__ import annotations

import pytest
import torch

import t2t
from t2t.layers import Attention, DropPath, attend, drop_path
from t2t.tokens import performer_attention, split_project


def test_drop_path_is_identity_in_eval_and_at_zero():
    x = torch.randn(8, 5, 4)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    module = DropPath(0.3).eval()
    assert torch.equal(module(x), x)


def test_drop_path_drops_whole_samples_and_rescales_survivors():
    p = 0.25
    x = torch.randn(4000, 3, 2) + 5.0
    y = drop_path(x, p, training=True)
    per_sample = y / x  # each sample is either all 0 or all 1 / (1 - p)
    dropped = (per_sample == 0).all(dim=(1, 2))
    kept = torch.isclose(per_sample, torch.tensor(1 / (1 - p))).all(dim=(1, 2))
    assert bool((dropped | kept).all())
    assert 0.2 < dropped.float().mean().item() < 0.3
    assert abs(y.mean().item() - x.mean().item()) < 0.2  # unbiased in expectation


def test_drop_path_rejects_bad_rate_and_shows_it():
    with pytest.raises(ValueError, match=r"drop path rate must be in \[0, 1\)"):
        DropPath(1.0)
    assert "p=0.100" in repr(DropPath(0.1))


@pytest.mark.parametrize("num_heads, tokens", [(1, 7), (4, 50), (3, 197), (1, 1100)])
def test_fused_and_plain_attention_agree(num_heads, tokens):
    q, k, v = (torch.randn(2, num_heads, tokens, 16) for _ in range(3))
    fused = attend(q, k, v, 0.3, 0.0, fused=True, cpu_min_tokens=0)  # SDPA whatever the length
    torch.testing.assert_close(fused, attend(q, k, v, 0.3, 0.0, fused=False), atol=1e-5, rtol=1e-5)


def test_attention_module_switches_paths():
    attn = Attention(48, 4, qkv_bias=True).eval()
    x = torch.randn(2, 1100, 48)  # long enough for SDPA on a CPU
    fused = attn(x)
    attn.fused_attn = False
    torch.testing.assert_close(fused, attn(x), atol=1e-5, rtol=1e-5)


def test_token_attention_skips_on_v_with_input_width_scale():
    attn = Attention(147, num_heads=1, out_dim=64, v_skip=True, fused_attn=False).eval()
    assert attn.scale == pytest.approx(147**-0.5)
    with torch.no_grad():
        attn.proj.weight.zero_()
        attn.proj.bias.zero_()
        x = torch.randn(2, 10, 147)
        v = attn.qkv(x)[..., 128:]
        torch.testing.assert_close(attn(x), v)  # with proj = 0 only the skip on v remains


def test_performer_kernel_stays_float32_and_finite_under_bf16_autocast():
    w = torch.nn.init.orthogonal_(torch.empty(32, 64)) * 32**0.5
    q, k, v = (torch.randn(2, 3136, 64) * 4 for _ in range(3))  # large activations overflow float16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = performer_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), w)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_performer_kernel_keeps_float64():
    w = torch.nn.init.orthogonal_(torch.empty(8, 16)).double() * 8**0.5
    q, k, v = (torch.randn(1, 5, 16, dtype=torch.float64) for _ in range(3))
    assert performer_attention(q, k, v, w).dtype == torch.float64


@pytest.mark.parametrize("split", [(7, 4, 2), (3, 2, 1), (3, 1, 0), (4, 4, 0)])
@pytest.mark.parametrize("with_norm", [True, False], ids=["norm", "no-norm"])
def test_split_project_is_unfold_norm_linear(split, with_norm):
    k, stride, padding = split
    x = (torch.randn(2, 5, 13, 11, dtype=torch.float64) * 3 + 7).requires_grad_()  # offset: no cancellation
    norm = torch.nn.LayerNorm(5 * k * k).double() if with_norm else None
    linear = torch.nn.Linear(5 * k * k, 6).double()
    if norm is not None:
        torch.nn.init.normal_(norm.weight, 1.0, 0.5), torch.nn.init.normal_(norm.bias, 0.0, 0.5)
    patches = torch.nn.functional.unfold(x, k, stride=stride, padding=padding).transpose(1, 2)
    expected = linear(norm(patches) if norm is not None else patches)
    fused = split_project(x, split, linear.weight, linear.bias, norm)
    torch.testing.assert_close(fused, expected, atol=1e-10, rtol=1e-10)
    params = [x, linear.weight, linear.bias] + ([norm.weight, norm.bias] if norm is not None else [])
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad(fused, params, upstream)
    torch.testing.assert_close(grads, torch.autograd.grad(expected, params, upstream), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    "overrides",
    [
        {"tokens_type": "performer"},
        {"tokens_type": "transformer", "token_heads": 2, "qkv_bias": True},
        {"tokens_type": "transformer", "img_size": (40, 24), "soft_split": ((5, 3, 2), (3, 2, 1), (2, 2, 0))},
    ],
)
def test_fused_soft_split_gives_the_plain_models_outputs_and_gradients(overrides):
    torch.manual_seed(0)
    fused = t2t.create_model("t2t_vit_test", performer_drop=0.0, **overrides).train()
    plain = t2t.create_model("t2t_vit_test", performer_drop=0.0, fused_soft_split=False, **overrides).train()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 3, *fused.img_size)
    outputs = [model(x) for model in (fused, plain)]
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    for out in outputs:
        out.square().sum().backward()
    for (name, p), q in zip(fused.named_parameters(), plain.parameters(), strict=True):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3, msg=name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = [model.eval()(x).float() for model in (fused, plain)]
    torch.testing.assert_close(bf16[0], bf16[1], atol=0.05, rtol=0.05)
