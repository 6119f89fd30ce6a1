"""Overlays drawn over the splats: skeleton, mesh wireframe, ground grid, axes and Gaussian centres."""

from __future__ import annotations

import moderngl
import numpy as np

from core.raster.types import Camera
from render import packing
from render.gl_camera import camera_params, gl_view_projection, mat4_uniform

_LINE_VS = """
#version 330 core
uniform mat4 u_mvp;
in vec3 in_pos;
in vec3 in_color;
out vec3 v_color;
void main() { gl_Position = u_mvp * vec4(in_pos, 1.0); v_color = in_color; }
"""
_LINE_FS = """
#version 330 core
in vec3 v_color;
out vec4 out_color;
void main() { out_color = vec4(v_color, 1.0); }
"""
_CENTRE_VS = """
#version 330 core
uniform mat4 u_mvp;
uniform sampler2D u_mean;  // texel id: (x, y, z, opacity)
uniform int u_tex_width;
uniform float u_point_size;
void main() {
    int id = gl_VertexID;
    vec3 p = texelFetch(u_mean, ivec2(id % u_tex_width, id / u_tex_width), 0).xyz;
    gl_Position = u_mvp * vec4(p, 1.0);
    gl_PointSize = u_point_size;
}
"""
_CENTRE_FS = """
#version 330 core
uniform vec3 u_color;
out vec4 out_color;
void main() { out_color = vec4(u_color, 1.0); }
"""


def skeleton_segments(
    joints: np.ndarray,  # [J, 3] world positions
    parents: np.ndarray,  # [J] parent index, negative for roots
) -> np.ndarray:  # [S, 2, 3] one segment per joint with a parent
    joints = np.asarray(joints, dtype=np.float32)
    parents = np.asarray(parents).astype(np.int64)
    if joints.ndim != 2 or joints.shape[1] != 3 or parents.shape != (joints.shape[0],):
        raise ValueError(f"skeleton: expected joints [J, 3] and parents [J], got {joints.shape} and {parents.shape}")
    child = np.nonzero(parents >= 0)[0]
    return np.stack([joints[parents[child]], joints[child]], axis=1)


def wireframe_segments(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3] triangles or [F, 4] quads (vertex indices)
) -> np.ndarray:  # [S, 2, 3] each mesh edge once
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] < 3:
        raise ValueError(f"wireframe: expected faces [F, 3] or [F, 4], got {faces.shape}")
    edges = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    return np.asarray(vertices, dtype=np.float32)[edges]


def grid_segments(half_size: float = 2.0, step: float = 0.25) -> np.ndarray:  # [S, 2, 3] lines on y = 0
    ticks = np.arange(-half_size, half_size + 1e-6, step, dtype=np.float32)
    lo, hi = np.full_like(ticks, -half_size), np.full_like(ticks, half_size)
    zeros = np.zeros_like(ticks)
    along_x = np.stack([np.stack([lo, zeros, ticks], -1), np.stack([hi, zeros, ticks], -1)], axis=1)
    along_z = np.stack([np.stack([ticks, zeros, lo], -1), np.stack([ticks, zeros, hi], -1)], axis=1)
    return np.concatenate([along_x, along_z])


def axes_segments(length: float = 0.3) -> tuple[np.ndarray, np.ndarray]:  # [3, 2, 3] segments, [3, 3] colours
    seg = np.zeros((3, 2, 3), dtype=np.float32)
    for i in range(3):
        seg[i, 1, i] = length
    return seg, np.eye(3, dtype=np.float32)


class OverlayRenderer:
    """Draws line sets and Gaussian centres into the current framebuffer, depth-tested among themselves."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self._lines = ctx.program(vertex_shader=_LINE_VS, fragment_shader=_LINE_FS)
        self._centres = ctx.program(vertex_shader=_CENTRE_VS, fragment_shader=_CENTRE_FS)
        self._empty_vao = ctx.vertex_array(self._centres, [])

    def draw_lines(
        self,
        camera: Camera,
        segments: np.ndarray,  # [S, 2, 3] world positions
        color: tuple[float, float, float] | np.ndarray = (1.0, 1.0, 1.0),  # rgb, or [S, 3] per segment
    ) -> None:
        segments = np.asarray(segments, dtype=np.float32).reshape(-1, 2, 3)
        if len(segments) == 0:
            return
        colors = np.broadcast_to(np.asarray(color, dtype=np.float32).reshape(-1, 1, 3), segments.shape)
        data = np.concatenate([segments, colors], axis=-1).astype(np.float32)  # [S, 2, 6]
        vbo = self.ctx.buffer(data.tobytes())
        vao = self.ctx.vertex_array(self._lines, [(vbo, "3f 3f", "in_pos", "in_color")])
        self._lines["u_mvp"].write(mat4_uniform(gl_view_projection(camera_params(camera))))
        self.ctx.enable(moderngl.DEPTH_TEST)
        vao.render(moderngl.LINES)
        self.ctx.disable(moderngl.DEPTH_TEST)
        vao.release()
        vbo.release()

    def draw_centres(
        self,
        camera: Camera,
        mean_texture: moderngl.Texture,  # the splat renderer's texels (x, y, z, opacity)
        count: int,
        *,
        color: tuple[float, float, float] = (1.0, 0.1, 0.1),
        point_size: float = 2.0,
    ) -> None:
        if count == 0:
            return
        mean_texture.use(0)
        p = self._centres
        p["u_mean"] = 0
        p["u_tex_width"] = packing.TEXTURE_WIDTH
        p["u_point_size"] = point_size
        p["u_color"] = color
        p["u_mvp"].write(mat4_uniform(gl_view_projection(camera_params(camera))))
        self.ctx.enable(moderngl.PROGRAM_POINT_SIZE)
        self._empty_vao.render(moderngl.POINTS, vertices=count)
        self.ctx.disable(moderngl.PROGRAM_POINT_SIZE)

    def release(self) -> None:
        for obj in (self._empty_vao, self._lines, self._centres):
            obj.release()
