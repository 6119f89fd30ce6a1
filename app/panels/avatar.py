"""Avatar panel: gallery, open/save, exports (.ply, PNG snapshot, turntable mp4), progress."""

from __future__ import annotations

import logging
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.gallery import gallery, user_dir
from app.panels.base import Panel
from app.session import Session
from core.paths import user_data_dir


class AvatarPanel(Panel):
    title = "Avatar"

    def __init__(self, session: Session, actions) -> None:
        super().__init__(session)
        self.actions = actions  # the studio: open_gallery(name), save_avatar(path), export_ply(path), ...
        self.entries = gallery()

    def build(self, parent: int | str) -> None:
        with dpg.group(parent=parent) as self.root:
            dpg.add_text("Gallery")
            self.list = dpg.add_listbox(list(self.entries), num_items=6, width=260)
            with dpg.group(horizontal=True):
                dpg.add_button(
                    label="Open selected", callback=lambda: self.actions.open_gallery(dpg.get_value(self.list))
                )
                dpg.add_button(label="Open file...", callback=lambda: dpg.show_item(self.open_dialog))
            self.name_text = dpg.add_text("", wrap=440)
            dpg.add_separator()
            dpg.add_text("Save and export")
            self.out_dir = dpg.add_input_text(label="folder", default_value=str(user_data_dir("studio_out")), width=340)
            with dpg.group(horizontal=True):
                dpg.add_button(
                    label="Save avatar", callback=lambda: self.actions.save_avatar(self._out("avatar.safetensors"))
                )
                dpg.add_button(label="Export .ply", callback=lambda: self.actions.export_ply(self._out("avatar.ply")))
            with dpg.group(horizontal=True):
                dpg.add_button(label="Snapshot PNG", callback=lambda: self.actions.snapshot(self._out("snapshot.png")))
                dpg.add_button(
                    label="Turntable mp4", callback=lambda: self.actions.turntable(self._out("turntable.mp4"))
                )
            self.progress = dpg.add_progress_bar(default_value=0.0, width=260, overlay="idle")
            with dpg.file_dialog(
                show=False, callback=self._on_file, width=640, height=420, directory_selector=False
            ) as self.open_dialog:
                dpg.add_file_extension("Avatars (*.safetensors *.ply){.safetensors,.ply}")
                dpg.add_file_extension(".*")
        self.refresh()

    def save_to_gallery(self, name: str) -> None:
        """Save the avatar into the user's gallery folder under `name` and list it."""
        safe = "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in name).strip()
        if not safe:
            self.session.say("type a name for the avatar before saving it", logging.WARNING)
            return
        folder = user_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.actions.save_avatar(str(folder / f"{safe}.safetensors"), then=lambda _: self._list_gallery())

    def _list_gallery(self) -> None:
        self.entries = gallery()
        dpg.configure_item(self.list, items=list(self.entries))

    def _out(self, name: str) -> str:
        return str(Path(dpg.get_value(self.out_dir)) / name)

    def _on_file(self, sender, app_data) -> None:
        path = app_data.get("file_path_name") if isinstance(app_data, dict) else None
        if path:
            self.actions.open_file(path)

    def set_progress(self, fraction: float, text: str) -> None:
        if self.root:
            dpg.set_value(self.progress, fraction)
            dpg.configure_item(self.progress, overlay=text)

    def refresh(self) -> None:
        if not self.root:
            return
        a = self.session.avatar
        dpg.set_value(self.name_text, f"Loaded: {a.name}\n{a.description}")
