"""Files the studio writes: .ply export, PNG snapshot, turntable and camera-path videos."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.session import Session
from app.state import OrbitView
from app.viewport import Viewport, orbit_camera


def export_ply(session: Session, path: str | Path) -> Path:
    """The current (posed, edited) avatar as a SuperSplat-compatible 3DGS .ply."""
    from core.raster.ply import save_ply

    return save_ply(path, session.gaussians().detach().to("cpu"))


def snapshot_png(session: Session, viewport: Viewport, path: str | Path, *, scale: float = 1.0) -> Path:
    from render.video import save_png

    w, h = round(viewport.width * scale), round(viewport.height * scale)
    img = viewport.render(
        session.gaussians(), orbit_camera(session.view, w, h), parts_view=session.edit.view_mode == "parts"
    )
    return save_png(path, img[..., :3].copy())


def render_views(
    session: Session,
    viewport: Viewport,
    views: list[OrbitView],
    *,
    progress: Callable[[float], None] | None = None,
) -> Iterator[np.ndarray]:
    """[H, W, 3] frames of the current avatar from each view (even sizes, for H.264)."""
    g = session.gaussians()
    parts = session.edit.view_mode == "parts"
    w, h = viewport.width // 2 * 2, viewport.height // 2 * 2
    for i, view in enumerate(views):
        yield viewport.render(g, orbit_camera(view, w, h), parts_view=parts)[..., :3].copy()
        if progress is not None:
            progress((i + 1) / len(views))


def turntable_views(view: OrbitView, num_frames: int) -> list[OrbitView]:
    return [replace(view, yaw_deg=view.yaw_deg + 360.0 * i / num_frames) for i in range(num_frames)]


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: int = 30) -> Path:
    from render.video import write_mp4

    return write_mp4(path, frames, fps=fps)
