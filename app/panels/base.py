"""The panel contract: build widgets once, refresh them from the session, tick once per frame."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from app.session import Session


class Panel:
    """A tab of the studio. Subclasses create items in `build` and keep their ids on `self`."""

    title = "panel"
    rebuild_on_avatar = False  # True when the widgets depend on the avatar's controls

    def __init__(self, session: Session) -> None:
        self.session = session
        self.root: int | str = 0
        self.tab: int | str = 0  # the tab that holds the panel (set by the studio)

    def build(self, parent: int | str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    def refresh(self) -> None:
        """Set every widget from the session's state (after undo/redo, presets or a new avatar)."""

    def rebuild(self) -> None:
        """Rebuild the widgets (the avatar's controls changed)."""
        parent = dpg.get_item_parent(self.root)
        dpg.delete_item(self.root)
        self.build(parent)

    def tick(self, dt: float) -> None:
        """Per-frame work (playback); `dt` seconds since the last frame."""

    def on_preview(self, image, t: float) -> None:
        """A new preview image ([H, W, 4] float32, a view: copy to keep) was drawn at perf_counter `t`."""

    def close(self) -> None:
        """Release what the panel holds (threads, files) when the studio closes."""


def set_if_changed(item: int | str, value) -> None:
    """Write a widget value only when it differs (avoids fighting a slider the user is dragging)."""
    if dpg.get_value(item) != value:
        dpg.set_value(item, value)
