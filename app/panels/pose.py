"""Pose panel: joint tree with per-joint rotation sliders, pose presets, looping motion clips, root translation."""

from __future__ import annotations

from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.panels.base import Panel, set_if_changed
from app.presets import body_model_clips, load_clips, load_pose_presets, pose_from_rotations
from app.session import Session


class PosePanel(Panel):
    title = "Pose"
    rebuild_on_avatar = True

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.presets = load_pose_presets()
        self.clips = load_clips()
        self.selected: str | None = None
        self.clip: str | None = None
        self.playing = False
        self.clip_time = 0.0
        self._tree_items: dict[str, int | str] = {}

    def build(self, parent: int | str) -> None:
        rig = self.session.avatar.controls
        self._tree_items = {}
        self.clips = {**load_clips(), **(body_model_clips(rig.joint_names) if rig.joint_names else {})}
        with dpg.group(parent=parent) as self.root:
            if not rig.joint_names:
                dpg.add_text("This avatar has no skeleton to pose.", color=(200, 160, 80))
                return
            dpg.add_text("Presets")
            names = list(self.presets)
            for row in range(0, len(names), 4):
                with dpg.group(horizontal=True):
                    for name in names[row : row + 4]:
                        dpg.add_button(label=name, width=70, callback=self._on_preset, user_data=name)
            dpg.add_separator()
            dpg.add_text("Motion clip")
            with dpg.group(horizontal=True):
                self.clip_combo = dpg.add_combo(list(self.clips), width=150, callback=self._on_clip, default_value="")
                self.play_button = dpg.add_button(label="Play", width=60, callback=lambda: self.toggle_play())
            self.timeline = dpg.add_slider_float(
                label="time (s)", min_value=0.0, max_value=1.0, callback=self._on_scrub
            )
            dpg.add_separator()
            dpg.add_text("Root translation (m)")
            self.root_sliders = [
                dpg.add_slider_float(label=axis, min_value=-1.0, max_value=1.0, callback=self._on_root, width=200)
                for axis in "xyz"
            ]
            dpg.add_separator()
            self.joint_label = dpg.add_text("Joint: (pick one in the tree)")
            self.rot_sliders = [
                dpg.add_slider_float(
                    label=f"{axis} deg", min_value=-180, max_value=180, callback=self._on_rotation, width=200
                )
                for axis in "xyz"
            ]
            dpg.add_button(label="Zero this joint", callback=lambda: self.set_rotation(self.selected, (0.0, 0.0, 0.0)))
            with dpg.child_window(height=260, border=True):
                self._build_tree(rig.joint_names, rig.joint_parents)
        self.refresh()

    def _build_tree(self, names: tuple[str, ...], parents: tuple[int, ...]) -> None:
        children: dict[int, list[int]] = {}
        for j, p in enumerate(parents):
            children.setdefault(p, []).append(j)

        def add(j: int, parent: int | str) -> None:
            kids = children.get(j, [])
            if kids:
                node = dpg.add_tree_node(label=names[j], parent=parent, default_open=j == 0, selectable=True)
                with dpg.item_handler_registry() as reg:
                    dpg.add_item_clicked_handler(callback=self._on_pick, user_data=names[j])
                dpg.bind_item_handler_registry(node, reg)
                self._tree_items[names[j]] = node
                for k in kids:
                    add(k, node)
            else:
                self._tree_items[names[j]] = dpg.add_selectable(
                    label=names[j], parent=parent, callback=lambda s, a, u: self.select(u), user_data=names[j]
                )

        group = dpg.last_container()
        for root in children.get(-1, []):
            add(root, group)

    # Intent ---------------------------------------------------------------------------------
    def _on_pick(self, sender, app_data, name: str) -> None:
        self.select(name)

    def select(self, joint: str) -> None:
        self.selected = joint
        self.refresh()

    def _on_rotation(self, sender, value) -> None:
        if self.selected is None:
            self.session.say("pick a joint in the tree first")
            return
        self.set_rotation(self.selected, tuple(dpg.get_value(s) for s in self.rot_sliders))

    def set_rotation(self, joint: str | None, rot: tuple[float, float, float]) -> None:
        if joint is None:
            return
        s = self.session
        s.apply(replace(s.edit, pose=s.edit.pose.with_rotation(joint, rot)), key=f"pose:{joint}")

    def _on_root(self, sender, value) -> None:
        s = self.session
        t = tuple(float(dpg.get_value(x)) for x in self.root_sliders)
        s.apply(replace(s.edit, pose=replace(s.edit.pose, root_translation=t)), key="pose:root")

    def _on_preset(self, sender, value, name: str) -> None:
        self.apply_preset(name)

    def apply_preset(self, name: str) -> None:
        if name not in self.presets:
            raise ValueError(f"unknown pose preset {name!r}; choose one of {', '.join(self.presets)}")
        self.playing = False
        s = self.session
        pose = pose_from_rotations(self.presets[name], s.avatar.controls.joint_names)
        s.apply(replace(s.edit, pose=replace(pose, root_translation=s.edit.pose.root_translation)), external=True)
        s.say(f"pose preset: {name}")

    def _on_clip(self, sender, value) -> None:
        self.set_clip(value)

    def set_clip(self, name: str) -> None:
        if name not in self.clips:
            raise ValueError(f"unknown motion clip {name!r}; choose one of {', '.join(self.clips)}")
        self.clip, self.clip_time = name, 0.0
        dpg.configure_item(self.timeline, max_value=self.clips[name].duration)
        self.playing = True
        self._show_clip_frame(key=None)

    def toggle_play(self) -> None:
        if self.clip is None:
            self.set_clip(next(iter(self.clips)))
            return
        self.playing = not self.playing

    def _on_scrub(self, sender, value) -> None:
        if self.clip is not None:
            self.playing = False
            self.clip_time = float(value)
            self._show_clip_frame(key="clip")

    def _show_clip_frame(self, key: str | None) -> None:
        s = self.session
        rot = self.clips[self.clip].sample(self.clip_time)
        pose = pose_from_rotations(rot, s.avatar.controls.joint_names)
        # Playback frames are not undo steps; the first frame of a clip is.
        new = replace(s.edit, pose=replace(pose, root_translation=s.edit.pose.root_translation))
        if key is None and not self.playing:
            s.apply(new, external=True)
        else:
            s.apply(new, key="clip")

    def tick(self, dt: float) -> None:
        if self.playing and self.clip is not None:
            self.clip_time = (self.clip_time + dt) % self.clips[self.clip].duration
            self._show_clip_frame(key="clip")
            if self.root:
                set_if_changed(self.timeline, self.clip_time)
                dpg.configure_item(self.play_button, label="Pause")
        elif self.clip is not None and self.root and dpg.does_item_exist(self.play_button):
            dpg.configure_item(self.play_button, label="Play")

    def refresh(self) -> None:
        if not self._tree_items:
            return
        pose = self.session.edit.pose
        for slider, v in zip(self.root_sliders, pose.root_translation, strict=True):
            set_if_changed(slider, v)
        rot = pose.rotation_of(self.selected) if self.selected else (0.0, 0.0, 0.0)
        for slider, v in zip(self.rot_sliders, rot, strict=True):
            set_if_changed(slider, v)
        dpg.set_value(self.joint_label, f"Joint: {self.selected or '(pick one in the tree)'}")
