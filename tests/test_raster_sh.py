"""Spherical harmonics: the degree 1-3 bases match real SH built from scipy's complex ones (3DGS signs)."""

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from core.raster.sh import eval_sh, sh_basis
from core.raster.types import SH_C0


def _real_sh_scipy(degree: int, dirs: np.ndarray) -> np.ndarray:  # [N, 3] unit -> [N, (degree+1)^2]
    """Real SH with the Condon-Shortley phase, ordered m = -l..l: the basis 3DGS and gsplat use."""
    x, y, z = dirs.T
    theta = np.arccos(np.clip(z, -1, 1))  # polar
    phi = np.arctan2(y, x)  # azimuth
    cols = []
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            if m == 0:
                cols.append(sph_harm_y(l, 0, theta, phi).real)
            elif m > 0:
                cols.append(math.sqrt(2) * sph_harm_y(l, m, theta, phi).real)
            else:
                cols.append(math.sqrt(2) * sph_harm_y(l, -m, theta, phi).imag)
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_sh_basis_matches_direct_formula(degree):
    rng = np.random.default_rng(degree)
    d = rng.normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    ours = sh_basis(degree, torch.from_numpy(d)).numpy()
    np.testing.assert_allclose(ours, _real_sh_scipy(degree, d), atol=1e-12)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_eval_sh_sums_basis_times_coefficients_plus_half(degree):
    g, k = 50, (degree + 1) ** 2
    torch.manual_seed(degree)
    sh = torch.randn(g, k, 3, dtype=torch.float64) * 0.2
    dirs = torch.randn(g, 3, dtype=torch.float64) * 3.0  # un-normalised on purpose
    unit = (dirs / dirs.norm(dim=-1, keepdim=True)).numpy()
    basis = torch.from_numpy(_real_sh_scipy(degree, unit))  # [G, K]
    want = ((basis[..., None] * sh).sum(1) + 0.5).clamp_min(0)
    torch.testing.assert_close(eval_sh(sh, dirs), want, atol=1e-10, rtol=0)


def test_eval_sh_degree0_is_view_independent_and_clamped():
    sh = torch.tensor([[[1.0, -0.5, -10.0]]])  # [G=1, K=1, 3]
    a = eval_sh(sh, torch.tensor([[0.0, 0.0, 1.0]]))
    b = eval_sh(sh, torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0, :2], 0.5 + SH_C0 * sh[0, 0, :2])
    assert a[0, 2] == 0.0


def test_eval_sh_rejects_bad_shapes():
    with pytest.raises(ValueError, match="SH coefficient count"):
        eval_sh(torch.zeros(4, 5, 3), torch.ones(4, 3))
    with pytest.raises(ValueError, match="dirs"):
        eval_sh(torch.zeros(4, 4, 3), torch.ones(3, 3))
