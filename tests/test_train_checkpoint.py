"""Checkpoints: exact resume of model/optimiser/RNG, atomic writes, clear errors for corrupt or foreign files."""

import os

import pytest
import torch

from core.io import FileFormatError, save_tensors
from core.train.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint


def _setup(seed=0, width=8):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt


def _steps(model, opt, n):
    losses = []
    for _ in range(n):
        x = torch.randn(16, 4)
        loss = (model(x) - x.sum(-1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resume_continues_the_same_loss_curve(tmp_path):
    model, opt = _setup()
    straight = _steps(model, opt, 6)

    model, opt = _setup()
    first = _steps(model, opt, 3)
    save_checkpoint(tmp_path / "ck.safetensors", model=model, optimizer=opt, step=3, config={"lr": 1e-2})
    _steps(model, opt, 2)  # diverge, then resume from the file into fresh objects
    model2, opt2 = _setup(seed=123)
    state = load_checkpoint(tmp_path / "ck.safetensors", model=model2, optimizer=opt2, restore_rng=True)
    assert state.step == 3 and state.meta["config"] == {"lr": 1e-2}
    resumed = _steps(model2, opt2, 3)
    assert first + resumed == pytest.approx(straight, rel=1e-6)


def test_mismatched_model_is_rejected_with_the_parameter_named(tmp_path):
    model, opt = _setup(width=8)
    save_checkpoint(tmp_path / "ck.safetensors", model=model, step=0, config={})
    other, _ = _setup(width=16)
    with pytest.raises(FileFormatError, match=r"0.weight.*\[8, 4\].*\[16, 4\]"):
        load_checkpoint(tmp_path / "ck.safetensors", model=other)


def test_corrupt_truncated_and_foreign_files_give_clear_errors(tmp_path):
    model, _ = _setup()
    path = save_checkpoint(tmp_path / "ck.safetensors", model=model, step=1, config={})
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.safetensors", model=model)
    save_tensors(tmp_path / "avatar.safetensors", {"x": torch.zeros(1)}, {}, kind="lca-avatar")
    with pytest.raises(FileFormatError, match="expected a lca-checkpoint file"):
        load_checkpoint(tmp_path / "avatar.safetensors", model=model)
    save_tensors(tmp_path / "nan.safetensors", {"x": torch.tensor([float("nan")])}, {}, kind="lca-checkpoint")
    with pytest.raises(FileFormatError, match="NaN"):
        load_checkpoint(tmp_path / "nan.safetensors", model=model)
    assert read_checkpoint_meta(path)["step"] == 1


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, _ = _setup()
    path = save_checkpoint(tmp_path / "ck.safetensors", model=model, step=1, config={})
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, model=model, step=2, config={})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temp files left behind
