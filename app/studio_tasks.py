"""The studio's long tasks and the actions its panels call (open, save, export, snapshot, videos).

A task runs on the preview worker's thread (`app.preview_worker`), reports its progress to the bar under the
preview, and hands its result to the GUI thread when it finished; a failure goes to the console and the studio
carries on. `StudioTasks` is a part of `app.studio.Studio` (its base class) and uses the studio's session,
settings, worker and widgets.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from app import exports
from app.avatar_source import StudioAvatar, load_avatar
from app.camera_path import CameraPath
from app.gallery import gallery
from app.tasks import Task
from app.viewport import Viewport


def fit_text(text: str, width_px: int, char_px: int = 7) -> str:
    """`text` cut to what a bar `width_px` wide shows in the default font (a longer overlay is clipped at its start)."""
    most = max(4, (width_px - 8) // char_px)
    return text if len(text) <= most else text[: most - 3] + "..."


class StudioTasks:
    """Long tasks and file actions of the studio (a base class of `app.studio.Studio`)."""

    def run_task(self, name: str, work, on_done=None, *, failure: str | None = None) -> Task:
        """Run `work(task, viewport)` on the preview worker's thread (it may call `task.report(f, text)`).

        `on_done(result)` runs on the GUI thread once it finished; a failure goes to the console as
        "`failure`: reason" (default: "name failed"). The progress bar under the preview shows its time left.
        """
        task = Task(name)
        self._tasks.append((task, on_done, failure or f"{name} failed"))
        self._task_shown = task
        return self.worker.submit_task(task, work)

    def cancel_tasks(self) -> None:
        for task, _, _ in self._tasks:
            task.cancel()

    def wait(self, task: Task | None, timeout: float = 120.0) -> bool:
        """Run frames until `task` finished and its result was applied; True when it succeeded."""
        if task is None:
            return False
        end = time.perf_counter() + timeout
        while any(t is task for t, _, _ in self._tasks) and time.perf_counter() < end:
            self.step()
            time.sleep(0.005)
        return task.done and task.error is None

    def _poll_tasks(self) -> None:
        for entry in [e for e in self._tasks if e[0].done]:
            self._tasks.remove(entry)
            task, on_done, failure = entry
            if task.error == "cancelled":
                self.session.say(f"{task.name}: cancelled", logging.WARNING)
            elif task.error is not None:
                self.session.say(f"{failure}: {task.error}", logging.ERROR)
            elif on_done is not None:
                on_done(task.result)
        running = [t for t, _, _ in self._tasks]
        task = running[0] if running else self._task_shown
        if task is not None:
            dpg.set_value(self.task_bar, task.fraction if task.error is None else 0.0)
            dpg.configure_item(self.task_bar, overlay=fit_text(task.overlay(), self.width - 70))
            self.avatar_panel.set_progress(task.fraction if task.error is None else 0.0, fit_text(task.overlay(), 260))
        dpg.configure_item(self.cancel_button, enabled=bool(running))

    # Actions (called by panels) --------------------------------------------------------------
    def open_gallery(self, name: str) -> Task | None:
        entries = gallery()
        if name not in entries:
            self.session.say(f"pick an avatar in the gallery first (got {name!r})", logging.WARNING)
            return None
        return self.run_task(
            f"opening {name}", lambda task, vp: entries[name](), self.session.set_avatar,
            failure=f"could not open {name}",
        )  # fmt: skip

    def open_file(self, path: str) -> Task:
        def opened(avatar: StudioAvatar) -> None:
            self.session.set_avatar(avatar, Path(path))
            self.settings.last_avatar = str(path)

        return self.run_task(
            f"opening {Path(path).name}", lambda task, vp: load_avatar(path), opened, failure="could not open avatar"
        )

    def save_avatar(self, path: str, then=None) -> Task | None:
        save = getattr(self.session.avatar, "save", None)
        if save is None:
            self.session.say(
                f"{self.session.avatar.name} is an example without an avatar file; use 'Export .ply' to keep it",
                logging.WARNING,
            )
            return None
        return self._write("saving avatar", lambda task, vp: save(path), f"saved avatar to {path}", then)

    def export_ply(self, path: str) -> Task:
        return self._write(
            "exporting .ply", lambda task, vp: exports.export_ply(self.session, path), f"exported {path}"
        )

    def snapshot(self, path: str) -> Task:
        work = lambda task, vp: exports.snapshot_png(self.session, vp, path)  # noqa: E731
        return self._write("snapshot", work, f"saved snapshot {path}")

    def turntable(self, path: str, num_frames: int = 60) -> Task:
        views = exports.turntable_views(self.session.view, num_frames)
        return self._video(path, views, "turntable")

    def render_camera_path(self, path: CameraPath, file: str) -> Task | None:
        if len(path.keys) < 2:
            self.session.say("add at least two camera keys before rendering the path", logging.WARNING)
            return None
        return self._video(file, path.frames(30), "camera path")

    def _video(self, path: str, views, what: str) -> Task:
        def work(task: Task, viewport: Viewport):
            def progress(f: float) -> None:
                task.report(f, f"frame {round(f * len(views))}/{len(views)}")

            frames = exports.render_views(self.session, viewport, views, progress=progress)
            return exports.write_video(path, frames)

        return self._write(f"rendering {what}", work, f"wrote {what} video {path}")

    def _write(self, name: str, work, done: str, then=None) -> Task:
        """A file-writing task; failures go to the console instead of stopping the studio."""

        def finished(result) -> None:
            self.session.say(done)
            if then is not None:
                then(result)

        return self.run_task(name, work, finished, failure="could not write")
