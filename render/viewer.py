"""Standalone glfw window: orbit/pan/zoom around splats, presets, overlays, screenshots.

Mouse: left drag orbit, right or middle drag pan, wheel zoom. Keys: R reset, F focus, 1/2/3/4 front/side/
back/face, P part colours, C centres, G grid, A axes, S screenshot, Esc quit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from core.raster.types import Gaussians
from render.orbit import OrbitController
from render.overlays import OverlayRenderer, axes_segments, grid_segments
from render.splat_renderer import SplatRenderer
from render.video import save_png

log = logging.getLogger(__name__)


@dataclass
class ViewState:
    """What the keyboard toggles; the frame loop reads it."""

    parts: bool = False
    centres: bool = False
    grid: bool = True
    axes: bool = True
    screenshot: bool = False
    focus: bool = False
    drag: str | None = None  # "orbit" or "pan" while a button is held
    last_cursor: tuple[float, float] = (0.0, 0.0)
    pending_scroll: float = 0.0
    screenshot_dir: Path | None = None  # None: the user's data folder (core.paths), never the working directory


def screenshot_path(folder: Path | None, frame: int) -> Path:
    """Where the S key saves: `folder`, else the user's data folder (e.g. ~/.local/share/lca-studio/screenshots)."""
    from core.paths import user_data_dir

    folder = Path(folder) if folder is not None else user_data_dir("screenshots")
    return folder / f"screenshot_{time.strftime('%Y%m%d_%H%M%S')}_{frame}.png"


def run_viewer(
    gaussians: Gaussians,
    *,
    width: int = 1280,
    height: int = 800,
    title: str = "splat viewer",
    background: tuple[float, float, float] = (0.1, 0.1, 0.12),
    max_frames: int | None = None,
    screenshot_dir: Path | None = None,
) -> int:
    """Open a window on `gaussians` and run until closed (or after `max_frames`, for tests). Returns 0."""
    import glfw

    if not glfw.init():
        raise RuntimeError("glfw could not initialise: no display? Set DISPLAY or run under xvfb-run")
    try:
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        window = glfw.create_window(width, height, title, None, None)
        if not window:
            raise RuntimeError("glfw could not open a window with an OpenGL 3.3 core context")
        glfw.make_context_current(window)
        glfw.swap_interval(1)
        return _loop(glfw, window, gaussians, background, max_frames, screenshot_dir)
    finally:
        glfw.terminate()


def _loop(glfw, window, gaussians: Gaussians, background, max_frames: int | None, screenshot_dir: Path | None) -> int:
    from render.gl_context import create_context

    ctx = create_context("current")
    renderer = SplatRenderer(ctx)
    overlays = OverlayRenderer(ctx)
    renderer.set_gaussians(gaussians)
    orbit = OrbitController.default()
    state = ViewState(screenshot_dir=screenshot_dir)
    means = gaussians.means.detach().cpu().numpy()
    grid, (axes, axes_colors) = grid_segments(), axes_segments()

    def on_key(win, key, scancode, action, mods) -> None:
        if action != glfw.PRESS:
            return
        presets = {glfw.KEY_1: "front", glfw.KEY_2: "side", glfw.KEY_3: "back", glfw.KEY_4: "face"}
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(win, True)
        elif key in presets:
            orbit.preset(presets[key])
        elif key == glfw.KEY_R:
            orbit.preset("front")
        elif key == glfw.KEY_F:
            state.focus = True
        elif key == glfw.KEY_P:
            state.parts = not state.parts
        elif key == glfw.KEY_C:
            state.centres = not state.centres
        elif key == glfw.KEY_G:
            state.grid = not state.grid
        elif key == glfw.KEY_A:
            state.axes = not state.axes
        elif key == glfw.KEY_S:
            state.screenshot = True

    def on_button(win, button, action, mods) -> None:
        if action == glfw.PRESS:
            state.drag = "orbit" if button == glfw.MOUSE_BUTTON_LEFT else "pan"
            state.last_cursor = glfw.get_cursor_pos(win)
        elif action == glfw.RELEASE:
            state.drag = None

    def on_cursor(win, x, y) -> None:
        if state.drag is None:
            return
        dx, dy = x - state.last_cursor[0], y - state.last_cursor[1]
        state.last_cursor = (x, y)
        if state.drag == "orbit":
            orbit.orbit(dx, dy)
        else:
            orbit.pan(dx, dy, glfw.get_framebuffer_size(win)[1])

    def on_scroll(win, dx, dy) -> None:
        state.pending_scroll += dy

    glfw.set_key_callback(window, on_key)
    glfw.set_mouse_button_callback(window, on_button)
    glfw.set_cursor_pos_callback(window, on_cursor)
    glfw.set_scroll_callback(window, on_scroll)

    frames, t_last, shown = 0, time.perf_counter(), 0
    while not glfw.window_should_close(window) and (max_frames is None or frames < max_frames):
        glfw.poll_events()
        if state.pending_scroll:
            orbit.zoom(state.pending_scroll)
            state.pending_scroll = 0.0
        if state.focus:
            orbit.focus(means)
            state.focus = False
        w, h = glfw.get_framebuffer_size(window)
        if w == 0 or h == 0:  # minimised
            glfw.wait_events_timeout(0.1)
            continue
        camera = orbit.camera(w, h)
        renderer.color_mode = "parts" if state.parts else "sh"
        renderer.draw(camera, background=background)
        if state.grid:
            overlays.draw_lines(camera, grid, (0.35, 0.35, 0.38))
        if state.axes:
            overlays.draw_lines(camera, axes, axes_colors)
        if state.centres and renderer.mean_texture is not None:
            overlays.draw_centres(camera, renderer.mean_texture, renderer.num)
        if state.screenshot:
            path = screenshot_path(state.screenshot_dir, frames)
            save_png(path, renderer.read()[..., :3])
            log.info("screenshot saved to %s", path)
            state.screenshot = False
        ctx.copy_framebuffer(ctx.screen, renderer.fbo)
        glfw.swap_buffers(window)
        frames += 1
        shown += 1
        now = time.perf_counter()
        if now - t_last > 1.0:
            glfw.set_window_title(window, f"splat viewer: {renderer.num} Gaussians, {shown / (now - t_last):.1f} FPS")
            t_last, shown = now, 0
    renderer.release()
    overlays.release()
    return 0
