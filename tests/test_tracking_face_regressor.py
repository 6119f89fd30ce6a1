"""The learned expression reading (an experiment): ridge fit, its file (round trip, clear errors)."""

from __future__ import annotations

import numpy as np
import pytest

from core.eval.face_regressor_fit import fit, random_expression
from core.tracking.face import READINGS, FaceRetargeter
from core.tracking.face_regressor import FaceRegressor, load_face_regressor


def test_ridge_fit_recovers_a_linear_map_and_keeps_the_bias_free():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(400, 6)), np.ones((400, 1))], 1)
    W = rng.normal(size=(7, 3))
    W[-1] = 5.0  # a large bias: unpenalised, so it comes back exactly
    Y = X @ W + rng.normal(scale=1e-3, size=(400, 3))
    np.testing.assert_allclose(fit(X, Y, ridge=1e-6), W, atol=1e-2)
    shrunk = fit(X, Y, ridge=10.0)
    assert np.abs(shrunk[:-1]).sum() < 0.5 * np.abs(W[:-1]).sum() and np.allclose(shrunk[-1], 5.0, atol=0.5)


def test_regressor_file_round_trip_and_clear_errors(tmp_path):
    names, channels = ("a", "b"), ("jawOpen", "mouthPucker")
    W = np.zeros((len(names) + 4, 2))
    W[0, 0], W[-1, 1] = 2.0, 0.25  # jawOpen = 2 * a; pucker = 0.25 always
    reg = FaceRegressor(names, channels, W, {"samples": 3})
    path = reg.save(tmp_path / "reg.npz")
    back = load_face_regressor(path)
    out = back({"a": 0.3, "b": 9.0}, {"a": 0.0, "b": 0.0}, np.eye(3))
    assert out == pytest.approx({"jawOpen": 0.6, "mouthPucker": 0.25})
    assert back({"a": 5.0, "b": 0.0}, {"a": 0.0, "b": 0.0}, np.eye(3))["jawOpen"] == 1.0  # clamped
    assert back.info == {"samples": 3}
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="refit it with"):
        load_face_regressor(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="python -m core.eval.face_regressor_fit"):
        load_face_regressor(tmp_path / "missing.npz")
    FaceRegressor(names, channels, np.zeros((3, 2)), {}).save(tmp_path / "wrong.npz")
    with pytest.raises(ValueError, match="do not match"):
        load_face_regressor(tmp_path / "wrong.npz")


def test_random_expressions_are_sparse_known_channels():
    from core.tracking.face import EXPRESSION_CHANNELS

    rng = np.random.default_rng(1)
    for _ in range(200):
        e = random_expression(rng, EXPRESSION_CHANNELS)
        assert 1 <= len(e) <= 6 and set(e) <= set(EXPRESSION_CHANNELS)
        assert all(0.2 <= v <= 1.0 for v in e.values()) and not {"jawLeft", "jawRight"} <= set(e)


def test_unknown_reading_is_refused():
    assert READINGS == ("geometric", "learned")
    with pytest.raises(ValueError, match="choose one of"):
        FaceRetargeter(reading="neural")


def test_the_learned_reading_loads_its_file_or_says_how_to_fit_one(tmp_path):
    names = tuple(FaceRetargeter().neutral)
    path = FaceRegressor(names, ("jawOpen",), np.zeros((len(names) + 4, 1)), {}).save(tmp_path / "r.npz")
    assert FaceRetargeter(reading="learned", regressor=path)._regressor.measurements == names
    with pytest.raises(FileNotFoundError, match="fit it with"):
        FaceRetargeter(reading="learned", regressor=tmp_path / "none.npz")
