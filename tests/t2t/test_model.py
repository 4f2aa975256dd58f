"""Invariants of the model on tiny configurations, and the official defects that must be impossible here."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import torch

import t2t
from t2t import T2TConfig

TOKENS_TYPES = ["performer", "transformer", "convolution"]


def _tiny(tokens_type: str = "performer", **overrides) -> t2t.T2TViT:
    return t2t.create_model("t2t_vit_test", tokens_type=tokens_type, **overrides)


@pytest.mark.parametrize("tokens_type", TOKENS_TYPES)
def test_forward_shapes(tokens_type):
    model = _tiny(tokens_type).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (3, 10)
        assert model.forward_features(x).shape == (3, 32)
        tokens = model.forward_features(x, all_tokens=True)
    assert tokens.shape == (3, 1 + model.config.num_patches, 32)
    assert model.config.num_patches == 16  # 'compact' soft split: 32 -> 16 -> 8 -> 4


@pytest.mark.parametrize("tokens_type", TOKENS_TYPES)
def test_every_trainable_parameter_gets_a_gradient(tokens_type):
    model = _tiny(tokens_type, drop_path_rate=0.1).train()
    model(torch.randn(4, 3, 32, 32)).logsumexp(dim=-1).sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


@pytest.mark.parametrize("tokens_type", TOKENS_TYPES)
def test_no_nan_in_float32_and_bf16_autocast(tokens_type):
    model = _tiny(tokens_type).eval()
    x = torch.randn(2, 3, 32, 32) * 10
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_training_step_under_bf16_autocast_gives_finite_gradients():
    model = t2t.create_model("t2t_vit_7", img_size=64, num_classes=10).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64) * 3), torch.tensor([1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_float64_model_runs():
    model = _tiny().double().eval()
    assert model(torch.randn(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


def test_stochastic_depth_rates_rise_linearly():
    model = t2t.create_model("t2t_vit_7", drop_path_rate=0.3)
    rates = [block.drop_path.p for block in model.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 7).tolist())
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)


def test_eval_is_deterministic_and_train_is_stochastic_with_drop_path():
    model = _tiny("transformer", drop_path_rate=0.5)
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_performer_dropout_is_a_parameter_with_the_official_default():
    assert T2TConfig().performer_drop == 0.1
    model = _tiny("performer", performer_drop=0.0).train()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))  # drop 0 everywhere: train mode is deterministic


def test_fused_switch_reaches_every_attention_and_agrees():
    model = _tiny("transformer").eval()
    x = torch.randn(2, 3, 32, 32)
    fused = model(x)
    model.set_fused_attn(False)
    assert not any(getattr(m, "fused_attn", False) for m in model.modules())
    torch.testing.assert_close(model(x), fused, atol=1e-5, rtol=1e-5)


def test_print_model_is_readable():
    text = repr(t2t.create_model("t2t_vit_7", drop_path_rate=0.1))
    assert "DropPath(p=0.100)" in text and "DropPath(p=0.000)" in text
    assert "TokenPerformer" in text and "random_features=32" in text
    assert "grids=[(56, 56), (28, 28), (14, 14)]" in text
    assert "num_heads=4, scale=0.125" in text


def test_library_code_prints_nothing():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for tokens_type in TOKENS_TYPES:
            _tiny(tokens_type)(torch.randn(1, 3, 32, 32))
    assert out.getvalue() == ""


def test_every_variant_is_a_valid_config_and_builds_what_model_config_says():
    names = t2t.list_models()
    assert names == sorted(names) and {"t2t_vit_7", "t2t_vit_t_24", "t2t_vit_c_14", "t2t_vit_test"} <= set(names)
    for name in names:
        assert isinstance(t2t.model_config(name), T2TConfig), name
    config = t2t.model_config("t2t_vit_test", num_classes=3, depth=1)
    assert (config.num_classes, config.depth, config.embed_dim) == (3, 1, 32)
    assert t2t.create_model("t2t_vit_test", num_classes=3, depth=1).config == config


def test_create_model_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 't2t_vit_15'; did you mean .*'t2t_vit_14'"):
        t2t.create_model("t2t_vit_15")
    with pytest.raises(ValueError, match=r"unknown model 't2t_vit_15'"):
        t2t.model_config("t2t_vit_15")


def test_create_model_unknown_option_is_an_error():
    with pytest.raises(ValueError, match=r"unknown model option 'drop_path'.*did you mean 'drop_path_rate'"):
        t2t.create_model("t2t_vit_7", drop_path=0.1)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(embed_dim=100, num_heads=3), "embed_dim must be divisible by num_heads, got embed_dim=100 num_heads=3"),
        (dict(tokens_type="convolutional"), "tokens_type must be one of"),
        (dict(img_size=4, soft_split=((7, 4, 0), (3, 2, 1))), r"image size \(4, 4\) is too small for soft split 0"),
        (dict(img_size=(32, 0)), "img_size must be a positive int or a pair"),
        (dict(soft_split="cifar10"), r"unknown soft_split preset 'cifar10'.*did you mean 'cifar'"),
        (dict(soft_split=((7, 0, 2),)), "soft_split must be a preset name or"),
        (dict(drop_path_rate=1.0), r"drop_path_rate must be a number in \[0, 1\)"),
        (dict(drop_rate=-0.1), r"drop_rate must be a number in \[0, 1\)"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(token_dim=2.5), "token_dim must be an integer >= 1"),
        (dict(mlp_ratio=0), "mlp_ratio must be > 0"),
        (dict(token_heads=2), "token_heads > 1 needs tokens_type='transformer'"),
        (dict(tokens_type="transformer", token_dim=15, token_heads=2), "token_dim must be divisible by token_heads"),
        (dict(performer_kernel_ratio=0.01), "performer_kernel_ratio gives no random features"),
        (dict(num_classes=-1), "num_classes must be an integer >= 0"),
    ],
)
def test_bad_values_raise_value_error_naming_the_rule(overrides, message):
    with pytest.raises(ValueError, match=message):
        t2t.model_config("t2t_vit_test", **overrides)


def test_wrong_input_size_names_both_sizes():
    model = _tiny()
    with pytest.raises(ValueError, match=re.escape("expected input (B, 3, 32, 32), got (1, 3, 64, 64)")):
        model(torch.randn(1, 3, 64, 64))


# --- the official code's defects (../shared/reference/T2T.md), impossible here ---


def test_token_transformer_with_several_heads_works():
    model = _tiny("transformer", token_heads=4)
    assert model.tokens_to_token.attention1.attn.num_heads == 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_convolution_tokens_work_end_to_end():
    assert t2t.complexity(t2t.model_config("t2t_vit_c_14")).params == pytest.approx(21.3e6, rel=0.01)  # paper: 21.3M
    model = t2t.create_model("t2t_vit_c_14", num_classes=10)
    model(torch.randn(1, 3, 224, 224)).sum().backward()
    assert model.tokens_to_token.soft_split0.weight.grad is not None


@pytest.mark.parametrize("img_size, patches", [(200, 13 * 13), (232, 15 * 15), ((224, 160), 14 * 10)])
def test_image_sizes_that_are_not_multiples_of_16_or_square_work(img_size, patches):
    model = t2t.create_model("t2t_vit_7", img_size=img_size, num_classes=10, depth=1)
    h, w = model.img_size
    assert model.config.num_patches == patches
    assert model(torch.randn(1, 3, h, w)).shape == (1, 10)


def test_unknown_tokens_type_fails_at_construction_not_in_forward():
    with pytest.raises(ValueError, match="tokens_type must be one of"):
        t2t.T2TViT(tokens_type="mixer")


def test_attention_scale_is_head_dim_whatever_the_construction_path(reference):
    # The official `pretrained=True` factory silently used embed_dim ** -0.5 (issue #62); ours has one rule.
    model = t2t.create_model("t2t_vit_14")
    t2t.load_pretrained(model, t2t.create_model("t2t_vit_14").state_dict())
    assert {block.attn.scale for block in model.blocks} == {64**-0.5}
