"""3DGS .ply export/import: exact round trip (SH order included), atomic writes, clear errors."""

import numpy as np
import plyfile
import pytest
import torch

from core.raster import Gaussians, load_ply, save_ply


def _scene(n=20, k=16, parts=True) -> Gaussians:
    gen = torch.Generator().manual_seed(k)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen),
        quats=torch.randn(n, 4, generator=gen),
        log_scales=torch.randn(n, 3, generator=gen) - 4,
        opacity_logits=torch.randn(n, generator=gen),
        sh=torch.randn(n, k, 3, generator=gen),
        parts=torch.randint(0, 7, (n,), generator=gen) if parts else None,
    )


@pytest.mark.parametrize("k", [1, 4, 9, 16])
def test_ply_round_trip_is_exact_for_every_sh_degree(tmp_path, k):
    g = _scene(k=k)
    back = load_ply(save_ply(tmp_path / "a.ply", g))
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh", "parts"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), rtol=0, atol=0, msg=name)


def test_ply_writes_f_rest_channel_major_like_3dgs(tmp_path):
    g = _scene(n=3, k=16, parts=False)
    path = save_ply(tmp_path / "b.ply", g)
    v = plyfile.PlyData.read(str(path))["vertex"]
    names = [p.name for p in v.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    # 3DGS: features_rest [G, 15, 3] -> transpose -> [G, 3, 15] -> flatten, so f_rest_15 is green's first band
    assert v["f_rest_0"][1] == g.sh[1, 1, 0].item()
    assert v["f_rest_15"][1] == g.sh[1, 1, 1].item()
    assert v["f_rest_44"][2] == g.sh[2, 15, 2].item()
    assert v["rot_0"][0] == g.quats[0, 0].item()  # w first


def test_save_ply_refuses_nan_and_leaves_no_file(tmp_path):
    g = _scene()
    g.means[3, 1] = float("nan")
    with pytest.raises(ValueError, match="means has 1 NaN"):
        save_ply(tmp_path / "c.ply", g)
    assert list(tmp_path.iterdir()) == []


def test_save_ply_replaces_an_existing_file_atomically(tmp_path):
    path = tmp_path / "d.ply"
    save_ply(path, _scene(n=5))
    save_ply(path, _scene(n=7))
    assert load_ply(path).num == 7
    assert [p.name for p in tmp_path.iterdir()] == ["d.ply"]


def _write_vertex(path, **cols):
    rows = np.zeros(len(next(iter(cols.values()))), dtype=[(k, "f4") for k in cols])
    for k, v in cols.items():
        rows[k] = v
    plyfile.PlyData([plyfile.PlyElement.describe(rows, "vertex")]).write(str(path))


def test_load_ply_names_missing_properties(tmp_path):
    path = tmp_path / "mesh.ply"
    _write_vertex(path, x=[0.0], y=[0.0], z=[0.0])
    with pytest.raises(ValueError, match="lacks the 3DGS properties.*f_dc_0"):
        load_ply(path)


def test_load_ply_rejects_nan_odd_sh_counts_and_garbage(tmp_path):
    g = _scene(n=4, k=4, parts=False)
    path = save_ply(tmp_path / "e.ply", g)
    ply = plyfile.PlyData.read(str(path))
    data = ply["vertex"].data.copy()
    data["opacity"][2] = np.nan
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(tmp_path / "nan.ply"))
    with pytest.raises(ValueError, match="NaN/inf in 'opacity' for 1 Gaussians"):
        load_ply(tmp_path / "nan.ply")

    base = {n: [0.0] for n in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity")}
    base |= {f"scale_{i}": [0.0] for i in range(3)} | {f"rot_{i}": [1.0] for i in range(4)}
    _write_vertex(tmp_path / "odd.ply", **base, **{f"f_rest_{i}": [0.0] for i in range(7)})
    with pytest.raises(ValueError, match="7 f_rest_"):
        load_ply(tmp_path / "odd.ply")

    (tmp_path / "junk.ply").write_bytes(b"not a ply at all\n")
    with pytest.raises(ValueError, match="not a readable .ply"):
        load_ply(tmp_path / "junk.ply")
    with pytest.raises(FileNotFoundError):
        load_ply(tmp_path / "missing.ply")


def test_load_ply_rejects_absurd_counts(tmp_path):
    path = tmp_path / "huge.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 900000000\nproperty float x\nend_header\n")
    with pytest.raises(ValueError, match="(claims 900000000 Gaussians|not a readable)"):
        load_ply(path)
