"""Stored and YAML configs that cannot point the program elsewhere or ask for more than a machine holds; a truncated
checkpoint refused before a model is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.config import ConfigError, load_config, to_dict
from core.io import FileFormatError
from core.model.config import ModelConfig, load_model_config
from core.train.checkpoint import read_checkpoint_meta, save_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 64}})
    model = LCAModel(cfg, rig_from_body_asset())
    config = {"model": to_dict(cfg), "train": {"data": {"crop_size": 64, "face_size": 32}}}
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", model=model, step=1, config=config)
    return path, config


def _with_config(src: Path, dst: Path, config: dict) -> Path:
    """A copy of checkpoint `src` whose header carries `config` (the tensors unchanged)."""
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["lca_meta"])
    meta["config"] = config
    header["__metadata__"]["lca_meta"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    dst.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n :])
    return dst


def test_a_checkpoint_cannot_point_the_program_at_another_file(tmp_path, tiny_checkpoint, monkeypatch):
    from core.model import encoder
    from core.train.export import model_from_checkpoint

    src, config = tiny_checkpoint
    opened = []
    monkeypatch.setattr(encoder, "load_vit_weights", lambda module, path, fmt: opened.append(path))
    secret = tmp_path / "elsewhere.safetensors"
    secret.write_bytes(b"not for the model")
    model_cfg = dict(config["model"], encoder=dict(config["model"]["encoder"], weights=str(secret), freeze=True))
    path = _with_config(src, tmp_path / "pointing.safetensors", dict(config, model=model_cfg))
    model, _ = model_from_checkpoint(path)
    assert opened == [], "the checkpoint's encoder.weights path was opened"
    assert model.cfg.encoder.weights is None


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("train", {"crop_size": 60000}, "crop_size"),
        ("train", {"face_size": 0}, "face_size"),
        ("model", {"transformer": {"width": 65536, "heads": 4}}, "transformer.width"),
    ],
)
def test_sizes_in_a_stored_config_are_checked_before_anything_is_built(tmp_path, tiny_checkpoint, section, change,
                                                                       message, monkeypatch):  # fmt: skip
    from core.train import export

    src, config = tiny_checkpoint
    if section == "train":
        config = dict(config, train={"data": dict(config["train"]["data"], **change)})
    else:
        config = dict(config, model=dict(config["model"], **change))
    path = _with_config(src, tmp_path / "sized.safetensors", config)
    monkeypatch.setattr(export, "LCAModel", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(FileFormatError, match=message):
        export.stored_crop_sizes(read_checkpoint_meta(path), path) if section == "train" else export.model_config_of(
            path
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  crop_size: -64\n", "data.crop_size"),
        ("data:\n  face_size: 0\n", "data.face_size"),
        ("data:\n  crop_size: 30000\n", "data.crop_size"),
    ],
)
def test_yaml_training_configs_refuse_impossible_crop_sizes(tmp_path, text, message):
    from core.train.config import TrainConfig

    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, tmp_path / "t.yaml")


def test_yaml_model_configs_refuse_widths_no_machine_holds(tmp_path):
    (tmp_path / "m.yaml").write_text("encoder:\n  width: 65536\n")
    with pytest.raises(ConfigError, match="encoder.width"):
        load_config(ModelConfig, tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("encoder:\n  width: 4096\n  depth: 64\n  heads: 64\n")
    with pytest.raises(ConfigError, match="billion parameters"):
        load_config(ModelConfig, tmp_path / "m.yaml")
    for preset in ("tiny", "base", "large"):
        load_model_config(preset)


@pytest.mark.parametrize("value", ["1" * 5000, "2024-13-45"])
def test_yaml_values_python_cannot_convert_are_config_errors(tmp_path, value):
    from core.train.cli import parse_overrides
    from core.train.config import TrainConfig

    (tmp_path / "t.yaml").write_text(f"name: {value}\n")
    with pytest.raises(ConfigError, match="t.yaml"):
        load_config(TrainConfig, tmp_path / "t.yaml")
    with pytest.raises(ConfigError, match="--set name="):
        parse_overrides([f"name={value}"])


def test_a_truncated_checkpoint_is_refused_before_the_model_is_built(tmp_path, tiny_checkpoint, monkeypatch):
    from core.train import export

    src, _ = tiny_checkpoint
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size - 1000])
    monkeypatch.setattr(export, "LCAModel", lambda *a, **k: pytest.fail("a model was built for a truncated file"))
    with pytest.raises(FileFormatError, match="truncated"):
        export.model_from_checkpoint(cut)
