import pytest
import torch
from safetensors.torch import save_file

from core.model.config import EncoderConfig
from core.model.encoder import ViTEncoder, load_vit_weights


def _cfg(**kw):
    base = dict(patch_size=4, width=32, depth=2, heads=2, body_crop=(16, 12), face_crop=(8, 8))
    return EncoderConfig(**{**base, **kw})


def _dinov2_checkpoint(width=32, depth=2, grid=5, patch=4):
    """A checkpoint with DINOv2's names and layout: class token, square position table with a class row."""
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = {
        "cls_token": r(1, 1, width),
        "pos_embed": r(1, 1 + grid * grid, width),
        "mask_token": r(1, width),
        "patch_embed.proj.weight": r(width, 3, patch, patch),
        "patch_embed.proj.bias": r(width),
        "norm.weight": r(width),
        "norm.bias": r(width),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        sd.update(
            {
                p + "norm1.weight": r(width), p + "norm1.bias": r(width),
                p + "attn.qkv.weight": r(3 * width, width), p + "attn.qkv.bias": r(3 * width),
                p + "attn.proj.weight": r(width, width), p + "attn.proj.bias": r(width),
                p + "ls1.gamma": r(width), p + "ls2.gamma": r(width),
                p + "norm2.weight": r(width), p + "norm2.bias": r(width),
                p + "mlp.fc1.weight": r(4 * width, width), p + "mlp.fc1.bias": r(4 * width),
                p + "mlp.fc2.weight": r(width, 4 * width), p + "mlp.fc2.bias": r(width),
            }
        )  # fmt: skip
    return sd


def test_dinov2_safetensors_loads_and_positions_are_resampled(tmp_path):
    sd = _dinov2_checkpoint()
    save_file(sd, str(tmp_path / "dinov2.safetensors"))
    enc = ViTEncoder(_cfg(weights=str(tmp_path / "dinov2.safetensors")))
    own = enc.state_dict()
    torch.testing.assert_close(own["blocks.1.attn.qkv.weight"], sd["blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(own["blocks.0.ls1.gamma"], sd["blocks.0.ls1.gamma"])
    torch.testing.assert_close(own["pos_embed"][:, :1], sd["pos_embed"][:, :1])
    assert own["pos_embed"].shape == (1, 1 + 4 * 3, 32)  # resampled from 5x5 to the 4x3 body grid
    out = enc(torch.rand(2, 3, 16, 12))
    assert out.shape == (2, 12, 32) and torch.isfinite(out).all()


def test_sapiens_pth_with_mmpretrain_names_loads(tmp_path):
    dino = _dinov2_checkpoint(grid=4)
    rename = {
        "norm1": "ln1", "norm2": "ln2", "mlp.fc1": "ffn.layers.0.0", "mlp.fc2": "ffn.layers.1",
        "ls1.gamma": "attn.gamma1", "ls2.gamma": "ffn.gamma2",
    }  # fmt: skip
    sd = {}
    for k, v in dino.items():
        if k in ("cls_token", "mask_token"):
            continue
        nk = k.replace("blocks.", "layers.").replace("patch_embed.proj", "patch_embed.projection")
        nk = nk.replace("norm.", "ln1.") if k.startswith("norm.") else nk
        for a, b in rename.items():
            nk = nk.replace(a, b)
        sd["backbone." + nk] = v[:, 1:] if k == "pos_embed" else v  # Sapiens: no class token
    torch.save({"state_dict": sd}, tmp_path / "sapiens.pth")
    enc = ViTEncoder(_cfg(body_crop=(16, 16)))
    load_vit_weights(enc, tmp_path / "sapiens.pth")
    own = enc.state_dict()
    torch.testing.assert_close(own["blocks.0.mlp.fc1.weight"], dino["blocks.0.mlp.fc1.weight"])
    torch.testing.assert_close(own["norm.weight"], dino["norm.weight"])
    torch.testing.assert_close(own["pos_embed"][:, 1:], dino["pos_embed"][:, 1:])
    torch.testing.assert_close(own["blocks.1.ls2.gamma"], dino["blocks.1.ls2.gamma"])


def test_mismatched_checkpoint_raises_a_clear_error(tmp_path):
    save_file(_dinov2_checkpoint(width=48), str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="expects"):
        ViTEncoder(_cfg(weights=str(tmp_path / "w.safetensors")))
    with pytest.raises(FileNotFoundError, match="encoder.weights"):
        ViTEncoder(_cfg(weights=str(tmp_path / "none.safetensors")))


def test_frozen_encoder_has_no_trainable_parameters():
    enc = ViTEncoder(_cfg(freeze=True))
    assert not any(p.requires_grad for p in enc.parameters())


def test_joint_pass_of_body_and_face_crops_equals_separate_passes():
    """`forward_joint` (one pass, block-diagonal attention) gives each set's tokens and gradients as `forward` does."""
    torch.manual_seed(0)
    enc = ViTEncoder(_cfg())
    body = torch.rand(3, 3, 16, 12, requires_grad=True)
    face = torch.rand(3, 3, 8, 8, requires_grad=True)
    joint = enc.forward_joint(body, face)
    ref = torch.cat([enc(body), enc(face)], dim=1)
    torch.testing.assert_close(joint, ref, atol=2e-6, rtol=1e-5)
    w = torch.randn_like(ref)
    inputs = [body, face, *enc.parameters()]
    fast = torch.autograd.grad((joint * w).sum(), inputs)
    slow = torch.autograd.grad((ref * w).sum(), inputs)
    for g, r in zip(fast, slow, strict=True):
        assert (g - r).abs().max() <= 1e-5 * r.abs().max().clamp_min(1e-8)
