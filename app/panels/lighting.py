"""Lighting panel: environment presets, rotation, intensity, colour temperature, key light, view modes."""

from __future__ import annotations

import math
from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.panels.base import Panel, set_if_changed
from app.session import Session
from core.body.frame import VIEW_MODES

DIAL = 110  # pixels of the key-light direction widget


class LightingPanel(Panel):
    title = "Lighting"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.items: dict[str, int | str] = {}

    def build(self, parent: int | str) -> None:
        s = self.session
        it = self.items
        with dpg.group(parent=parent) as self.root:
            it["preset"] = dpg.add_combo(list(s.environments), label="environment", width=150, callback=self._on_preset)
            it["view_mode"] = dpg.add_radio_button(VIEW_MODES, horizontal=True, callback=self._on_view_mode)
            it["rotation_deg"] = self._slider("rotation (deg)", "rotation_deg", -180, 180)
            it["intensity"] = self._slider("intensity", "intensity", 0.0, 3.0)
            it["temperature_k"] = self._slider("temperature (K)", "temperature_k", 1800, 12000)
            dpg.add_separator()
            dpg.add_text("Key light: drag in the dial (azimuth around, elevation from the centre)", wrap=440)
            with dpg.group(horizontal=True):
                with dpg.drawlist(width=DIAL, height=DIAL) as self.dial:
                    dpg.draw_circle((DIAL / 2, DIAL / 2), DIAL / 2 - 2, color=(120, 120, 130), thickness=1)
                    dpg.draw_circle((DIAL / 2, DIAL / 2), DIAL / 4, color=(70, 70, 80), thickness=1)
                    self.dial_dot = dpg.draw_circle(
                        (DIAL / 2, DIAL / 2), 6, fill=(255, 220, 120), color=(255, 255, 255)
                    )
                with dpg.group():
                    it["key_azimuth_deg"] = self._slider("azimuth", "key_azimuth_deg", -180, 180, width=140)
                    it["key_elevation_deg"] = self._slider("elevation", "key_elevation_deg", -10, 90, width=140)
                    it["key_intensity"] = self._slider("key intensity", "key_intensity", 0.0, 2.0, width=140)
            with dpg.item_handler_registry() as reg:
                dpg.add_item_clicked_handler(callback=self._on_dial)
            dpg.bind_item_handler_registry(self.dial, reg)
            it["key_color"] = dpg.add_color_edit(
                label="key colour",
                no_alpha=True,
                width=200,
                callback=self._on_color,
                display_type=dpg.mvColorEdit_float,
            )
        self.refresh()

    def _slider(self, label: str, field: str, lo: float, hi: float, width: int = 200) -> int | str:
        return dpg.add_slider_float(
            label=label, min_value=lo, max_value=hi, width=width, callback=self._on_field, user_data=field
        )

    # Intent ---------------------------------------------------------------------------------
    def set_lighting(self, key: str | None = None, **changes) -> None:
        s = self.session
        s.apply(replace(s.edit, lighting=replace(s.edit.lighting, **changes)), key=key)

    def _on_field(self, sender, value, field: str) -> None:
        self.set_lighting(key=f"light:{field}", **{field: float(value)})

    def _on_color(self, sender, value) -> None:
        # Dear PyGui colour values are on a 0-255 scale.
        self.set_lighting(key="light:key_color", key_color=tuple(float(v) / 255.0 for v in value[:3]))

    def _on_preset(self, sender, value) -> None:
        self.apply_preset(value)

    def apply_preset(self, name: str) -> None:
        s = self.session
        if name not in s.environments:
            raise ValueError(f"unknown environment {name!r}; choose one of {', '.join(s.environments)}")
        s.apply(replace(s.edit, lighting=s.environments[name].as_edit()), external=True)

    def _on_view_mode(self, sender, value) -> None:
        self.set_view_mode(value)

    def set_view_mode(self, mode: str) -> None:
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; choose one of {', '.join(VIEW_MODES)}")
        s = self.session
        s.apply(replace(s.edit, view_mode=mode), external=True)

    def _on_dial(self, sender, app_data) -> None:
        mx, my = dpg.get_drawing_mouse_pos()
        dx, dy = mx - DIAL / 2, my - DIAL / 2
        r = min(1.0, math.hypot(dx, dy) / (DIAL / 2 - 2))
        self.set_lighting(
            key="light:dial", key_azimuth_deg=math.degrees(math.atan2(dx, -dy)), key_elevation_deg=90.0 * (1.0 - r)
        )
        self.session.external_revision += 1

    def refresh(self) -> None:
        if not self.items:
            return
        light = self.session.edit.lighting
        for field, item in self.items.items():
            if field == "view_mode":
                set_if_changed(item, self.session.edit.view_mode)
            elif field == "key_color":
                set_if_changed(item, [255.0 * c for c in light.key_color] + [255.0])
            else:
                set_if_changed(item, getattr(light, field))
        r = (1.0 - light.key_elevation_deg / 90.0) * (DIAL / 2 - 2)
        az = math.radians(light.key_azimuth_deg)
        dpg.configure_item(self.dial_dot, center=(DIAL / 2 + r * math.sin(az), DIAL / 2 - r * math.cos(az)))
