"""Where training writes: a config's relative folders live under the user's data folder, never the current
directory; paths given on the command line (`--set`) stay as typed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.train.config import REPO_ROOT, load_train_config

CONFIGS = REPO_ROOT / "configs" / "train"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LCA_DATA_DIR", str(tmp_path / "data-home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "data-home"


def test_config_folders_go_under_the_user_data_folder(data_dir) -> None:
    cfg = load_train_config(CONFIGS / "smoke-tiny.yaml")
    assert Path(cfg.out_dir) == data_dir / "runs" and cfg.run_dir == data_dir / "runs" / "smoke-tiny"
    assert Path(cfg.data.root) == data_dir / "data" / "smoke" and cfg.data.real_root == ""
    assert not (data_dir / "data" / "smoke").exists()  # placing a folder creates nothing yet


def test_paths_given_with_set_stay_as_typed(data_dir) -> None:
    from core.train.cli import parse_overrides

    cfg = load_train_config(CONFIGS / "smoke-tiny.yaml", parse_overrides(["out_dir=runs", "data.root=data/mine"]))
    assert cfg.out_dir == "runs" and cfg.data.root == "data/mine"
    absolute = str(data_dir.parent / "elsewhere")
    assert load_train_config(CONFIGS / "smoke-tiny.yaml", {"data": {"real_root": absolute}}).data.real_root == absolute


def test_init_from_finds_an_earlier_run_or_a_shipped_file(data_dir) -> None:
    post = load_train_config(CONFIGS / "posttrain-base.yaml")
    assert Path(post.init_from) == data_dir / "runs" / "pretrain-base" / "last.safetensors"
    if (REPO_ROOT / "assets" / "default_model.safetensors").is_file():
        fine = load_train_config(CONFIGS / "finetune-default.yaml")
        assert Path(fine.init_from) == REPO_ROOT / "assets" / "default_model.safetensors"
    typed = load_train_config(CONFIGS / "posttrain-base.yaml", {"init_from": "x.safetensors"})
    assert typed.init_from == "x.safetensors"


def test_eval_and_bench_defaults_name_no_folder_in_the_current_directory() -> None:
    import argparse

    from core.train.cli import add_eval_cli

    p = argparse.ArgumentParser()
    add_eval_cli(p)
    assert p.parse_args(["model.safetensors"]).bench_root is None  # the user data folder's data/benchmarks


@pytest.mark.slow
def test_smoke_training_writes_nothing_into_the_current_directory(data_dir) -> None:
    from main import main

    cwd = Path.cwd()
    before = sorted(os.listdir(cwd))
    assert main(["train", str(CONFIGS / "smoke-tiny.yaml"), "--no-progress", "--set", "steps=1"]) == 0
    assert sorted(os.listdir(cwd)) == before
    assert (data_dir / "runs" / "smoke-tiny" / "last.safetensors").is_file()
    assert any((data_dir / "data" / "smoke").iterdir())
