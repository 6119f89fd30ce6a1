"""The studio window: viewport with orbit/pan/zoom, docked panels, status bar, console; the frame loop.

One `Studio` owns every Dear PyGui item it creates. Callbacks only change the session (intent); `step()`
decodes what changed, renders the preview offscreen and uploads it as a texture, then draws the GUI.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import dearpygui.dearpygui as dpg
import torch

from app import exports
from app.avatar_source import AvatarLoadError, StudioAvatar
from app.camera_path import CameraPath
from app.gallery import gallery
from app.panels.avatar import AvatarPanel
from app.panels.camera_keys import CameraKeysPanel
from app.panels.create import CreatePanel
from app.panels.drive import DrivePanel
from app.panels.expression import ExpressionPanel
from app.panels.lighting import LightingPanel
from app.panels.parts import PartsPanel
from app.panels.pose import PosePanel
from app.panels.training import TrainingPanel
from app.session import PREVIEW_DETAIL, Message, Session, share_cpu_with_gl
from app.settings import Settings
from app.viewport import Viewport, orbit, orbit_camera, pan, zoom

log = logging.getLogger(__name__)

PANEL_WIDTH = 430
CONSOLE_LINES = 200
SETTLE_S = 0.25  # seconds without change before the preview is redrawn at full resolution
LEVEL_COLOURS = {logging.ERROR: (255, 110, 110), logging.WARNING: (255, 200, 90)}


class _ConsoleHandler(logging.Handler):
    """Shows warnings and errors logged anywhere in the process in the studio's console."""

    def __init__(self, session: Session) -> None:
        super().__init__(level=logging.WARNING)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("app.session"):
            return  # the session's own messages are in the console already
        self.session.post(Message(record.levelno, f"{record.name}: {record.getMessage()}", record.created))


