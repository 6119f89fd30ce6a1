"""The studio window: preview with orbit/pan/zoom, a side list of panels, status bar, console; the frame loop.

One `Studio` owns every Dear PyGui item it creates. Callbacks only change the session (intent); `step()` runs
them, asks the preview worker (`app.preview_worker`, its own thread) for a picture of what changed, shows the
newest finished picture as a texture, follows long tasks on a progress bar and draws the GUI. Decoding and
rendering never run on this thread, so a slow decode never delays a click.

The window opens before any avatar is loaded (`start_studio`): the session starts on `app.startup.LoadingAvatar`,
the worker loads the real avatar as a task (`load_start_avatar`) and a line over the preview and the status bar
say what is loading until its first picture is shown.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from app import splash
from app.avatar_source import StudioAvatar
from app.console import ConsoleHandler, show_new_messages
from app.layout import NAV_WIDTH, ScreenArea, fit_window, screen_area
from app.panels.avatar import AvatarPanel
from app.panels.camera_keys import CameraKeysPanel
from app.panels.create import CreatePanel
from app.panels.drive import DrivePanel
from app.panels.expression import ExpressionPanel
from app.panels.lighting import LightingPanel
from app.panels.parts import PartsPanel
from app.panels.pose import PosePanel
from app.panels.training import TrainingPanel
from app.preview_worker import FrameRequest, FrameResult, PreviewWorker
from app.session import Session, preview_detail, share_cpu_with_gl
from app.settings import Settings
from app.splash import process_age
from app.startup import LoadingAvatar, StartAvatar, apply_settings, choose_avatar, is_loading
from app.studio_tasks import StudioTasks
from app.tasks import Task
from app.viewport import Viewport, orbit, orbit_camera, pan, zoom
from core.paths import user_data_dir

log = logging.getLogger(__name__)

SETTLE_S = 0.25  # seconds without change before the preview is redrawn at full resolution
# CPU-only machines: GUI frames per second while the preview worker decodes or draws. The window's own drawing
# (Dear PyGui on the software rasteriser) costs about a core at an uncapped ~30 FPS, which the worker needs; the
# cap keeps the GUI above 10 FPS and hands the rest of the cores to the preview.
GUI_FPS_WHILE_RENDERING = 15.0
LOADING_FRAME_S = 1 / 10  # the GUI loop's shortest frame while the avatar loads (the rest of the CPU loads it)
LOADING_GREY = 0.16  # the empty preview's grey while the avatar loads


class Studio(StudioTasks):
    def __init__(
        self,
        session: Session,
        *,
        preview: tuple[int, int] = (640, 480),
        settings: Settings | None = None,
        title: str = "LCA Studio",
        interactive_scale: float = 0.5,
        runs_root: str | Path | None = None,  # None: the user's data folder (core.paths), not the working directory
        screen: ScreenArea | None = None,
        window_open: bool = False,  # the window is already shown (app.splash.open_window): build into it
    ) -> None:
        self.session = session
        self.settings = settings or Settings()
        share_cpu_with_gl()
        self.layout = fit_window(screen or screen_area(), preview)
        self.width, self.height = self.layout.preview
        self.window_open = window_open
        if not window_open:
            dpg.create_context()
            dpg.configure_app(manual_callback_management=True)
            lay = self.layout
            dpg.create_viewport(title=title, width=lay.width, height=lay.height, x_pos=lay.x, y_pos=lay.y)
            dpg.setup_dearpygui()
        # Decoding and drawing happen on the preview worker's thread; its GL context is made there too.
        self.worker = PreviewWorker(
            lambda: Viewport(self.width, self.height, backend="glx", lend_images=True), self._decode, self._render
        )
        self.viewport: Viewport = self.worker.viewport
        self.panels = [
            AvatarPanel(session, self),
            ExpressionPanel(session),
            PosePanel(session),
            PartsPanel(session),
            LightingPanel(session),
            CameraKeysPanel(session, self.render_camera_path),
            CreatePanel(session, run_task=self.run_task),
            TrainingPanel(session, runs_root=runs_root or user_data_dir("runs")),
            DrivePanel(session, self),
        ]
        self.avatar_panel = self.panels[0]
        self._log_handler = ConsoleHandler(session)
        logging.getLogger().addHandler(self._log_handler)
        self.preview_image = np.full((self.height, self.width, 3), LOADING_GREY, dtype=np.float32)  # what is shown
        self._build()
        self._seen_external = session.external_revision
        self._seen_avatar: StudioAvatar = session.avatar
        self._last = time.perf_counter()
        self._fps = 0.0
        self._drag_last: tuple[float, float] | None = None
        self._wheel = 0.0
        self._console_len = 0
        self._changed_at = -1e9
        self._state_key: object = None  # (avatar serial, edit, view) last seen
        self._submitted: FrameRequest | None = None
        self.shown: FrameResult | None = None  # the newest picture on screen (or the newest failed decode)
        self._num = 0
        self.interactive_scale = interactive_scale
        # Gaussians per anchor while dragging (None: all); this machine's choice (session.preview_detail)
        self.interactive_detail: int | None = preview_detail()
        # GUI frame cap while the worker is busy (None: uncapped); only where decoding and drawing share the CPU
        self.gui_fps_while_rendering: float | None = None if torch.cuda.is_available() else GUI_FPS_WHILE_RENDERING
        self._tasks: list[tuple[Task, object, str]] = []  # (task, on_done(result), failure message)
        self._task_shown: Task | None = None
        self.current_panel = self.panels[0].title
        self.frames = 0
        self._loading: Task | None = None  # the start-up avatar load while it runs
        self._loading_then = None  # what runs once it opened (or failed)
        self.window_shown_s: float | None = splash.shown_at if window_open else None  # process start -> window
        self.avatar_shown_s: float | None = None  # ... to the first picture of a loaded avatar

    # Layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        with dpg.texture_registry():
            self.texture = dpg.add_raw_texture(
                self.width, self.height, self.preview_image.ravel(), format=dpg.mvFormat_Float_rgb
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
                with dpg.menu(label="Panels"):
                    for panel in self.panels:
                        dpg.add_menu_item(label=panel.title, callback=self._on_nav, user_data=panel.title)
            with dpg.group(horizontal=True):
                with dpg.group():
                    self.image = dpg.add_image(self.texture)
                    self.loading_line = dpg.add_text(
                        "", color=(235, 235, 240), wrap=self.width - 40, show=False, pos=(20, 60)
                    )  # over the preview while the avatar loads; placed on the image once it has a position
                    with dpg.group(horizontal=True):
                        for name in ("front", "side", "back", "face"):
                            dpg.add_button(label=name, callback=self._on_camera_preset, user_data=name)
                        dpg.add_button(label="reset", callback=self._on_camera_preset, user_data="front")
                        self.turntable_box = dpg.add_checkbox(label="turntable", callback=self._on_turntable)
                        dpg.add_button(label="undo", callback=lambda: self.session.undo())
                        dpg.add_button(label="redo", callback=lambda: self.session.redo())
                    with dpg.group(horizontal=True):
                        self.task_bar = dpg.add_progress_bar(default_value=0.0, width=self.width - 70, overlay="idle")
                        self.cancel_button = dpg.add_button(label="Cancel", callback=lambda: self.cancel_tasks())
                    self.status = dpg.add_text("", color=(180, 200, 220), wrap=self.width)
                    with dpg.child_window(height=-1, width=self.width, border=True) as self.console:
                        dpg.add_text("drag: orbit   shift/right-drag: pan   wheel: zoom", color=(140, 140, 150))
                with dpg.child_window(width=NAV_WIDTH, height=-1, border=True):
                    self.nav = {
                        panel.title: dpg.add_selectable(label=panel.title, callback=self._on_nav, user_data=panel.title)
                        for panel in self.panels
                    }
                with dpg.child_window(width=-1, height=-1, border=False) as self.panel_area:
                    for i, panel in enumerate(self.panels):
                        with dpg.group(show=i == 0) as holder:
                            panel.build(holder)
                            panel.tab = holder
        dpg.set_value(self.nav[self.panels[0].title], True)
        dpg.set_primary_window(self.main, True)
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
            dpg.add_key_press_handler(dpg.mvKey_Z, callback=self._on_key, user_data="undo")
            dpg.add_key_press_handler(dpg.mvKey_Y, callback=self._on_key, user_data="redo")
        if self.window_open:
            splash.close_splash()
        else:
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

    def _on_nav(self, sender, app_data, title: str) -> None:
        self.show_panel(title)

    def show_panel(self, title: str) -> None:
        """Show the panel with this title (the side list's entry is highlighted)."""
        if title not in self.nav:
            raise ValueError(f"no panel titled {title!r}; panels are {[p.title for p in self.panels]}")
        for panel in self.panels:
            dpg.configure_item(panel.tab, show=panel.title == title)
            dpg.set_value(self.nav[panel.title], panel.title == title)
        self.current_panel = title

    # Start-up ----------------------------------------------------------------------------------
    def load_start_avatar(self, load, then=None) -> Task:
        """Load the avatar the studio opens on, on the worker: `load(progress) -> StartAvatar` (see
        `app.startup.choose_avatar`); `then()` runs on the GUI thread once it is the session's avatar. Until
        then the preview shows what is loading. A failed or cancelled load opens the procedural figure."""

        def opened(start: StartAvatar) -> None:
            self.session.set_avatar(start.avatar, start.path)
            if start.problem:
                self.session.say(start.problem, logging.WARNING)
            if then is not None:
                then()

        self._loading = self.run_task(
            "loading the avatar", lambda task, vp: load(task.report), opened, failure="could not load the avatar"
        )
        self._loading_then = then
        return self._loading

    def _follow_loading(self) -> None:
        """Keep the loading line current; after a failed load open the procedural figure so the studio works."""
        task = self._loading
        if task is not None and task.done and not any(t is task for t, _, _ in self._tasks):
            self._loading = None
            if is_loading(self.session.avatar):
                from app.avatar_source import example_figure

                self.session.set_avatar(example_figure())
                if self._loading_then is not None:
                    self._loading_then()
        show = is_loading(self.session.avatar) or self.avatar_shown_s is None
        if show:
            if not is_loading(self.session.avatar):
                what = f"drawing the first picture of {self.session.avatar.name}"
            elif task is None or task.started is None:
                what = "waiting for the preview worker"
            else:
                what = task.text
            dpg.set_value(self.loading_line, f"Loading the avatar ({process_age():.0f} s since start)...\n{what}")
            x, y = dpg.get_item_pos(self.image)
            if x or y:
                dpg.configure_item(self.loading_line, pos=(x + 16, y + 16))
        dpg.configure_item(self.loading_line, show=show)

    # Long actions: tasks on the preview worker, followed on the progress bar -------------------
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
        self._poll_tasks()
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
        self.request_preview()
        self.show_preview()
        self._follow_loading()
        self._update_status()
        self._console_len = show_new_messages(self.console, self.session, self._console_len, self.width)
        dpg.render_dearpygui_frame()
        self.frames += 1
        if self.window_shown_s is None:
            self.window_shown_s = process_age()
            log.info("studio window shown %.1f s after start", self.window_shown_s)

    def request_preview(self) -> FrameRequest | None:
        """Ask the worker for a picture when the avatar, the edit or the view changed; the request, if new.

        While something keeps changing (a slider or the mouse is being dragged) the picture is asked for at
        `interactive_scale` resolution from `interactive_detail` Gaussians per anchor (avatars that offer levels
        of detail); once it settles, the full avatar at full resolution. A request the worker has not started
        yet is replaced, so the newest state always wins.
        """
        s = self.session
        if is_loading(s.avatar):
            return None  # nothing to draw until the avatar is loaded
        now = time.perf_counter()
        state = (s.avatar_serial, s.edit, s.view)
        if state != self._state_key:
            self._state_key, self._changed_at = state, now
        busy = now - self._changed_at < SETTLE_S
        detail = Session._detail_for(s.avatar, self.interactive_detail if busy else None)
        request = FrameRequest(
            s.avatar, s.avatar_serial, s.edit, s.view, detail, self.interactive_scale if busy else 1.0
        )
        if self._submitted is not None and request.key == self._submitted.key:
            return None
        self._submitted = request
        self.worker.submit(request)
        return request

    def show_preview(self) -> bool:
        """Show the worker's newest finished picture, if any; True when the preview changed."""
        result = self.worker.take_result()
        if result is None:
            return False
        self.shown = result
        if result.error is not None:
            self.session.say(result.error, logging.ERROR)
            return False
        shown, self.preview_image = self.preview_image, result.image  # lent by the viewport: no copy
        dpg.set_value(self.texture, self.preview_image.ravel())  # the texture keeps a view of it
        self.worker.recycle(shown)
        self._num = result.num
        if self.avatar_shown_s is None and not is_loading(result.request.avatar):
            self.avatar_shown_s = process_age()
            log.info("studio showed %s %.1f s after start", result.request.avatar.name, self.avatar_shown_s)
        for panel in self.panels:
            panel.on_preview(self.preview_image, result.finished)
        return True

    @property
    def preview_settled(self) -> bool:
        """The preview shows the current state at full quality and nothing else is asked for."""
        s, shown = self.session, self.shown
        if shown is None or self._submitted is None or shown.request.key != self._submitted.key:
            return False
        r = shown.request
        return (
            (r.avatar_serial, r.edit, r.view) == (s.avatar_serial, s.edit, s.view)
            and r.scale == 1.0
            and (r.detail is None)
        )

    def settle(self, timeout: float = 120.0) -> bool:
        """Run frames until the preview shows the current state at full quality (tests, scripted screenshots)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            self.step()
            if self.preview_settled and not self._tasks:
                return True
            time.sleep(0.005)
        return False

    def _decode(self, request: FrameRequest):  # on the worker thread
        return self.session.decode(request.avatar, request.avatar_serial, request.edit, request.detail)

    def _render(self, viewport: Viewport, gaussians, request: FrameRequest) -> np.ndarray:  # on the worker thread
        camera = orbit_camera(request.view, self.width, self.height)
        return viewport.render(gaussians, camera, parts_view=request.edit.view_mode == "parts", scale=request.scale)

    def _update_status(self) -> None:
        s, r = self.session, self.shown
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if is_loading(s.avatar):
            preview = f"loading the avatar: {self._loading.text if self._loading else 'waiting...'}"
        elif r is None:
            preview = "preview: decoding the first frame..."
        else:
            quality = "" if r.request.scale == 1.0 and r.request.detail is None else ", draft while dragging"
            waiting = "" if self.preview_settled else "  (newer frame on its way)"
            preview = (
                f"preview {self.worker.rate():4.1f} frames/s: last decode {s.decode_ms:5.0f} ms, "
                f"render {r.render_ms:4.0f} ms, {self._num:,} Gaussians{quality}{waiting}"
            )
        dpg.set_value(
            self.status,
            f"{preview}\nGUI {self._fps:5.1f} FPS  |  {s.avatar.name or 'loading...'}  |  decode on {device}, "
            f"GL: {self.viewport.device_name.split(' / ')[0].split(' (')[0]}",
        )

    def pace(self) -> float:
        """Wait out the rest of the GUI frame while other work needs the cores: the start-up avatar load (at most
        1 / LOADING_FRAME_S frames/s) and, on CPU-only machines, a busy preview worker (`GUI_FPS_WHILE_RENDERING`).

        Called after `step` by the frame loop; returns the seconds slept (0 when uncapped or the worker is idle).
        """
        fps = self.gui_fps_while_rendering
        if is_loading(self.session.avatar):  # leave the cores to the load (2-core machines): a few frames/s do
            frame_s = LOADING_FRAME_S
        elif fps and not self.worker.idle:
            frame_s = 1.0 / fps
        else:
            return 0.0
        wait = self._last + frame_s - time.perf_counter()  # `_last`: when this frame's step began
        if wait <= 0:
            return 0.0
        time.sleep(wait)
        return wait

    def run(self, max_frames: int | None = None) -> None:
        while dpg.is_dearpygui_running():
            self.step()
            self.pace()
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
        self.cancel_tasks()
        for panel in self.panels:
            panel.close()
        self.worker.close()
        logging.getLogger().removeHandler(self._log_handler)
        self.settings.save_from(self.session)
        dpg.destroy_context()


def start_studio(
    *,
    avatar: str | None = None,
    example: str | None = None,
    preview: tuple[int, int] = (640, 480),
    fresh: bool = False,
    frames: int | None = None,
    screenshot: str | None = None,
    drive: str | None = None,
    window_open: bool = False,
    screen: ScreenArea | None = None,
) -> int:
    """Open the window at once, then load the avatar on the preview worker (the status line says what loads).

    `window_open`: `app.splash.open_window` already shows the window (on `screen`); the studio builds into it.
    """
    settings = Settings() if fresh else Settings.load()
    session = Session(LoadingAvatar())
    apply_settings(session, settings)
    studio = Studio(session, preview=preview, settings=settings, window_open=window_open, screen=screen)
    try:
        studio.step()  # the window, with its loading line, before any avatar work starts
        then = None
        if drive is not None:  # `main.py drive`: the Drive panel starts on that source once the avatar is there
            studio.show_panel("Drive")
            panel = next(p for p in studio.panels if p.title == "Drive")
            then = lambda: panel.start(drive)  # noqa: E731
        studio.load_start_avatar(lambda report: choose_avatar(avatar, example, settings.last_avatar, report), then)
        studio.run(max_frames=frames)
        if screenshot:
            studio.settle()
            studio.screenshot(screenshot)
    finally:
        studio.close()
    return 0
