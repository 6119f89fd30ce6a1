"""Drive panel: a webcam, video, image folder, network stream or recording drives the avatar live.

The panel owns widgets only; `core.tracking.drive_control.DriveController` does the work. Each frame `tick` takes the
newest driving channels and applies them as a live edit (no undo step); `on_preview` measures the latency and
hands the new preview image to the mp4 writer and the virtual camera.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app.driving import apply_channels
from app.panels.base import Panel
from app.session import Session
from core.tracking.drive_control import DriveController, DriveUpdate, parse_input_spec
from core.tracking.preview import preview_image
from core.tracking.types import GROUPS

log = logging.getLogger(__name__)

PREVIEW = (320, 240)
CURVE_SECONDS = 10.0
DEFAULT_CURVES = ("expr.jawOpen", "expr.eyeBlinkLeft", "pose.head.y")
SOURCE_KINDS = ("camera", "video / image folder / recording", "network (ARKit / VMC)")
LATENCY_KEYS = ("capture", "tracking", "retarget", "decode", "render")
ERROR_COLOUR = (255, 110, 110)
PANEL_WRAP = 410


class DrivePanel(Panel):
    title = "Drive"

    def __init__(self, session: Session, studio=None, *, controller: DriveController | None = None) -> None:
        super().__init__(session)
        self.studio = studio  # for the viewport's render time and size (optional in tests)
        self.controller = controller or DriveController()
        self.latency_ms: dict[str, float] = {}
        self.frames_applied = 0
        self._pending: DriveUpdate | None = None  # applied, waiting for its preview to measure the latency
        self._pending_edit = None  # the edit that update made (a picture of it ends the latency)
        self._curves: deque[tuple[float, dict[str, float]]] = deque(maxlen=600)
        self._t0 = time.perf_counter()
        self._listed = 0
        self._last_update: DriveUpdate | None = None
        self._was_running = False
        self.camera_preview = preview_image(None, None, *PREVIEW)  # [240, 320, 4] what the preview texture shows

    # Layout ------------------------------------------------------------------------------------------------
    def build(self, parent: int | str) -> None:
        c = self.controller
        with dpg.texture_registry():
            self.texture = dpg.add_raw_texture(
                PREVIEW[0], PREVIEW[1], self.camera_preview.ravel(), format=dpg.mvFormat_Float_rgba
            )
        with dpg.group(parent=parent) as self.root:
            with dpg.group(horizontal=True):
                self.kind = dpg.add_combo(
                    SOURCE_KINDS, default_value=SOURCE_KINDS[0], width=150, callback=self._on_kind
                )
                self.spec = dpg.add_input_text(default_value="0", width=150, hint="index, file, folder or port")
                dpg.add_button(label="...", callback=lambda: dpg.show_item(self.file_dialog))
                dpg.add_button(label="dir", callback=lambda: dpg.show_item(self.folder_dialog))
            with dpg.group(horizontal=True):
                self.start_button = dpg.add_button(label="Start", width=70, callback=lambda: self.toggle())
                self.loop_box = dpg.add_checkbox(label="loop files", default_value=True)
                dpg.add_button(label="Calibrate neutral", callback=lambda: self.calibrate())
            self.state_text = dpg.add_text("stopped", wrap=PANEL_WRAP)
            dpg.add_image(self.texture)
            self.latency_text = dpg.add_text("", color=(180, 200, 220), wrap=PANEL_WRAP)
            with dpg.group(horizontal=True):
                self.group_boxes = {
                    g: dpg.add_checkbox(label=g, default_value=g in c.calibration.enabled, callback=self._on_group,
                                        user_data=g)
                    for g in GROUPS
                }  # fmt: skip
                self.mirror_box = dpg.add_checkbox(label="mirror", default_value=c.calibration.mirror,
                                                   callback=lambda s, v: c.set_mirror(v))  # fmt: skip
            with dpg.collapsing_header(label="Curves", default_open=True):
                with dpg.group(horizontal=True):
                    self.curve_combos = [
                        dpg.add_combo(list(DEFAULT_CURVES), default_value=name, width=150) for name in DEFAULT_CURVES
                    ]
                with dpg.plot(height=150, width=-1):
                    dpg.add_plot_legend()
                    self.x_axis = dpg.add_plot_axis(dpg.mvXAxis, label="s")
                    self.y_unit = dpg.add_plot_axis(dpg.mvYAxis, label="coefficient")
                    self.y_deg = dpg.add_plot_axis(dpg.mvYAxis2, label="degrees")
                    dpg.set_axis_limits(self.y_unit, -0.05, 1.05)
                    self.series = [
                        (dpg.add_line_series([], [], parent=self.y_unit, label=f"#{i + 1}", show=False),
                         dpg.add_line_series([], [], parent=self.y_deg, label=f"#{i + 1} deg", show=False))
                        for i in range(len(DEFAULT_CURVES))
                    ]  # fmt: skip
            with dpg.collapsing_header(label="Record and outputs", default_open=True):
                with dpg.group(horizontal=True):
                    self.rec_box = dpg.add_checkbox(label="record channels", callback=self._on_record)
                    self.rec_path = dpg.add_input_text(default_value="drive_channels.npz", width=170)
                dpg.add_button(label="Replay the recording", callback=lambda: self.replay())
                with dpg.group(horizontal=True):
                    self.video_box = dpg.add_checkbox(label="record video", callback=self._on_video)
                    self.video_path = dpg.add_input_text(default_value="drive_preview.mp4", width=170)
                with dpg.group(horizontal=True):
                    self.send_box = dpg.add_checkbox(label="send", callback=self._on_send)
                    self.protocol = dpg.add_combo(("VMC", "OSC"), default_value="VMC", width=60)
                    self.send_to = dpg.add_input_text(default_value="127.0.0.1:39539", width=150)
                self.vcam_box = dpg.add_checkbox(label="virtual camera", callback=self._on_virtual_camera)
            with dpg.collapsing_header(label="Smoothing (One-Euro)"):
                self.smooth_sliders = {}
                for g in GROUPS:
                    self.smooth_sliders[g] = (
                        dpg.add_slider_float(label=f"{g} min cutoff (Hz)", default_value=1.0, min_value=0.05,
                                             max_value=10.0, width=170, callback=self._on_smoothing, user_data=g),
                        dpg.add_slider_float(label=f"{g} beta", default_value=0.05, min_value=0.0, max_value=1.0,
                                             width=170, callback=self._on_smoothing, user_data=g),
                    )  # fmt: skip
            with dpg.collapsing_header(label="Channels: gain / offset / invert"):
                self.channel_list = dpg.add_listbox([], num_items=5, width=-1, callback=self._on_pick_channel)
                self.value_text = dpg.add_text("value: -")
                self.gain = dpg.add_slider_float(label="gain", default_value=1.0, min_value=-3.0, max_value=3.0,
                                                 width=170, callback=self._on_adjust)  # fmt: skip
                self.offset = dpg.add_slider_float(label="offset", default_value=0.0, min_value=-1.0, max_value=1.0,
                                                   width=170, callback=self._on_adjust)  # fmt: skip
                self.invert = dpg.add_checkbox(label="invert", callback=self._on_adjust)
            with dpg.file_dialog(show=False, callback=self._on_file, width=640, height=420) as self.file_dialog:
                dpg.add_file_extension("Videos and recordings{.mp4,.avi,.mov,.mkv,.webm,.npz,.json}")
                dpg.add_file_extension(".*")
            with dpg.file_dialog(
                show=False, callback=self._on_file, width=640, height=420, directory_selector=True
            ) as self.folder_dialog:
                pass

    # Intent ------------------------------------------------------------------------------------------------
    def _on_kind(self, sender, kind: str) -> None:
        defaults = {SOURCE_KINDS[0]: "0", SOURCE_KINDS[2]: "network:39539"}
        if kind in defaults:
            dpg.set_value(self.spec, defaults[kind])

    def _on_file(self, sender, app_data) -> None:
        path = app_data.get("file_path_name") or ""
        if path:
            dpg.set_value(self.spec, path)
            dpg.set_value(self.kind, SOURCE_KINDS[1])

    def _on_group(self, sender, on: bool, group: str) -> None:
        self.controller.set_group(group, bool(on))

    def _on_smoothing(self, sender, value, group: str) -> None:
        cutoff, beta = self.smooth_sliders[group]
        self.controller.set_smoothing(group, min_cutoff=dpg.get_value(cutoff), beta=dpg.get_value(beta))

    def _on_pick_channel(self, sender, name: str) -> None:
        a = self.controller.adjust_of(name)
        dpg.set_value(self.gain, a.gain)
        dpg.set_value(self.offset, a.offset)
        dpg.set_value(self.invert, a.invert)

    def _on_adjust(self, sender=None, value=None) -> None:
        name = dpg.get_value(self.channel_list)
        if name:
            self.controller.set_adjust(
                name,
                gain=dpg.get_value(self.gain),
                offset=dpg.get_value(self.offset),
                invert=dpg.get_value(self.invert),
            )

    def _on_record(self, sender, on: bool) -> None:
        if on:
            self.controller.start_recording()
            self.session.say("recording driving channels")
            return
        try:
            path = self.controller.stop_recording(dpg.get_value(self.rec_path))
        except (OSError, ValueError) as e:
            self.session.say(f"could not save the recording: {e}", logging.ERROR)
            return
        self.session.say(f"saved driving channels to {path}")

    def _on_video(self, sender, on: bool) -> None:
        if not on:
            path = self.controller.stop_video()
            if path is not None:
                self.session.say(f"wrote driving video {path}")
            return
        try:
            self.controller.start_video(dpg.get_value(self.video_path))
        except (OSError, ValueError) as e:
            dpg.set_value(self.video_box, False)
            self.session.say(f"cannot record video: {e}", logging.ERROR)

    def _on_send(self, sender, on: bool) -> None:
        if not on:
            self.controller.stop_sending()
            return
        from core.tracking.network import parse_host_port

        try:
            host, port = parse_host_port(dpg.get_value(self.send_to))
            self.controller.start_sending(host, port, dpg.get_value(self.protocol).lower())
        except (OSError, ValueError) as e:
            dpg.set_value(self.send_box, False)
            self.session.say(f"cannot send: {e}", logging.ERROR)
            return
        self.session.say(f"sending {dpg.get_value(self.protocol)} to {host}:{port}")

    def _on_virtual_camera(self, sender, on: bool) -> None:
        if not on:
            self.controller.stop_virtual_camera()
            return
        from core.tracking.virtualcam import VirtualCameraUnavailable

        w, h = (self.studio.width, self.studio.height) if self.studio is not None else (640, 480)
        try:
            self.controller.start_virtual_camera(w // 2 * 2, h // 2 * 2)
        except VirtualCameraUnavailable as e:
            dpg.set_value(self.vcam_box, False)
            self.session.say(str(e), logging.WARNING)

    # Actions -----------------------------------------------------------------------------------------------
    def start(self, spec: str | int | None = None, *, realtime: bool = True) -> bool:
        """Open a source (the widgets' choice when `spec` is None); errors go to the panel and the console.

        `realtime=False` tracks every frame of a file as fast as possible instead of at the file's own rate.
        """
        spec = dpg.get_value(self.spec) if spec is None else spec
        dpg.set_value(self.spec, str(spec))
        try:
            kind = parse_input_spec(spec)[0]
        except ValueError:
            kind = "network"
        dpg.set_value(self.kind, {"camera": SOURCE_KINDS[0], "network": SOURCE_KINDS[2]}.get(kind, SOURCE_KINDS[1]))
        ok = self.controller.open(spec, realtime=realtime, loop=bool(dpg.get_value(self.loop_box)))
        if not ok:
            self.session.say(f"cannot drive from {spec}: {self.controller.error}", logging.ERROR)
        else:
            self.session.say(f"driving from {self.controller.input.name}")
        self._was_running = ok
        self._show_state()
        return ok

    def stop(self) -> None:
        self.controller.close()
        self._was_running = False
        self.session.external_revision += 1  # let the other panels' sliders show the last driven values
        self._show_state()

    def toggle(self) -> None:
        self.stop() if self.controller.running else self.start()

    def replay(self) -> bool:
        path = dpg.get_value(self.rec_path)
        if not Path(path).is_file():
            self.session.say(f"no recording at {path}: record channels first", logging.WARNING)
            return False
        return self.start(path)

    def calibrate(self) -> None:
        if self.controller.calibrate_neutral():
            self.session.say("neutral face captured: hold still with a relaxed face while calibrating")
        else:
            self.session.say("nothing tracked yet: start a source and face the camera first", logging.WARNING)

    # Frame loop --------------------------------------------------------------------------------------------
    def tick(self, dt: float) -> None:
        c = self.controller
        update = c.poll()
        if self._was_running and not c.running:  # the input failed (camera lost): say so, keep the studio going
            self._was_running = False
            self.session.say(f"driving stopped: {c.error}; fix it and press Start again", logging.ERROR)
            self.session.external_revision += 1
            self._show_state()
        if update is None:
            return
        self.session.apply_live(apply_channels(self.session.edit, update.driving.channels))
        self._pending, self._pending_edit = update, self.session.edit  # its latency ends at a picture of this edit
        self._last_update = update
        self.frames_applied += 1
        if update.frame is not None:
            self.camera_preview = preview_image(update.frame.image, update.landmarks, *PREVIEW)
            dpg.set_value(self.texture, self.camera_preview.ravel())
        now = time.perf_counter()
        self._curves.append((now - self._t0, dict(update.driving.channels)))
        self._update_curves()
        self._update_channels(update.driving.channels)
        self._show_state()

    def on_preview(self, image: np.ndarray, t: float) -> None:
        """A new preview image was drawn (`t`: perf_counter); measure latency, feed the video and camera outputs."""
        self.controller.emit_preview(image, t)
        shown = self.studio.shown if self.studio is not None else None
        if shown is not None and shown.request.edit is not self._pending_edit:
            return  # a picture asked for before the update was applied (or of a later edit): not its latency
        update, self._pending = self._pending, None
        if update is None:
            return
        timings = dict(update.driving.timings_ms)
        self.latency_ms = {k: float(timings.get(k, 0.0)) for k in LATENCY_KEYS[:3]}
        self.latency_ms["decode"] = self.session.decode_ms
        self.latency_ms["render"] = self.studio.viewport.render_ms if self.studio is not None else 0.0
        self.latency_ms["total"] = 1e3 * (t - update.driving.t_capture)
        parts = " | ".join(f"{k} {self.latency_ms[k]:.0f}" for k in LATENCY_KEYS)
        dpg.set_value(
            self.latency_text,
            f"{parts} ms\nframe->preview {self.latency_ms['total']:.0f} ms | tracking {self.controller.fps:.1f} FPS",
        )

    def _update_curves(self) -> None:
        if not self._curves:
            return
        t_now = self._curves[-1][0]
        recent = [(t, ch) for t, ch in self._curves if t >= t_now - CURVE_SECONDS]
        xs = [t - t_now for t, _ in recent]
        for combo, (unit, deg) in zip(self.curve_combos, self.series, strict=True):
            name = dpg.get_value(combo)
            ys = [ch.get(name, 0.0) for _, ch in recent]
            on, off = (unit, deg) if name.startswith("expr.") else (deg, unit)
            dpg.set_value(on, [xs, ys])
            dpg.set_value(off, [[], []])
            dpg.set_item_label(on, name)
            dpg.show_item(on)
            dpg.hide_item(off)  # keeps the legend to the three chosen channels
        dpg.set_axis_limits(self.x_axis, -CURVE_SECONDS, 0.0)
        dpg.fit_axis_data(self.y_deg)

    def _update_channels(self, channels) -> None:
        names = self.controller.channel_names
        if len(names) != self._listed:
            self._listed = len(names)
            ordered = sorted(names)
            dpg.configure_item(self.channel_list, items=ordered)
            for combo in self.curve_combos:
                dpg.configure_item(combo, items=ordered)
        name = dpg.get_value(self.channel_list)
        if name in channels:
            dpg.set_value(self.value_text, f"value: {channels[name]:+.3f}")

    def _show_state(self) -> None:
        c = self.controller
        dpg.set_item_label(self.start_button, "Stop" if c.running else "Start")
        if c.running:
            extra = " (finished: the last frame holds)" if c.finished else ""
            text = f"driving from {c.input.name}: {self.frames_applied} frames applied{extra}"
            dpg.configure_item(self.state_text, color=(160, 220, 160))
        elif c.error:
            text = f"stopped: {c.error}"
            dpg.configure_item(self.state_text, color=ERROR_COLOUR)
        else:
            text = "stopped"
            dpg.configure_item(self.state_text, color=(200, 200, 200))
        dpg.set_value(self.state_text, text)

    def close(self) -> None:
        """Stop the input and finish open files (the studio calls this when it closes)."""
        self.controller.shutdown()
