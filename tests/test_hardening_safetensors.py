"""Corrupted avatar, checkpoint and example files end in a clear FileFormatError (or load), never a crash or hang."""

from pathlib import Path

import pytest
import torch
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case

from core.config import to_dict
from core.io import FileFormatError
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.examples import ExampleInputs, load_example, save_example
from core.model.model import LCAModel
from core.model.rig import toy_rig
from core.train.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint

EXPECTED = (FileFormatError, FileNotFoundError)


def header_end(path: Path) -> int:
    data = path.read_bytes()
    return 8 + int.from_bytes(data[:8], "little")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 64}})
    return LCAModel(cfg, toy_rig()).eval()


def test_corrupted_avatar_files_are_refused_or_load(tiny_model, tmp_path):
    cfg = tiny_model.cfg
    g = torch.Generator().manual_seed(0)
    body = torch.rand(1, 3, *cfg.encoder.body_crop, generator=g)
    face = torch.rand(1, 3, *cfg.encoder.face_crop, generator=g)
    src = Avatar.create(tiny_model, body_crops=body, face_crops=face).save(tmp_path / "a.avatar")
    Avatar.load(src)  # the pristine file loads
    tallies = fuzz_file(
        src, tmp_path / "cases", Avatar.load, EXPECTED, input_kind="avatar (Avatar.load)", seed=1,
        flips=24, truncations=12, header_bytes=header_end(src),
    )  # fmt: skip
    assert_clean(tallies)
    assert sum(t.refused for t in tallies) >= 12  # header flips and truncations must be caught


def test_corrupted_checkpoints_are_refused_or_load(tiny_model, tmp_path):
    model = LCAModel(tiny_model.cfg, toy_rig())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    next(model.parameters()).sum().backward()
    opt.step()
    src = save_checkpoint(tmp_path / "c.ckpt", model=model, step=3, config={"model": to_dict(model.cfg)}, optimizer=opt)

    def load(p: Path) -> None:
        m = LCAModel(tiny_model.cfg, toy_rig())
        load_checkpoint(p, model=m, optimizer=torch.optim.Adam(m.parameters(), lr=1e-3), restore_rng=False)

    load(src)
    tallies = fuzz_file(
        src, tmp_path / "cases", load, EXPECTED, input_kind="checkpoint (load_checkpoint)", seed=2,
        flips=16, truncations=8, header_bytes=header_end(src),
    )  # fmt: skip
    tallies += fuzz_file(
        src, tmp_path / "meta", read_checkpoint_meta, EXPECTED, input_kind="checkpoint (read_checkpoint_meta)",
        seed=3, flips=30, truncations=0, header_bytes=header_end(src),
    )  # fmt: skip
    trunc = Tally("checkpoint (read_checkpoint_meta)", "truncation inside the header")
    data = src.read_bytes()
    for i, n in enumerate(range(0, header_end(src), max(1, header_end(src) // 12))):
        p = tmp_path / f"meta_trunc{i}.ckpt"
        p.write_bytes(data[:n])
        run_case(trunc, p, read_checkpoint_meta, EXPECTED, what=f"header truncated at {n}")
    trunc.record()
    assert_clean(tallies + [trunc])
    assert trunc.loaded == 0


def test_corrupted_example_inputs_are_refused_or_load(tmp_path):
    g = torch.Generator().manual_seed(0)
    ex = ExampleInputs(
        "ex", torch.randint(0, 256, (2, 3, 16, 12), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (2, 3, 8, 8), generator=g, dtype=torch.uint8), torch.rand(4, generator=g), "test",
    )  # fmt: skip
    src = save_example(tmp_path / "ex.safetensors", ex)
    assert torch.equal(load_example(src).body, ex.body)
    tallies = fuzz_file(
        src, tmp_path / "cases", load_example, EXPECTED, input_kind="example inputs (load_example)", seed=4,
        flips=30, truncations=12, header_bytes=header_end(src),
    )  # fmt: skip
    assert_clean(tallies)


def test_example_with_wrong_dtype_or_shape_names_the_tensor(tmp_path):
    from core.io import save_tensors

    p = save_tensors(
        tmp_path / "bad.safetensors",
        {"body": torch.zeros(2, 3, 4, 4), "face": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "shape": torch.zeros(2)},
        {},
        kind="lca-example-inputs",
    )
    with pytest.raises(FileFormatError, match="'body'"):
        load_example(p)


def test_corrupted_checkpoints_rebuild_no_model(tmp_path):
    from core.model.rig import rig_from_body_asset
    from core.train.export import model_from_checkpoint

    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 64}})
    model = LCAModel(cfg, rig_from_body_asset())
    src = save_checkpoint(tmp_path / "m.ckpt", model=model, step=1, config={"model": to_dict(cfg)})
    model_from_checkpoint(src)
    tallies = fuzz_file(
        src, tmp_path / "cases", model_from_checkpoint, EXPECTED, input_kind="checkpoint (model_from_checkpoint)",
        seed=5, flips=12, truncations=6, header_bytes=header_end(src),
    )  # fmt: skip
    assert_clean(tallies)
