"""Camera keyframes panel: set, edit and play a camera path on a timeline; render it to mp4."""

from __future__ import annotations

import logging
from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.camera_path import CameraPath
from app.panels.base import Panel, set_if_changed
from app.session import Session


class CameraKeysPanel(Panel):
    title = "Camera path"

    def __init__(self, session: Session, render_video) -> None:
        super().__init__(session)
        self.path = CameraPath()
        self.time = 0.0
        self.playing = False
        self._render_video = render_video  # (path: CameraPath, file: str) -> None

    def build(self, parent: int | str) -> None:
        with dpg.group(parent=parent) as self.root:
            dpg.add_text("Move the preview, pick a time, then 'Add key'.")
            self.timeline = dpg.add_slider_float(
                label="time (s)", min_value=0.0, max_value=10.0, width=220, callback=self._on_scrub
            )
            with dpg.group(horizontal=True):
                dpg.add_button(label="Add key", callback=lambda: self.add_key())
                dpg.add_button(label="Delete key", callback=lambda: self.delete_selected())
                self.play_button = dpg.add_button(label="Play", callback=lambda: self.toggle_play())
            self.key_list = dpg.add_listbox([], num_items=6, width=260, callback=self._on_pick_key)
            dpg.add_text("Selected key (type values, then 'Apply'):", color=(170, 190, 210))
            self.key_time = dpg.add_input_float(label="time (s)", width=160, min_value=0.0, min_clamped=True)
            self.key_yaw = dpg.add_input_float(label="yaw (deg)", width=160)
            self.key_pitch = dpg.add_input_float(
                label="pitch (deg)", width=160, min_value=-89.0, max_value=89.0, min_clamped=True, max_clamped=True
            )
            self.key_distance = dpg.add_input_float(
                label="distance (m)", width=160, min_value=0.1, min_clamped=True, step=0.1
            )
            self.key_target = dpg.add_input_floatx(label="target x, y, z (m)", size=3, width=220, format="%.3f")
            dpg.add_button(label="Apply to selected key", callback=lambda: self.apply_fields())
            with dpg.group(horizontal=True):
                self.out_file = dpg.add_input_text(default_value="camera_path.mp4", width=160)
                dpg.add_button(
                    label="Render mp4", callback=lambda: self._render_video(self.path, dpg.get_value(self.out_file))
                )
        self.refresh()

    def add_key(self) -> None:
        """Key the preview's view at the timeline's time; the new key is selected and its values shown."""
        self.path = self.path.with_key(self.time, self.session.view)
        self.session.say(f"camera key at {self.time:.2f} s ({len(self.path.keys)} keys)")
        self.refresh()
        self.show_key(self._index_at(self.time))

    def delete_selected(self) -> None:
        label = dpg.get_value(self.key_list)
        labels = self._labels()
        if label in labels:
            self.path = self.path.without(labels.index(label))
            self.refresh()
            if self.path.keys:
                self.show_key(min(labels.index(label), len(self.path.keys) - 1))

    def _index_at(self, time: float) -> int:
        """The key at `time` (keys within 1 ms are one key; times below 0 are keyed at 0)."""
        return next(i for i, k in enumerate(self.path.keys) if abs(k.time - max(0.0, time)) <= 1e-3)

    def selected_index(self) -> int | None:
        labels = self._labels()
        label = dpg.get_value(self.key_list)
        return labels.index(label) if label in labels else None

    def show_key(self, index: int) -> None:
        """Select key #`index` and fill the numeric fields with its time and view."""
        key = self.path.keys[index]
        dpg.set_value(self.key_list, self._labels()[index])
        v = key.view
        for item, value in (
            (self.key_time, key.time),
            (self.key_yaw, v.yaw_deg),
            (self.key_pitch, v.pitch_deg),
            (self.key_distance, v.distance),
        ):
            dpg.set_value(item, float(value))
        dpg.set_value(self.key_target, [float(x) for x in v.target])

    def apply_fields(self) -> bool:
        """Write the numeric fields into the selected key; the preview jumps to it."""
        index = self.selected_index()
        if index is None:
            self.session.say("select a camera key in the list before editing its values", logging.WARNING)
            return False
        target = tuple(round(float(x), 6) for x in dpg.get_value(self.key_target)[:3])  # float32 widget values
        view = replace(
            self.path.keys[index].view,
            yaw_deg=float(dpg.get_value(self.key_yaw)),
            pitch_deg=float(dpg.get_value(self.key_pitch)),
            distance=float(dpg.get_value(self.key_distance)),
            target=target,
        )
        time = float(dpg.get_value(self.key_time))
        try:
            self.path = self.path.edited(index, time, view)
        except (ValueError, IndexError) as e:
            self.session.say(f"camera key not changed: {e}", logging.ERROR)
            return False
        self.time = time
        self.session.set_view(view)
        self.refresh()
        self.show_key(self._index_at(time))
        set_if_changed(self.timeline, self.time)
        self.session.say(f"camera key at {time:.2f} s set to yaw {view.yaw_deg:.1f}, distance {view.distance:.2f}")
        return True

    def toggle_play(self) -> None:
        if len(self.path.keys) < 2:
            self.session.say("a camera path needs at least two keys to play", logging.WARNING)
            return
        self.playing = not self.playing
        if self.playing and self.time >= self.path.duration:
            self.time = 0.0

    def _on_scrub(self, sender, value) -> None:
        self.time = float(value)
        if self.path.keys:
            self.session.set_view(self.path.sample(self.time))

    def _on_pick_key(self, sender, value) -> None:
        labels = self._labels()
        if value in labels:
            key = self.path.keys[labels.index(value)]
            self.time = key.time
            self.session.set_view(key.view)
            set_if_changed(self.timeline, self.time)
            self.show_key(labels.index(value))

    def _labels(self) -> list[str]:
        return [
            f"#{i}  t={k.time:5.2f}s  yaw={k.view.yaw_deg:6.1f}  d={k.view.distance:4.2f}"
            for i, k in enumerate(self.path.keys)
        ]

    def tick(self, dt: float) -> None:
        if not self.playing:
            return
        self.time += dt
        if self.time >= self.path.duration:
            self.time, self.playing = self.path.duration, False
        self.session.set_view(self.path.sample(self.time))
        set_if_changed(self.timeline, self.time)
        dpg.configure_item(self.play_button, label="Pause" if self.playing else "Play")

    def refresh(self) -> None:
        if not self.root:
            return
        dpg.configure_item(self.key_list, items=self._labels())
        dpg.configure_item(self.timeline, max_value=max(10.0, self.path.duration + 2.0))
