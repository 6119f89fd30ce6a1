"""The SMPL-X backend: a clear error without the files, and our LBS against smplx's on a tiny fake model."""

import numpy as np
import pytest
import torch

from core.body.model import BodyModel

SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
SMPLX_PARENTS += [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
SMPLX_PARENTS += [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]


def write_fake_smplx(folder, V=40, seed=0):
    """A tiny random model file in the layout smplx.SMPLX reads (SMPLX_NEUTRAL.npz)."""
    rng = np.random.default_rng(seed)
    J = 55
    weights = rng.random((V, J)) ** 4
    regressor = rng.random((J, V))
    parents = np.array(SMPLX_PARENTS, dtype=np.int64)
    parents[0] = 4294967295  # how the released files store the root
    data = dict(
        v_template=rng.normal(size=(V, 3)) * 0.3,
        f=rng.integers(0, V, size=(30, 3)).astype(np.int64),
        J_regressor=regressor / regressor.sum(1, keepdims=True),
        kintree_table=np.stack([parents, np.arange(J)]),
        weights=weights / weights.sum(1, keepdims=True),
        posedirs=rng.normal(size=(V, 3, (J - 1) * 9)) * 0.01,
        shapedirs=rng.normal(size=(V, 3, 400)) * 0.01,
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
        lmk_faces_idx=np.zeros(51, dtype=np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3),
        dynamic_lmk_faces_idx=np.zeros((79, 17), dtype=np.int64),
        dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3),
    )
    np.savez(folder / "SMPLX_NEUTRAL.npz", **data)
    return folder


def test_missing_smplx_files_raise_an_error_naming_the_path_and_files(tmp_path, monkeypatch):
    monkeypatch.delenv("LCA_SMPLX_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LCA_SMPLX_DIR"):
        BodyModel("smplx")
    with pytest.raises(FileNotFoundError, match=r"SMPLX_NEUTRAL\.npz.*" + str(tmp_path / "empty")):
        BodyModel("smplx", smplx_path=tmp_path / "empty")


def test_smplx_backend_matches_smplx_lbs_on_a_fake_model(tmp_path, monkeypatch):
    from smplx.lbs import lbs as smplx_lbs

    monkeypatch.setenv("LCA_SMPLX_DIR", str(write_fake_smplx(tmp_path)))
    body = BodyModel("smplx", dtype=torch.float64, num_betas=10, num_expressions=10)
    assert body.num_bones == 55 and len(body.phenotype_names) == 10 and len(body.expression_names) == 10
    assert len(body.hand_bones["left"]) == 16 and body.eye_bones == (23, 24)
    g = torch.Generator().manual_seed(0)
    p = body.neutral_params(2).with_(
        shape=torch.randn(2, 10, generator=g, dtype=torch.float64),
        expression=torch.randn(2, 10, generator=g, dtype=torch.float64),
        rotations=torch.randn(2, 55, 3, generator=g, dtype=torch.float64) * 0.3,
        translation=torch.randn(2, 3, generator=g, dtype=torch.float64),
    )
    out = body(p)
    impl = body.impl
    verts, joints = smplx_lbs(
        torch.cat([p.shape, p.expression], -1), p.rotations.reshape(2, -1), impl.template_vertices,
        impl.shapedirs, impl.posedirs, impl.J_regressor, torch.tensor([0, *SMPLX_PARENTS[1:]]), impl.weights,
    )  # fmt: skip
    torch.testing.assert_close(
        out.vertices, verts + p.translation[:, None], atol=1e-6, rtol=0
    )  # smplx adds 1e-8 inside its Rodrigues
    torch.testing.assert_close(
        out.joints, joints + p.translation[:, None], atol=1e-6, rtol=0
    )  # smplx adds 1e-8 inside its Rodrigues
    # Gaze goes to the SMPL-X eye joints.
    gazed = body(p.with_(gaze=torch.tensor([[0.3, 0.1], [0.0, 0.0]], dtype=torch.float64)))
    assert not torch.allclose(gazed.vertices[0], out.vertices[0])
    torch.testing.assert_close(gazed.vertices[1], out.vertices[1])
