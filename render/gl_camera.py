"""The OpenCV -> OpenGL boundary: view and projection matrices and per-frame camera uniforms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.raster.types import Camera

# OpenCV camera axes (x right, y down, z forward) -> OpenGL eye axes (x right, y up, z backward).
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class CameraParams:
    """One camera as plain float64 numpy arrays, the form the shaders need."""

    T_cam_world: np.ndarray  # [4, 4] world -> OpenCV camera
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def position(self) -> np.ndarray:  # [3] camera centre in world coordinates
        R, t = self.T_cam_world[:3, :3], self.T_cam_world[:3, 3]
        return -R.T @ t


def camera_params(camera: Camera) -> CameraParams:
    """Unpack a single (unbatched or batch-of-one) `Camera` into numpy form."""
    K = camera.K.detach().cpu().double().numpy()
    T = camera.T_cam_world.detach().cpu().double().numpy()
    if K.shape != (3, 3):
        if K.shape[:-2] and int(np.prod(K.shape[:-2])) == 1:
            K, T = K.reshape(3, 3), T.reshape(4, 4)
        else:
            raise ValueError(
                f"the renderer draws one camera at a time; got K of shape {K.shape}, index the batch first"
            )
    return CameraParams(
        T, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(camera.width), int(camera.height)
    )


def gl_projection(params: CameraParams, near: float, far: float) -> np.ndarray:
    """[4, 4] OpenGL projection (eye space -> clip) that reproduces the pinhole K, pixel centres at +0.5.

    A point that K maps to pixel coordinates (u, v) lands at window coordinates (u, height - v).
    """
    W, H = params.width, params.height
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * params.fx / W
    P[0, 2] = 1.0 - 2.0 * params.cx / W
    P[1, 1] = 2.0 * params.fy / H
    P[1, 2] = 2.0 * params.cy / H - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def gl_view_projection(params: CameraParams, near: float = 0.01, far: float = 100.0) -> np.ndarray:
    """[4, 4] world -> clip matrix (row-major; upload its transpose as a GLSL mat4)."""
    return gl_projection(params, near, far) @ CV_TO_GL @ params.T_cam_world


def pixel_to_window(uv: np.ndarray, height: int) -> np.ndarray:
    """OpenCV pixel coordinates [..., 2] -> OpenGL window coordinates [..., 2] (origin bottom-left)."""
    out = np.array(uv, dtype=np.float64, copy=True)
    out[..., 1] = height - out[..., 1]
    return out


def mat4_uniform(m: np.ndarray) -> bytes:
    """A row-major numpy [4, 4] as the column-major bytes a GLSL mat4 uniform expects."""
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()
