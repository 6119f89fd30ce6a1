from dataclasses import dataclass

import pytest

from core.config import ConfigError, from_dict, load_config, save_config, to_dict
from core.model.config import ModelConfig, load_model_config


def test_presets_load_with_their_sizes():
    tiny, base, large = (load_model_config(n) for n in ("tiny", "base", "large"))
    assert tiny.transformer.width == 64 and tiny.num_gaussians == 1024
    assert base.num_gaussians == 131_072
    assert large.transformer.depth == 8 and large.transformer.width == 1024


def test_unknown_key_is_rejected_with_its_name(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("name: x\ntransformer:\n  widht: 64\n")
    with pytest.raises(ConfigError, match="transformer.widht"):
        load_config(ModelConfig, p)


def test_wrong_type_is_rejected_with_field_and_value():
    with pytest.raises(ConfigError, match=r"encoder.depth.*integer"):
        from_dict(ModelConfig, {"encoder": {"depth": "two"}})
    with pytest.raises(ConfigError, match="heads.decoder"):
        from_dict(ModelConfig, {"heads": {"decoder": "triple"}})


def test_range_validators_name_the_field():
    with pytest.raises(ConfigError, match="divisible by transformer.heads"):
        from_dict(ModelConfig, {"transformer": {"width": 66, "heads": 4}})
    with pytest.raises(ConfigError, match="tokens.num_anchors"):
        from_dict(ModelConfig, {"tokens": {"num_anchors": 0}})


def test_config_round_trips_through_yaml(tmp_path):
    cfg = load_model_config("base")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(ModelConfig, tmp_path / "c.yaml") == cfg
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg


def test_generic_loader_handles_optional_and_tuples():
    @dataclass(frozen=True)
    class C:
        a: tuple[int, int] = (1, 2)
        b: float | None = None

    assert from_dict(C, {"a": [3, 4], "b": 1}) == C((3, 4), 1.0)
    with pytest.raises(ConfigError, match=r"a: expected 2 items"):
        from_dict(C, {"a": [1, 2, 3]})


def test_every_shipped_config_loads():
    from pathlib import Path

    from core.model.config import load_model_config
    from core.train.config import load_train_config

    root = Path(__file__).resolve().parents[1] / "configs"
    models = sorted((root / "model").glob("*.yaml"))
    assert models
    for p in models:
        assert load_model_config(p.stem).name == p.stem
    for p in sorted((root / "train").glob("*.yaml")):
        cfg = load_train_config(p)
        assert load_model_config(cfg.model) is not None, p.name
    assert load_model_config("base-pixel-head").tokens.head_share == 0.3
