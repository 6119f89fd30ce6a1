"""Expression panel: one slider per coefficient grouped by face region, symmetry lock, gaze, presets."""

from __future__ import annotations

import random
from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.panels.base import Panel, set_if_changed
from app.presets import load_expression_presets
from app.session import Session

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Brows", ("brow",)),
    ("Eyes", ("eye",)),
    ("Cheeks", ("cheek",)),
    ("Nose", ("nose",)),
    ("Jaw", ("jaw",)),
    ("Mouth", ("mouth",)),
    ("Tongue", ("tongue",)),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, prefixes in GROUPS:
        if low.startswith(prefixes):
            return group
    return "Other"


def mirror_name(name: str) -> str | None:
    """The left/right twin of an ARKit-style name (eyeBlinkLeft <-> eyeBlinkRight), or None."""
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return None


class ExpressionPanel(Panel):
    title = "Expression"
    rebuild_on_avatar = True

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.presets = load_expression_presets()
        self.sliders: dict[str, int | str] = {}
        self.symmetry = True
        self._rng = random.Random(0)

    def build(self, parent: int | str) -> None:
        names = self.session.avatar.controls.expression_names
        self.sliders = {}
        with dpg.group(parent=parent) as self.root:
            if not names:
                dpg.add_text("This avatar has no expression controls.", color=(200, 160, 80))
                return
            with dpg.group(horizontal=True):
                dpg.add_checkbox(label="symmetry lock", default_value=self.symmetry, callback=self._on_symmetry)
                dpg.add_button(label="Randomise", callback=lambda: self.randomise())
                dpg.add_button(label="Reset", callback=lambda: self.reset())
            dpg.add_text("Presets")
            names_ = list(self.presets)
            for row in range(0, len(names_), 5):
                with dpg.group(horizontal=True):
                    for name in names_[row : row + 5]:
                        dpg.add_button(label=name.replace("viseme_", "v:"), callback=self._on_preset, user_data=name)
            dpg.add_text("Gaze (degrees)")
            self.gaze_yaw = dpg.add_slider_float(label="yaw", min_value=-35, max_value=35, callback=self._on_gaze)
            self.gaze_pitch = dpg.add_slider_float(label="pitch", min_value=-25, max_value=25, callback=self._on_gaze)
            present = {}
            for n in names:
                present.setdefault(group_of(n), []).append(n)
            for group, _ in (*GROUPS, ("Other", ())):
                if group not in present:
                    continue
                with dpg.collapsing_header(
                    label=f"{group} ({len(present[group])})", default_open=group in ("Mouth", "Eyes")
                ):
                    for n in present[group]:
                        self.sliders[n] = dpg.add_slider_float(
                            label=n, min_value=0.0, max_value=1.0, width=170, callback=self._on_slider, user_data=n
                        )
        self.refresh()

    # Intent ---------------------------------------------------------------------------------
    def _on_symmetry(self, sender, value) -> None:
        self.symmetry = bool(value)

    def _on_slider(self, sender, value, name: str) -> None:
        self.set_coefficient(name, float(value))

    def _on_gaze(self, sender, value) -> None:
        s = self.session
        s.apply(replace(s.edit, gaze_deg=(dpg.get_value(self.gaze_yaw), dpg.get_value(self.gaze_pitch))), key="gaze")

    def _on_preset(self, sender, value, name: str) -> None:
        self.apply_preset(name)

    def set_coefficient(self, name: str, value: float) -> None:
        values = {name: value}
        twin = mirror_name(name)
        if self.symmetry and twin is not None and twin in self.sliders:
            values[twin] = value
        self.session.apply(self.session.edit.with_expression(values), key=f"expr:{name}")
        if twin in values:
            set_if_changed(self.sliders[twin], value)

    def apply_preset(self, name: str) -> None:
        if name not in self.presets:
            raise ValueError(f"unknown expression preset {name!r}; choose one of {', '.join(self.presets)}")
        known = set(self.session.avatar.controls.expression_names)
        values = {k: v for k, v in self.presets[name].items() if k in known}
        cleared = replace(self.session.edit, expression=()).with_expression(values)
        self.session.apply(cleared, external=True)
        self.session.say(f"expression preset: {name}")

    def reset(self) -> None:
        """Neutral face, eyes straight ahead."""
        self.session.apply(replace(self.session.edit, expression=(), gaze_deg=(0.0, 0.0)), external=True)

    def randomise(self) -> None:
        names = self.session.avatar.controls.expression_names
        chosen = self._rng.sample(names, k=min(6, len(names)))
        values = {n: round(self._rng.uniform(0.2, 0.9), 2) for n in chosen}
        self.session.apply(replace(self.session.edit, expression=()).with_expression(values), external=True)

    def refresh(self) -> None:
        if not self.sliders:
            return
        edit = self.session.edit
        for name, item in self.sliders.items():
            set_if_changed(item, edit.expression_of(name))
        set_if_changed(self.gaze_yaw, edit.gaze_deg[0])
        set_if_changed(self.gaze_pitch, edit.gaze_deg[1])
