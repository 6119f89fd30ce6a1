"""The baked body model: frame, names, part labels, gaze, expressions, parameter checks (no anny needed)."""

import pytest
import torch

from core.body.asset import load_body_asset
from core.body.model import BodyModel
from core.body.parts import BODY_PART_NAMES


@pytest.fixture(scope="module")
def body():
    return BodyModel()


@pytest.fixture(scope="module")
def neutral(body):
    return body(body.neutral_params(1))


def test_neutral_body_stands_on_the_ground_facing_plus_z(body, neutral):
    v = neutral.vertices[0]
    assert abs(float(v[:, 1].min())) < 1e-4
    assert 1.5 < float(v[:, 1].max()) < 1.9
    face = v[neutral.part_labels == BODY_PART_NAMES.index("face")]
    hair = v[neutral.part_labels == BODY_PART_NAMES.index("hair")]
    assert float(face[:, 2].mean()) > float(hair[:, 2].mean()) + 0.05  # the face is on the +z side
    names = body.bone_names
    assert neutral.joints[0, names.index("wrist.L"), 0] > 0.2  # the body's left is +x
    assert neutral.joints[0, names.index("head"), 1] > 1.3


def test_expression_names_are_the_52_arkit_blendshapes(body):
    names = body.expression_names
    assert len(names) == 52 and len(set(names)) == 52
    for n in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp", "tongueOut", "cheekPuff"):
        assert n in names


def test_part_labels_cover_every_region_with_plausible_counts(body):
    counts = torch.bincount(body.part_labels, minlength=len(BODY_PART_NAMES))
    assert body.part_labels.shape == (body.skinning_weights.shape[0],)
    share = counts.float() / counts.sum()
    for name in BODY_PART_NAMES:
        assert share[BODY_PART_NAMES.index(name)] > 0.02, name
    assert share[BODY_PART_NAMES.index("face")] < 0.35
    assert share[BODY_PART_NAMES.index("hair")] < 0.15


def test_hair_region_is_above_the_face_and_feet_below_the_legs(neutral):
    v, lab = neutral.vertices[0], neutral.part_labels

    def mean_y(name):
        return float(v[lab == BODY_PART_NAMES.index(name), 1].mean())

    assert mean_y("hair") > mean_y("face") > mean_y("torso") > mean_y("legs") > mean_y("feet")


def test_gaze_turns_the_eyes_and_nothing_else(body, neutral):
    p = body.neutral_params(1)
    out = body(p.with_(gaze=torch.tensor([[0.3, 0.0]])))
    eye_bones = list(body.eye_bones)
    on_eyes = body.skinning_weights[:, eye_bones].sum(1) > 0.5
    moved = (out.vertices[0] - neutral.vertices[0]).norm(dim=-1)
    assert on_eyes.sum() > 50
    assert float(moved[on_eyes].max()) > 1e-3
    assert float(moved[body.skinning_weights[:, eye_bones].sum(1) == 0].max()) < 1e-6
    # Yaw > 0 looks toward the body's left (+x): the front of the eyeballs moves to +x.
    front = on_eyes & (neutral.vertices[0, :, 2] > neutral.joints[0, eye_bones[0], 2])
    assert float((out.vertices[0, front, 0] - neutral.vertices[0, front, 0]).mean()) > 0


def test_jaw_open_expression_lowers_the_chin_and_named_vectors_work(body, neutral):
    expr = body.expression_vector({"jawOpen": 1.0})
    out = body(body.neutral_params(1).with_(expression=expr))
    delta = out.vertices[0] - neutral.vertices[0]
    assert float(delta[:, 1].min()) < -0.01
    with pytest.raises(ValueError, match="unknown expression names"):
        body.expression_vector({"smile": 1.0})


def test_height_phenotype_makes_a_taller_body(body):
    p = body.neutral_params(2)
    shape = p.shape.clone()
    shape[0, body.phenotype_names.index("height")] = 0.0
    shape[1, body.phenotype_names.index("height")] = 1.0
    v = body(p.with_(shape=shape)).vertices
    heights = v[..., 1].max(1).values - v[..., 1].min(1).values
    assert float(heights[1] - heights[0]) > 0.1