class Studio:
    def __init__(
        self,
        session: Session,
        *,
        preview: tuple[int, int] = (640, 480),
        settings: Settings | None = None,
        title: str = "LCA Studio",
        interactive_scale: float = 0.5,
        interactive_detail: int | None = PREVIEW_DETAIL,
        runs_root: str | Path = "runs",
    ) -> None:
        self.session = session
        self.settings = settings or Settings()
        share_cpu_with_gl()
        self.width, self.height = preview
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        dpg.create_viewport(title=title, width=self.width + PANEL_WIDTH + 40, height=self.height + 250)
        dpg.setup_dearpygui()
        self.viewport = Viewport(self.width, self.height, backend="glx")
        self.panels = [
            AvatarPanel(session, self),
            ExpressionPanel(session),
            PosePanel(session),
            PartsPanel(session),
            LightingPanel(session),
            CameraKeysPanel(session, self.render_camera_path),
            CreatePanel(session),
            TrainingPanel(session, runs_root=runs_root),
            DrivePanel(session, self),
        ]
        self.avatar_panel = self.panels[0]
        self._log_handler = _ConsoleHandler(session)
        logging.getLogger().addHandler(self._log_handler)
        self._build()
        self._frame_key: object = None
        self._seen_external = session.external_revision
        self._seen_avatar: StudioAvatar = session.avatar
        self._last = time.perf_counter()
        self._fps = 0.0
        self._drag_last: tuple[float, float] | None = None
        self._wheel = 0.0
        self._console_len = 0
        self._changed_at = -1e9
        self._frame_scale = 1.0
        self.interactive_scale = interactive_scale
        self.interactive_detail = interactive_detail  # Gaussians per anchor while dragging (None: all)
        self._frame_detail: int | None = None
        self.frames = 0

    # Layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        with dpg.texture_registry():
            self.texture = dpg.add_raw_texture(
                self.width, self.height, self.viewport.image.ravel(), format=dpg.mvFormat_Float_rgb
            )
        with dpg.window(no_title_bar=True, no_move=True, no_resize=True) as self.main:
            with dpg.menu_bar():
                with dpg.menu(label="File"):
                    dpg.add_menu_item(
                        label="Open avatar...", callback=lambda: dpg.show_item(self.avatar_panel.open_dialog)
                    )
                    dpg.add_menu_item(label="Quit", callback=lambda: dpg.stop_dearpygui())
                with dpg.menu(label="Edit"):
                    dpg.add_menu_item(label="Undo  (Ctrl+Z)", callback=lambda: self.session.undo())
                    dpg.add_menu_item(label="Redo  (Ctrl+Y)", callback=lambda: self.session.redo())
                with dpg.menu(label="View"):
                    for name in ("front", "side", "back", "face"):
                        dpg.add_menu_item(label=f"{name} view", callback=self._on_camera_preset, user_data=name)
            with dpg.group(horizontal=True):
                with dpg.group():
                    self.image = dpg.add_image(self.texture)
                    with dpg.group(horizontal=True):
                        for name in ("front", "side", "back", "face"):
                            dpg.add_button(label=name, callback=self._on_camera_preset, user_data=name)
                        dpg.add_button(label="reset", callback=self._on_camera_preset, user_data="front")
                        self.turntable_box = dpg.add_checkbox(label="turntable", callback=self._on_turntable)
                        dpg.add_button(label="undo", callback=lambda: self.session.undo())
                        dpg.add_button(label="redo", callback=lambda: self.session.redo())
                    dpg.add_text("drag: orbit   shift/right-drag: pan   wheel: zoom", color=(140, 140, 150))
                    self.status = dpg.add_text("", color=(180, 200, 220), wrap=self.width)
                    with dpg.child_window(height=120, width=self.width, border=True) as self.console:
                        pass
                with dpg.child_window(width=PANEL_WIDTH, height=self.height + 200, border=False):
                    with dpg.tab_bar() as self.tab_bar:
                        for panel in self.panels:
                            with dpg.tab(label=panel.title) as tab:
                                panel.build(tab)
                                panel.tab = tab
        dpg.set_primary_window(self.main, True)
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
            dpg.add_key_press_handler(dpg.mvKey_Z, callback=self._on_key, user_data="undo")
            dpg.add_key_press_handler(dpg.mvKey_Y, callback=self._on_key, user_data="redo")
        dpg.show_viewport()

    # Intent ----------------------------------------------------------------------------------
    def _on_camera_preset(self, sender, app_data, name: str) -> None:
        self.session.camera_preset(name)

    def _on_turntable(self, sender, value) -> None:
        self.session.turntable_deg_per_s = 30.0 if value else 0.0

    def _on_wheel(self, sender, delta) -> None:
        if dpg.is_item_hovered(self.image):
            self._wheel += float(delta)

    def _on_key(self, sender, app_data, what: str) -> None:
        if dpg.is_key_down(dpg.mvKey_LControl) or dpg.is_key_down(dpg.mvKey_RControl):
            self.session.undo() if what == "undo" else self.session.redo()

    def show_panel(self, title: str) -> None:
        """Bring the panel with this tab title to the front."""
        for panel in self.panels:
            if panel.title == title:
                dpg.set_value(self.tab_bar, panel.tab)
                return
        raise ValueError(f"no panel titled {title!r}; panels are {[p.title for p in self.panels]}")

    # Actions (called by panels) --------------------------------------------------------------
    def open_gallery(self, name: str) -> None:
        entries = gallery()
        if name not in entries:
            self.session.say(f"pick an avatar in the gallery first (got {name!r})", logging.WARNING)
            return
        self.avatar_panel.set_progress(0.2, f"opening {name}...")
        try:
            avatar = entries[name]()
        except AvatarLoadError as e:
            self.session.say(f"could not open {name}: {e}", logging.ERROR)
            return
        self.session.set_avatar(avatar)
        self.avatar_panel.set_progress(1.0, f"opened {name}")

    def open_file(self, path: str) -> bool:
        ok = self.session.open_avatar(path)
        self.avatar_panel.set_progress(1.0 if ok else 0.0, "opened" if ok else "failed: see the console")
        if ok:
            self.settings.last_avatar = str(path)
        return ok

    def save_avatar(self, path: str) -> bool:
        save = getattr(self.session.avatar, "save", None)
        if save is None:
            self.session.say(
                f"{self.session.avatar.name} is an example without an avatar file; use 'Export .ply' to keep it",
                logging.WARNING,
            )
            return False
        return self._write(lambda: save(path), f"saved avatar to {path}")

    def export_ply(self, path: str) -> None:
        self._write(lambda: exports.export_ply(self.session, path), f"exported {path}")

    def snapshot(self, path: str) -> None:
        self._write(lambda: exports.snapshot_png(self.session, self.viewport, path), f"saved snapshot {path}")
        self._frame_key = None

    def turntable(self, path: str, num_frames: int = 60) -> None:
        views = exports.turntable_views(self.session.view, num_frames)
        self._video(path, views, "turntable")

    def render_camera_path(self, path: CameraPath, file: str) -> None:
        if len(path.keys) < 2:
            self.session.say("add at least two camera keys before rendering the path", logging.WARNING)
            return
        self._video(file, path.frames(30), "camera path")

    def _video(self, path: str, views, what: str) -> None:
        def progress(f: float) -> None:
            self.avatar_panel.set_progress(f, f"{what}: {int(100 * f)}%")
            dpg.render_dearpygui_frame()

        frames = exports.render_views(self.session, self.viewport, views, progress=progress)
        self._write(lambda: exports.write_video(path, frames), f"wrote {what} video {path}")
        self._frame_key = None

    def _write(self, fn, done: str) -> bool:
        """Run a file-writing action; failures go to the console instead of stopping the studio."""
        try:
            fn()
        except (OSError, ValueError, RuntimeError) as e:
            self.session.say(f"could not write: {e}", logging.ERROR)
            return False
        self.session.say(done)
        return True

    # Frame loop ------------------------------------------------------------------------------
    def _poll_mouse(self) -> None:
        s = self.session
        if self._wheel:
            s.set_view(zoom(s.view, self._wheel))
            self._wheel = 0.0
        left = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        right = dpg.is_mouse_button_down(dpg.mvMouseButton_Right) or dpg.is_mouse_button_down(dpg.mvMouseButton_Middle)
        if not (left or right):
            self._drag_last = None
            return
        pos = dpg.get_mouse_pos(local=False)
        if self._drag_last is None:
            if dpg.is_item_hovered(self.image):
                self._drag_last = pos
            return
        dx, dy = pos[0] - self._drag_last[0], pos[1] - self._drag_last[1]
        self._drag_last = pos
        if right or dpg.is_key_down(dpg.mvKey_LShift):
            s.set_view(pan(s.view, dx, dy, self.height))
        else:
            s.set_view(orbit(s.view, dx, dy))

    def step(self) -> None:
        now = time.perf_counter()
        dt, self._last = now - self._last, now
        self._fps = 0.9 * self._fps + 0.1 / max(dt, 1e-6) if self.frames else 0.0
        dpg.run_callbacks(dpg.get_callback_queue())
        self._poll_mouse()
        s = self.session
        s.advance(dt)
        for panel in self.panels:
            panel.tick(dt)
        if s.avatar is not self._seen_avatar:
            self._seen_avatar = s.avatar
            for panel in self.panels:
                if panel.rebuild_on_avatar:
                    panel.rebuild()
                else:
                    panel.refresh()
        if s.external_revision != self._seen_external:
            self._seen_external = s.external_revision
            for panel in self.panels:
                panel.refresh()
        if self.render_preview():
            for panel in self.panels:
                panel.on_preview(self.viewport.image, time.perf_counter())
        self._update_status()
        self._update_console()
        dpg.render_dearpygui_frame()
        self.frames += 1

    def render_preview(self, force: bool = False) -> bool:
        """Decode and draw when the avatar, the edit or the view changed; True when a new image was made.

        While something keeps changing (a slider or the mouse is being dragged) the preview is drawn at
        `interactive_scale` resolution from `interactive_detail` Gaussians per anchor (avatars that offer levels
        of detail); once it settles, the full avatar is decoded and drawn again at full resolution.
        """
        s = self.session
        key = (id(s.avatar), s.edit, s.view)
        now = time.perf_counter()
        if key != self._frame_key:
            self._changed_at = now
        busy = now - self._changed_at < SETTLE_S
        scale = self.interactive_scale if busy else 1.0
        detail = self.interactive_detail if busy else None
        if key == self._frame_key and scale == self._frame_scale and detail == self._frame_detail and not force:
            return False
        try:
            g = s.gaussians(detail=detail)
        except (ValueError, RuntimeError) as e:
            s.say(f"could not decode the avatar: {e}", logging.ERROR)
            self._frame_key = key
            return False
        camera = orbit_camera(s.view, self.width, self.height)
        img = self.viewport.render(g, camera, parts_view=s.edit.view_mode == "parts", scale=scale)
        dpg.set_value(self.texture, img.ravel())
        self._frame_key, self._frame_scale, self._frame_detail = key, scale, detail
        self._num = g.num
        return True

    def _update_status(self) -> None:
        s = self.session
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dpg.set_value(
            self.status,
            f"{s.avatar.name}  |  {getattr(self, '_num', 0):,} Gaussians  |  {self._fps:5.1f} FPS  |  "
            f"decode {s.decode_ms:6.1f} ms  render {self.viewport.render_ms:6.1f} ms  |  "
            f"decode on {device}, GL: {self.viewport.device_name.split(' / ')[0]}",
        )

    def _update_console(self) -> None:
        s = self.session
        new = min(s.messages_total - self._console_len, len(s.messages))
        if new <= 0:
            return
        for m in list(s.messages)[len(s.messages) - new :]:
            stamp = time.strftime("%H:%M:%S", time.localtime(m.time))
            colour = LEVEL_COLOURS.get(m.level, (200, 200, 200))
            dpg.add_text(f"{stamp}  {m.text}", parent=self.console, color=colour, wrap=self.width - 20)
        old = dpg.get_item_children(self.console, 1)
        for item in old[: max(0, len(old) - CONSOLE_LINES)]:
            dpg.delete_item(item)
        self._console_len = s.messages_total
        dpg.set_y_scroll(self.console, dpg.get_y_scroll_max(self.console) + 1000)

    def run(self, max_frames: int | None = None) -> None:
        while dpg.is_dearpygui_running():
            self.step()
            if max_frames is not None and self.frames >= max_frames:
                break

    def screenshot(self, path: str | Path) -> Path:
        """Save the whole window (GUI and preview) as a PNG."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        dpg.render_dearpygui_frame()
        dpg.output_frame_buffer(file=str(path))
        dpg.render_dearpygui_frame()
        return path

    def close(self) -> None:
        for panel in self.panels:
            panel.close()
        logging.getLogger().removeHandler(self._log_handler)
        self.settings.save_from(self.session)
        self.viewport.release()
        dpg.destroy_context()


def open_session(avatar: str | None, example: str | None, settings: Settings) -> Session:
    """A session on the requested avatar, else the last session's, else the default; bad files keep the default."""
    session = None
    wanted = example and f"gallery:{example}" or avatar or settings.last_avatar
    if wanted and wanted.startswith("gallery:"):
        name = wanted.split(":", 1)[1]
        entries = gallery()
        if name in entries:
            session = Session(entries[name]())
    if session is None:
        session = Session()
        if wanted and not wanted.startswith("gallery:"):
            session.open_avatar(wanted)
    session.set_view(settings.orbit_view())
    session.apply(replace(session.edit, lighting=settings.lighting_edit()), external=True)
    session.history.clear()
    return session


def start_studio(
    *,
    avatar: str | None = None,
    example: str | None = None,
    preview: tuple[int, int] = (640, 480),
    fresh: bool = False,
    frames: int | None = None,
    screenshot: str | None = None,
    drive: str | None = None,
) -> int:
    settings = Settings() if fresh else Settings.load()
    session = open_session(avatar, example, settings)
    studio = Studio(session, preview=preview, settings=settings)
    try:
        if drive is not None:  # `main.py drive`: the Drive panel starts on that source (errors show in it)
            studio.show_panel("Drive")
            next(p for p in studio.panels if p.title == "Drive").start(drive)
        studio.run(max_frames=frames)
        if screenshot:
            studio.screenshot(screenshot)
    finally:
        studio.close()
    return 0
