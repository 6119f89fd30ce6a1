"""The studio's console: the session's messages and warnings or errors logged anywhere, as coloured lines."""

from __future__ import annotations

import logging
import time

import dearpygui.dearpygui as dpg

from app.session import Message, Session

CONSOLE_LINES = 200  # lines kept; older ones are deleted
LEVEL_COLOURS = {logging.ERROR: (255, 110, 110), logging.WARNING: (255, 200, 90)}


class ConsoleHandler(logging.Handler):
    """Shows warnings and errors logged anywhere in the process in the studio's console."""

    def __init__(self, session: Session) -> None:
        super().__init__(level=logging.WARNING)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("app.session"):
            return  # the session's own messages are in the console already
        self.session.post(Message(record.levelno, f"{record.name}: {record.getMessage()}", record.created))


def show_new_messages(console: int | str, session: Session, shown: int, width: int) -> int:
    """Add the session's messages after the first `shown` to the `console` child window, keep its last
    CONSOLE_LINES lines and scroll to the end; returns how many messages have been shown in all."""
    new = min(session.messages_total - shown, len(session.messages))
    if new <= 0:
        return shown
    for m in list(session.messages)[len(session.messages) - new :]:
        stamp = time.strftime("%H:%M:%S", time.localtime(m.time))
        colour = LEVEL_COLOURS.get(m.level, (200, 200, 200))
        dpg.add_text(f"{stamp}  {m.text}", parent=console, color=colour, wrap=width - 20)
    old = dpg.get_item_children(console, 1)
    for item in old[: max(0, len(old) - CONSOLE_LINES)]:
        dpg.delete_item(item)
    dpg.set_y_scroll(console, dpg.get_y_scroll_max(console) + 1000)
    return session.messages_total
