from __future__ import annotations

import pytest
import torch

import t2t


@pytest.fixture(scope="module")
def official_7(reference):
    return torch.load(reference / "t2t_vit_7_fixture.pt", weights_only=True)


def test_checkpoint_at_224_loads_into_a_384_model(official_7):
    model = t2t.create_model("t2t_vit_7", img_size=384).eval()
    report = t2t.load_pretrained(model, official_7["state_dict"])
    assert list(report.skipped) == ["pos_embed"]
    assert "576 patches (checkpoint: 196)" in report.skipped["pos_embed"]
    assert len(report.loaded) == len(official_7["state_dict"]) - 1
    torch.testing.assert_close(model.pos_embed[0], t2t.sinusoid_table(577, 256))
    torch.testing.assert_close(model.blocks[3].mlp.fc1.weight, official_7["state_dict"]["blocks.3.mlp.fc1.weight"])
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 384, 384))).all()


def test_checkpoint_at_224_loads_into_a_32px_model_with_a_new_head(official_7):
    model = t2t.create_model("t2t_vit_7_cifar", num_classes=10)
    head_before = model.head.weight.clone()
    report = t2t.load_pretrained(model, official_7["state_dict"])
    assert set(report.skipped) == {"pos_embed", "head.weight", "head.bias"}
    assert "new head for 10 classes (checkpoint: 1000)" in report.skipped["head.weight"]
    assert model.head.weight.shape == (10, 256)
    assert not torch.equal(model.head.weight, head_before)  # re-initialised
    assert model.head.weight.std().item() == pytest.approx(0.02, rel=0.2)
    torch.testing.assert_close(
        model.tokens_to_token.attention1.kqv.weight, official_7["state_dict"]["tokens_to_token.attention1.kqv.weight"]
    )
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_checkpoint_into_a_model_without_head(official_7):
    model = t2t.create_model("t2t_vit_7", num_classes=0)
    report = t2t.load_pretrained(model, official_7["state_dict"])
    assert set(report.skipped) == {"head.weight", "head.bias"}
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 256)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"state_dict_ema": sd, "state_dict": {}},
        lambda sd: {"model": sd},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
    ],
    ids=["state_dict", "state_dict_ema", "model", "module-prefix"],
)
def test_official_checkpoint_file_formats(tmp_path, official_7, wrap):
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(wrap(official_7["state_dict"]), path)
    model = t2t.create_model("t2t_vit_7").eval()
    t2t.load_pretrained(model, path)
    with torch.no_grad():
        torch.testing.assert_close(model(official_7["input"]), official_7["logits"], atol=5e-6, rtol=0)


def test_use_ema_false_prefers_the_plain_weights():
    plain, ema = t2t.create_model("t2t_vit_test"), t2t.create_model("t2t_vit_test")
    model = t2t.create_model("t2t_vit_test")
    t2t.load_pretrained(model, {"state_dict": plain.state_dict(), "state_dict_ema": ema.state_dict()}, use_ema=False)
    assert torch.equal(model.head.weight, plain.head.weight)
    t2t.load_pretrained(model, {"state_dict": plain.state_dict(), "state_dict_ema": ema.state_dict()})
    assert torch.equal(model.head.weight, ema.head.weight)


def test_checkpoint_of_another_architecture_names_the_tensor(official_7):
    model = t2t.create_model("t2t_vit_14")
    with pytest.raises(ValueError, match=r"checkpoint tensor 'cls_token' has shape \(1, 1, 256\).*\(1, 1, 384\)"):
        t2t.load_pretrained(model, official_7["state_dict"])


def test_another_depth_needs_strict_false(official_7):
    model = t2t.create_model("t2t_vit_7", depth=4)
    with pytest.raises(ValueError, match="pass strict=False"):
        t2t.load_pretrained(model, official_7["state_dict"])
    report = t2t.load_pretrained(model, official_7["state_dict"], strict=False)
    assert len(report.unexpected) == 3 * 11 and report.unexpected[0].startswith("blocks.4.")


def test_missing_file_and_non_tensor_entries_are_clear(tmp_path):
    model = t2t.create_model("t2t_vit_test")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        t2t.load_pretrained(model, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="checkpoint entry 'epoch' is a int, not a tensor"):
        t2t.load_pretrained(model, {"epoch": 3})
