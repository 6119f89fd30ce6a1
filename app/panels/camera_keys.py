"""Camera keyframes panel: set, edit and play a camera path on a timeline; render it to mp4."""

from __future__ import annotations

import logging

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
            with dpg.group(horizontal=True):
                self.out_file = dpg.add_input_text(default_value="camera_path.mp4", width=160)
                dpg.add_button(
                    label="Render mp4", callback=lambda: self._render_video(self.path, dpg.get_value(self.out_file))
                )
        self.refresh()

    def add_key(self) -> None:
        self.path = self.path.with_key(self.time, self.session.view)
        self.session.say(f"camera key at {self.time:.2f} s ({len(self.path.keys)} keys)")
        self.refresh()

    def delete_selected(self) -> None:
        label = dpg.get_value(self.key_list)
        labels = self._labels()
        if label in labels:
            self.path = self.path.without(labels.index(label))
            self.refresh()

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
