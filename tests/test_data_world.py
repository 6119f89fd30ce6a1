"""Ground-truth identities on the body, their posing and lighting, and tiny rendered samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.data.body_bridge import world_body  # noqa: E402
from core.data.identity import build_identity  # noqa: E402
from core.data.identity_spec import draw_identity_spec  # noqa: E402
from core.data.render import matrix_to_quat, pose_identity  # noqa: E402
from core.data.synth import SynthConfig, make_studio_sample, make_wild_sample  # noqa: E402
from core.raster.lighting import Lighting, shade, uniform_lighting  # noqa: E402
from core.raster.types import PART_NAMES  # noqa: E402

TINY = SynthConfig(
    width=24, height=24, wild_frames=2, studio_poses=1, studio_cameras=(8, 8), studio_lights=1, detail=0.04
)


def _spec_with(seed: int, **changes):
    return dataclasses.replace(draw_identity_spec(seed), **changes)


def _still(body, F=1):
    return (
        torch.zeros(F, body.num_bones, 3),
        torch.zeros(F, 3),
        torch.zeros(F, len(body.expression_names)),
        torch.zeros(F, 2),
    )


def test_data_body_stands_on_the_floor_facing_plus_z():
    body = world_body()
    rest = body.rest({})
    posed = body.pose({}, *_still(body))
    v = posed.vertices[0]
    assert abs(float(v[:, 1].min())) < 0.03
    eyes = rest.joints[body.bone_index["eye.L"]]
    head = rest.joints[body.bone_index["head"]]
    assert eyes[2] > head[2] and 1.3 < float(v[:, 1].max()) < 2.1


def test_data_identity_has_labelled_layers_and_is_reproducible():
    body = world_body()
    spec = _spec_with(3, hair_style="long", accessories=("glasses",))
    a, b = build_identity(spec, body, detail=0.05), build_identity(spec, body, detail=0.05)
    torch.testing.assert_close(a.offset, b.offset)
    torch.testing.assert_close(a.albedo, b.albedo)
    present = {PART_NAMES[i] for i in a.parts.unique().tolist()}
    assert {"skin", "face", "hair", "upper_garment", "shoes", "accessories"} <= present
    torch.testing.assert_close(a.weights.sum(-1), torch.ones(a.num))


def test_data_skirt_blends_pelvis_and_both_legs_instead_of_following_one():
    body = world_body()
    spec = draw_identity_spec(1)
    spec = dataclasses.replace(
        spec, bottom=dataclasses.replace(spec.top, kind="skirt"), top=dataclasses.replace(spec.top, kind="tight_top")
    )
    idn = build_identity(spec, body, detail=0.05)
    skirt = (idn.parts == PART_NAMES.index("lower_garment")) & (idn.sway > 0)
    assert skirt.sum() > 50
    legs = idn.weights[skirt][:, [body.bone_index["upperleg01.L"], body.bone_index["upperleg01.R"]]]
    assert float(legs.sum(-1).max()) <= 0.451
    rot, trans, expr, gaze = _still(body, 2)
    rot[1, body.bone_index["upperleg01.L"], 0] = -0.9  # kick the left leg forward
    p = pose_identity(idn, body, rot, trans, expr, gaze)
    hem = skirt & (idn.sway > 0.06)
    moved_skirt = (p.means[1, hem] - p.means[0, hem]).norm(dim=-1).max()
    knee = body.bone_index["lowerleg01.L"]
    moved_knee = (p.body.joints[1, knee] - p.body.joints[0, knee]).norm()
    assert 0.01 < float(moved_skirt) < 0.8 * float(moved_knee)


def test_data_expression_moves_the_face_gaussians_only():
    body = world_body()
    idn = build_identity(_spec_with(4, hair_style="bald", accessories=(), beard=False), body, detail=0.05)
    rot, trans, expr, gaze = _still(body, 2)
    expr[1, body.expression_names.index("jawOpen")] = 1.0
    p = pose_identity(idn, body, rot, trans, expr, gaze)
    d = (p.means[1] - p.means[0]).norm(dim=-1)
    face = idn.parts == PART_NAMES.index("face")
    shoes = idn.parts == PART_NAMES.index("shoes")
    assert float(d[face].max()) > 0.01 and float(d[shoes].max()) < 1e-4


def test_data_shading_under_uniform_light_returns_albedo_and_key_light_faces_its_side():
    albedo = torch.tensor([[0.2, 0.5, 0.8], [0.2, 0.5, 0.8]])
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    torch.testing.assert_close(shade(albedo, n, uniform_lighting(1.0)), albedo)
    key = Lighting(np.zeros((9, 3)), np.array([0.0, 0.0, 1.0]), np.ones(3) * 0.5)
    lit = shade(albedo, n, key)
    assert float(lit[0].sum()) > 0 and float(lit[1].sum()) == 0


def test_data_matrix_to_quat_round_trips_rotations():
    from core.data.body_bridge import rotvec_to_matrix
    from core.raster.project import quat_to_rotmat

    R = rotvec_to_matrix(torch.tensor([[0.3, -1.2, 2.0], [3.0, 0.1, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    q = matrix_to_quat(R)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(q), R)  # back through the rasteriser's (w, x, y, z) convention


def test_data_wild_sample_has_person_parts_and_noisy_estimates():
    s = make_wild_sample(0, "train", 0, TINY)
    assert s.rgb.shape == (2, 1, 24, 24, 3)
    assert (s.mask > 127).mean() > 0.01
    assert set(np.unique(s.parts)) - {255}
    x0, y0, x1, y1 = s.arrays["head_box"][0, 0]
    assert x1 > x0 and y1 > y0
    assert not np.allclose(s.arrays["gt_pose"], s.arrays["est_pose"])
    again = make_wild_sample(0, "train", 0, TINY)
    np.testing.assert_array_equal(s.rgb, again.rgb)


@pytest.mark.slow  # 16 views through the CPU reference rasteriser
def test_data_studio_sample_is_multiview_with_clean_background_and_sweep():
    s = make_studio_sample(0, "studio-test", 0, TINY)
    assert s.rgb.shape[:2] == (2, 8)  # one pose + one lighting-sweep frame, 8 cameras
    centres = np.stack([np.linalg.inv(T)[:3, 3] for T in s.arrays["T_cam_world"][0]])
    assert np.ptp(np.arctan2(centres[:, 0], centres[:, 2])) > 3  # cameras all around
    bg = s.rgb[0][s.mask[0] == 0]
    assert np.abs(bg.astype(int) - 128).max() <= 1
    np.testing.assert_array_equal(s.arrays["gt_pose"], s.arrays["est_pose"])
    assert not np.array_equal(s.rgb[0], s.rgb[1])  # relit


@pytest.mark.slow  # renders 8 references and 12 targets twice
def test_data_benchmark_regenerates_bit_identically_with_refs_and_novel_targets(tmp_path):
    from core.data.benchmarks import ROLE_NOVEL_POSE, ROLE_NOVEL_VIEW, ROLE_REF, write_benchmark

    cfg = TINY
    a = write_benchmark(tmp_path / "a", "wild-test", 1, cfg)[0]
    b = write_benchmark(tmp_path / "b", "wild-test", 1, cfg)[0]
    assert a.read_bytes() == b.read_bytes()
    from core.data.benchmarks import load_benchmark

    s = load_benchmark(a)[0]
    roles = s.arrays["role"]
    assert (
        (roles == ROLE_REF).sum() == 8
        and (roles == ROLE_NOVEL_VIEW).sum() == 4
        and (roles == ROLE_NOVEL_POSE).sum() == 8
    )
    assert len(s.arrays["gt_pose"]) == len(roles) == s.num_frames
