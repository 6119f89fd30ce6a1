"""Hair and garment panel: show/hide, recolour, swap from another avatar, looseness, part-label view."""

from __future__ import annotations

from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.gallery import gallery
from app.panels.base import Panel, set_if_changed
from app.session import Session
from core.raster.parts import part_counts
from core.raster.types import PART_NAMES

LOOSE_PARTS = ("upper_garment", "lower_garment", "hair")
OWN = "(own)"


class PartsPanel(Panel):
    title = "Hair & garments"
    rebuild_on_avatar = True

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.rows: dict[str, dict[str, int | str]] = {}

    def build(self, parent: int | str) -> None:
        counts = part_counts(self.session.avatar.canonical())
        donors = [n for n in gallery() if n != self.session.avatar.name]
        loose = bool(getattr(self.session.avatar, "supports_looseness", False))
        self.rows = {}
        with dpg.group(parent=parent) as self.root:
            with dpg.group(horizontal=True):
                self.label_view = dpg.add_checkbox(label="part-label view", callback=self._on_label_view)
                dpg.add_button(label="Reset all parts", callback=lambda: self.reset())
            for part in PART_NAMES:
                n = counts.get(part, 0)
                with dpg.collapsing_header(
                    label=f"{part.replace('_', ' ')} ({n:,} splats)", default_open=part == "hair"
                ):
                    row: dict[str, int | str] = {}
                    row["visible"] = dpg.add_checkbox(
                        label="visible", callback=self._on_edit, user_data=(part, "visible")
                    )
                    row["hue"] = dpg.add_slider_float(
                        label="hue",
                        min_value=-0.5,
                        max_value=0.5,
                        width=180,
                        callback=self._on_edit,
                        user_data=(part, "hue"),
                    )
                    row["saturation"] = dpg.add_slider_float(
                        label="saturation", min_value=0.0, max_value=2.0, width=180, callback=self._on_edit,
                        user_data=(part, "saturation"),
                    )  # fmt: skip
                    row["brightness"] = dpg.add_slider_float(
                        label="brightness", min_value=0.0, max_value=2.0, width=180, callback=self._on_edit,
                        user_data=(part, "brightness"),
                    )  # fmt: skip
                    if part in LOOSE_PARTS and loose:
                        row["looseness"] = dpg.add_slider_float(
                            label="looseness", min_value=0.0, max_value=2.0, width=180, callback=self._on_edit,
                            user_data=(part, "looseness"),
                        )  # fmt: skip
                    elif part in LOOSE_PARTS:
                        dpg.add_text("looseness: needs a model avatar with the garment deformer", color=(140, 140, 150))
                    row["swap_from"] = dpg.add_combo(
                        [OWN, *donors], label="take from", default_value=OWN, width=180, callback=self._on_swap,
                        user_data=part,
                    )  # fmt: skip
                    self.rows[part] = row
        self.refresh()

    def _on_swap(self, sender, value, part: str) -> None:
        self.swap(part, "" if value == OWN else value)

    def swap(self, part: str, donor: str) -> None:
        """Take `part` from the gallery avatar `donor` ("" = the avatar's own)."""
        if donor:
            self.session.say(f"taking {part.replace('_', ' ')} from {donor}")
        self.set_part(part, swap_from=donor)

    def _on_edit(self, sender, value, user_data: tuple[str, str]) -> None:
        part, field = user_data
        self.set_part(part, **{field: value if isinstance(value, bool | str) else float(value)})

    def set_part(self, part: str, **changes) -> None:
        key = f"part:{part}:{','.join(sorted(changes))}"
        self.session.apply(self.session.edit.with_part(part, **changes), key=key)

    def _on_label_view(self, sender, value) -> None:
        self.set_label_view(bool(value))

    def set_label_view(self, on: bool) -> None:
        s = self.session
        s.apply(replace(s.edit, view_mode="parts" if on else "full"), external=True)

    def reset(self) -> None:
        s = self.session
        s.apply(replace(s.edit, parts=type(s.edit)().parts), external=True)

    def refresh(self) -> None:
        edit = self.session.edit
        if not self.rows:
            return
        set_if_changed(self.label_view, edit.view_mode == "parts")
        for part, row in self.rows.items():
            e = edit.part(part)
            for field, item in row.items():
                value = getattr(e, field)
                set_if_changed(item, (value or OWN) if field == "swap_from" else value)