def test_axis_angle_and_matrix_rotations_give_the_same_body(body):
    from core.body.lbs import axis_angle_to_matrix

    p = body.neutral_params(2).with_(rotations=torch.randn(2, body.num_bones, 3) * 0.2)
    a = body(p)
    b = body(p.with_(rotations=axis_angle_to_matrix(p.rotations)))
    torch.testing.assert_close(a.vertices, b.vertices)


def test_hand_bone_subsets_hold_each_sides_wrist_and_fingers(body):
    hands = body.hand_bones
    names = body.bone_names
    assert len(hands["left"]) == len(hands["right"]) == 20
    assert all(names[i].endswith(".L") for i in hands["left"])
    assert "wrist.R" in [names[i] for i in hands["right"]]
    assert set(body.body_bones).isdisjoint(hands["left"])


def test_translation_moves_everything_rigidly(body, neutral):
    out = body(body.neutral_params(1).with_(translation=torch.tensor([[0.5, 0.0, -1.0]])))
    torch.testing.assert_close(out.vertices - neutral.vertices, torch.tensor([0.5, 0.0, -1.0]).expand_as(out.vertices))


def test_wrong_parameter_shapes_raise_messages_naming_the_field(body):
    p = body.neutral_params(2)
    with pytest.raises(ValueError, match=r"BodyParams.expression: expected shape \(2, 52\), got \(2, 10\)"):
        body(p.with_(expression=torch.zeros(2, 10)))
    with pytest.raises(ValueError, match="BodyParams.rotations"):
        body(p.with_(rotations=torch.zeros(2, 55, 3)))
    with pytest.raises(ValueError, match="unknown body backend"):
        BodyModel("flame")


def test_missing_asset_error_says_how_to_rebuild_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LCA_BODY_ASSET", str(tmp_path / "nope.safetensors"))
    with pytest.raises(FileNotFoundError, match="python -m core.body.bake"):
        load_body_asset()


def test_asset_metadata_names_bones_parts_and_phenotypes():
    a = load_body_asset()
    assert len(a.bone_names) == len(a.parents) == a.rest_poses.shape[0] == 104
    assert a.part_names == list(BODY_PART_NAMES)
    assert a.phenotype_names == ["gender", "age", "muscle", "weight", "height", "proportions"]
    assert a.uvs.shape[1] == 2 and a.face_uvs.shape == a.faces.shape
    assert float(a.uvs.min()) >= 0.0 and float(a.uvs.max()) <= 1.0


def test_fast_phenotype_weights_match_the_interpolation_reference():
    from core.body.phenotype import column_table, phenotype_target_weights, phenotype_target_weights_fast

    a = load_body_asset()
    spec = a.metadata["phenotype"]
    params = torch.rand(64, len(spec["names"]), dtype=torch.float64) * 1.4 - 0.2  # includes clamped values
    params[0] = 0.0
    params[1] = 1.0
    params[2] = 0.5
    slow = phenotype_target_weights(params, spec, a.pheno_mask)
    fast = phenotype_target_weights_fast(params, column_table(spec, torch.float64), a.pheno_mask)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)
    assert float(slow.sum(1).min()) > 0.1  # non-trivial weights


def test_rest_bones_of_a_batch_take_the_stored_default_only_where_the_shape_is_default():
    """The default phenotype's bones are picked on the device per identity (no wait for it): a batch mixing the
    default and another shape gives the stored bones for the first and the fitted ones for the second."""
    from core.model.rig import rig_from_body_asset

    rig = rig_from_body_asset()
    other = torch.full_like(rig.default_shape, 0.8)
    _, bones = rig.rest(torch.stack([rig.default_shape, other]), 2)
    assert torch.equal(bones[0], rig.phenotype.rest_poses)
    _, alone = rig.rest(other[None], 1)
    torch.testing.assert_close(bones[1], alone[0])
    assert (bones[1] - bones[0]).abs().max() > 1e-3  # another shape moves the bones
