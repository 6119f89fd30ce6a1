"""Head close-ups of target frames: the frame's own camera zoomed onto the head, stored beside the frame in the
shard, loaded as the targets' close-ups; the full frames are the same with or without them, and shards without
close-ups still load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.data.body_bridge import world_body
from core.data.cameras import project
from core.data.closeups import closeup_intrinsics
from core.data.identity_spec import draw_identity_spec
from core.data.loader import LoaderConfig, ShardDataset, closeup_targets, make_example
from core.data.seeds import identity_seed, rng_for
from core.data.shards import iter_shard, iter_shard_lazy, write_shard
from core.data.synth import SynthConfig, make_studio_sample, make_wild_sample

TINY = SynthConfig(
    width=32, height=32, wild_frames=2, studio_poses=1, studio_cameras=(2, 2), studio_lights=0, detail=0.08
)
N = 24


@pytest.fixture(scope="module")
def studio():
    return make_studio_sample(0, "train", 0, replace(TINY, closeup_size=N))


def _head_centre(sample, split: str, index: int) -> np.ndarray:
    """The mean of the posed head vertices [F, 3] (regions head, face, scalp) from the sample's true body."""
    body = world_body()
    spec = draw_identity_spec(identity_seed(0, split, index))
    a = sample.arrays
    t = lambda k: torch.as_tensor(a[k], dtype=torch.float32)  # noqa: E731
    posed = body.pose(spec.phenotype, t("gt_pose"), t("gt_translation"), t("gt_expression"), t("gt_gaze"))
    head = np.isin(body.regions.numpy(), [0, 1, 2])
    return posed.vertices.float().numpy()[:, head].mean(1)


def test_closeups_show_the_head_of_each_view(studio):
    F, C = studio.rgb.shape[:2]
    assert studio.closeup_rgb.shape == (F, C, N, N, 3) and studio.closeup_mask.shape == (F, C, N, N)
    assert studio.arrays["closeup_K"].shape == (F, C, 3, 3)
    centre = _head_centre(studio, "train", 0)
    for f in range(F):
        for c in range(C):
            cover = (studio.closeup_mask[f, c] > 127).mean()
            assert 0.3 < cover < 0.95, f"the head fills {cover:.0%} of close-up {f, c}"
            uv, z = project(centre[f][None], studio.arrays["closeup_K"][f, c], studio.arrays["T_cam_world"][f, c])
            assert z[0] > 0 and np.abs(uv[0] - N / 2).max() < 0.2 * N, f"head centre at {uv[0]} in close-up {f, c}"
            # only K differs from the full frame: a zoom about the head box (scale and shift, same extrinsics)
            A = studio.arrays["closeup_K"][f, c] @ np.linalg.inv(studio.arrays["K"][f, c])
            assert np.allclose(A[2], [0, 0, 1], atol=1e-5) and abs(A[0, 0] - A[1, 1]) < 1e-3 * A[0, 0]
            assert A[0, 0] > 2, "a head close-up zooms in"


def test_closeup_intrinsics_centre_the_padded_head_box():
    K = np.array([[50.0, 0, 16], [0, 50, 16], [0, 0, 1]])
    Kc = closeup_intrinsics(np.array([10.0, 4, 14, 10]), K, 64)  # a 4 x 6 px head box centred on (12, 7)
    side = 6 * 1.6
    pixel_to_closeup = Kc @ np.linalg.inv(K)
    assert np.allclose(Kc[0, 0], 50 * 64 / side) and np.allclose(pixel_to_closeup @ [12, 7, 1], [32, 32, 1], atol=1e-4)
    with pytest.raises(ValueError, match="head_box"):
        closeup_intrinsics(np.zeros((2, 4)), np.zeros((3, 3, 3)), 64)


def test_full_frames_are_the_same_with_or_without_closeups():
    plain = make_wild_sample(0, "train", 1, TINY)
    close = make_wild_sample(0, "train", 1, replace(TINY, closeup_size=N))
    assert plain.closeup_rgb is None and "closeup_K" not in plain.arrays
    assert np.array_equal(plain.rgb, close.rgb) and np.array_equal(plain.mask, close.mask)
    assert np.array_equal(plain.arrays["est_pose"], close.arrays["est_pose"])
    assert close.closeup_rgb.shape == (2, 1, N, N, 3) and (close.closeup_mask > 127).mean() > 0.2


def test_closeups_round_trip_through_a_shard_and_load_as_targets(tmp_path, studio):
    write_shard(tmp_path / "train" / "studio-train-00000.tar", [studio])
    (back,) = iter_shard(tmp_path / "train" / "studio-train-00000.tar")
    assert np.array_equal(back.closeup_rgb, studio.closeup_rgb)
    assert np.array_equal(back.closeup_mask, studio.closeup_mask)
    (lazy,) = iter_shard_lazy(tmp_path / "train" / "studio-train-00000.tar")
    assert lazy.closeup_size == N and np.array_equal(lazy.closeup_rgb_at(0, 1), studio.closeup_rgb[0, 1])
    ds = ShardDataset(tmp_path, cfg=LoaderConfig(num_refs=1, num_targets=2, crop_size=32, face_size=16))
    assert ds.data_closeup_size() == N
    ex = make_example(lazy, rng_for("t"), LoaderConfig(num_refs=1, num_targets=2, closeup_size=N))
    assert ex["tgt_closeup_rgb"].shape == (2, 3, N, N) and ex["tgt_closeup_rgb"].dtype == torch.uint8
    assert ex["tgt_closeup_mask"].shape == (2, 1, N, N) and ex["tgt_closeup_valid"].tolist() == [1.0, 1.0]
    # another size: the images are resized and the intrinsics scaled with them (the same head point, halved)
    views = [(0, 0), (0, 1)]
    full, half = closeup_targets(lazy, views, N), closeup_targets(lazy, views, N // 2)
    assert half["tgt_closeup_rgb"].shape == (2, 3, N // 2, N // 2)
    scale = torch.diag(torch.tensor([0.5, 0.5, 1.0]))
    torch.testing.assert_close(half["tgt_closeup_K"], scale @ full["tgt_closeup_K"])


def test_samples_without_closeups_give_blank_invalid_ones(shards, studio):
    """Older shards (the session's tiny set has none) and wild clips under "pipeline" supervision (a real video has
    no close-up, and the tracker's body misses the head at close-up scale) carry zeros marked invalid."""
    (old,) = iter_shard_lazy(sorted(shards.rglob("studio-*.tar"))[0])
    assert old.closeup_size == 0
    cfg = LoaderConfig(num_refs=1, num_targets=2, crop_size=32, face_size=16, closeup_size=N)
    ex = make_example(old, rng_for("t"), cfg)
    assert ex["tgt_closeup_valid"].tolist() == [0.0, 0.0] and int(ex["tgt_closeup_rgb"].max()) == 0
    assert ShardDataset(shards, cfg=cfg).data_closeup_size() == 0
    wild = make_wild_sample(0, "train", 1, replace(TINY, closeup_size=N))
    assert make_example(wild, rng_for("t"), cfg)["tgt_closeup_valid"].tolist() == [0.0, 0.0]
    exact = replace(cfg, wild_supervision="exact")
    assert make_example(wild, rng_for("t"), exact)["tgt_closeup_valid"].tolist() == [1.0, 1.0]
    assert "tgt_closeup_rgb" not in make_example(studio, rng_for("t"), replace(cfg, closeup_size=0))
