"""Decoded avatars are cached by their input files and the model code: the second start reads, never decodes."""

import torch

from core.model import avatar_cache
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import toy_rig


def _model() -> LCAModel:
    torch.manual_seed(0)
    return LCAModel(load_model_config("tiny"), toy_rig()).eval()


def test_a_decoded_avatar_is_read_back_from_the_cache_with_the_same_drive_output(tmp_path, monkeypatch):
    monkeypatch.setenv("LCA_CACHE_DIR", str(tmp_path / "cache"))
    model = _model()
    inputs = tmp_path / "inputs.bin"
    inputs.write_bytes(b"example crops")
    cfg = model.cfg
    body, face = torch.rand(2, 3, *cfg.encoder.body_crop), torch.rand(2, 3, *cfg.encoder.face_crop)
    decodes = []

    def make() -> Avatar:
        decodes.append(1)
        return Avatar.create(model, body_crops=body, face_crops=face)

    first = avatar_cache.cached_avatar([inputs], make, tag="t")
    again = avatar_cache.cached_avatar([inputs], make, tag="t")
    assert len(decodes) == 1  # the second call read the cache
    pose, expr = torch.randn(7, 3) * 0.3, torch.rand(4)
    a, b = first.decode(pose, expr), again.decode(pose, expr)
    for f in ("means", "quats", "log_scales", "opacity_logits", "sh", "parts"):
        torch.testing.assert_close(getattr(b, f), getattr(a, f))

    inputs.write_bytes(b"other crops")  # changed inputs: decoded afresh, never the stale entry
    avatar_cache.cached_avatar([inputs], make, tag="t")
    assert len(decodes) == 2


def test_the_cache_key_follows_the_model_code(tmp_path, monkeypatch):
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    key = avatar_cache.avatar_key([f], "t")
    monkeypatch.setattr(avatar_cache, "code_fingerprint", lambda: "edited code")
    assert avatar_cache.avatar_key([f], "t") != key
