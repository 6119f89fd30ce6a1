"""Create panel (capture assistant): add 1-16 photos, see each photo's checks, boxes and crops, then create."""

from __future__ import annotations

import logging

import cv2
import dearpygui.dearpygui as dpg
import numpy as np

from app.panels.base import Panel
from app.session import Session
from core.capture.photos import VIEWS, CaptureAssistant, PhotoError, coverage

THUMB_H = 150


class CreatePanel(Panel):
    title = "Create"

    def __init__(self, session: Session, run_task=None) -> None:
        super().__init__(session)
        self._run_task = run_task  # the studio's run_task(name, work, on_done, failure=...); None: run here
        self.create_task = None  # app.tasks.Task while an avatar is being created
        self.assistant: CaptureAssistant | None = None
        self._textures: list[int | str] = []
        self.job = None  # app.personalisation.PersonaliseJob while one runs
        self.before_personalise = None  # the avatar a personalisation replaced ('Revert' brings it back)

    def build(self, parent: int | str) -> None:
        with dpg.group(parent=parent) as self.root:
            dpg.add_text("Photos of one person (1-16): front, side and back views help most.")
            with dpg.group(horizontal=True):
                dpg.add_button(label="Add photos...", callback=lambda: dpg.show_item(self.dialog))
                dpg.add_button(label="Clear", callback=lambda: self.clear())
                dpg.add_button(label="Create avatar", callback=lambda: self.create())
            self.progress = dpg.add_progress_bar(default_value=0.0, width=300, overlay="no photos yet")
            self.summary = dpg.add_text("", wrap=PANEL_WRAP)
            with dpg.group(horizontal=True):
                self.steps = dpg.add_input_int(
                    label="steps", default_value=30, min_value=1, max_value=2000, min_clamped=True, width=90
                )
                self.personalise_button = dpg.add_button(label="Personalise", callback=lambda: self.personalise())
                self.revert_button = dpg.add_button(label="Revert", callback=lambda: self.revert())
            self.personalise_progress = dpg.add_progress_bar(
                default_value=0.0, width=300, overlay="refine a photo avatar on its photos"
            )
            self.list = dpg.add_child_window(height=-1, border=True)
            with dpg.file_dialog(
                show=False, callback=self._on_files, file_count=16, width=640, height=420, directory_selector=False
            ) as self.dialog:
                dpg.add_file_extension("Images (*.jpg *.jpeg *.png){.jpg,.jpeg,.png}")
                dpg.add_file_extension(".*")

    def _assistant(self) -> CaptureAssistant:
        if self.assistant is None:
            self.assistant = CaptureAssistant()
        return self.assistant

    # Intent ---------------------------------------------------------------------------------
    def _on_files(self, sender, app_data) -> None:
        paths = list((app_data or {}).get("selections", {}).values()) if isinstance(app_data, dict) else []
        self.add_photos(paths)

    def add_photos(self, paths: list[str]) -> None:
        a = self._assistant()
        for p in paths:
            try:
                c = a.add(p)
            except PhotoError as e:
                self.session.say(str(e), logging.ERROR)
                continue
            if c.problems:
                self.session.say(f"{p}: " + "; ".join(c.problems), logging.WARNING)
        self.refresh()

    def clear(self) -> None:
        if self.assistant is not None:
            self.assistant.checks.clear()
        self.refresh()

    def set_view(self, index: int, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        self._assistant().set_view(index, view)
        self.refresh()

    def create(self):
        """Create an avatar from the usable photos on the studio's worker (progress with time left); the Task."""
        from app.tasks import Task

        if self.create_task is not None and not self.create_task.done:
            self.session.say("an avatar is already being created", logging.WARNING)
            return None
        a = self._assistant()

        def work(task: Task, viewport=None):
            from app.model_avatar import created_avatar

            return created_avatar(a.create(lambda f, text: task.report(f, text)))

        if self._run_task is None:  # no studio (tests of the panel alone): run here
            task = Task("creating avatar")
            task.start()
            try:
                task.finish(result=work(task))
            except PhotoError as e:
                task.finish(error=str(e))
                self.session.say(f"could not create an avatar: {e}", logging.ERROR)
                return task
            self._created(task.result)
            return task
        self.create_task = self._run_task("creating avatar", work, self._created, failure="could not create an avatar")
        return self.create_task

    def _created(self, avatar) -> None:
        """Show the new avatar, and the photos' rows with the body fits creation refitted (one shared shape)."""
        self.session.set_avatar(avatar)
        self.refresh()

    # Personalisation ------------------------------------------------------------------------
    def personalise(self, steps: int | None = None) -> bool:
        """Start refining the current avatar on the photos it was made from (a worker thread)."""
        from app.personalisation import PersonaliseJob

        if self.job is not None and not self.job.done:
            self.session.say("a personalisation is already running", logging.WARNING)
            return False
        try:
            self.job = PersonaliseJob(self.session.avatar, int(steps or dpg.get_value(self.steps)))
        except ValueError as e:
            self.session.say(f"cannot personalise: {e}", logging.ERROR)
            return False
        self._set_personalise_progress(0.0, f"personalising {self.job.steps} steps...")
        return True

    def revert(self) -> bool:
        """Put back the avatar the last personalisation replaced."""
        if self.before_personalise is None:
            self.session.say("nothing to revert: no avatar was personalised", logging.WARNING)
            return False
        self.session.set_avatar(self.before_personalise)
        self.before_personalise = None
        self._set_personalise_progress(0.0, "reverted")
        return True

    def _set_personalise_progress(self, f: float, text: str) -> None:
        dpg.set_value(self.personalise_progress, f)
        dpg.configure_item(self.personalise_progress, overlay=text)

    def tick(self, dt: float) -> None:
        task = self.create_task
        if task is not None:
            dpg.set_value(self.progress, task.fraction if task.error is None else 0.0)
            dpg.configure_item(self.progress, overlay=task.overlay())
            if task.done:
                self.create_task = None
        job = self.job
        if job is None:
            return
        if not job.done:
            loss = f", loss {job.loss:.4f}" if job.loss is not None else ""
            self._set_personalise_progress(
                job.progress, f"step {round(job.progress * job.steps)}/{job.steps}{loss}{job.time_left()}"
            )
            return
        self.job = None
        if job.error is not None:
            self.session.say(f"personalisation failed: {job.error}", logging.ERROR)
            self._set_personalise_progress(0.0, "failed: see the console")
            return
        self.before_personalise = job.source
        self.session.set_avatar(job.result)
        self._set_personalise_progress(1.0, f"done: {job.steps} steps ('Revert' undoes it)")

    # Display --------------------------------------------------------------------------------
    def _texture(self, img: np.ndarray) -> int | str:
        """A static texture of [H, W, 3] float/uint8 pixels."""
        if img.dtype == np.uint8:
            img = img.astype(np.float32) / 255.0
        h, w = img.shape[:2]
        rgba = np.concatenate([img, np.ones((h, w, 1), np.float32)], -1)
        with dpg.texture_registry():
            tex = dpg.add_static_texture(w, h, rgba.ravel())
        self._textures.append(tex)
        return tex

    def refresh(self) -> None:
        if not self.root:
            return
        dpg.delete_item(self.list, children_only=True)
        for tex in self._textures:
            dpg.delete_item(tex)
        self._textures.clear()
        checks = [] if self.assistant is None else self.assistant.checks
        views, guessed = coverage(checks)
        usable = sum(c.usable for c in checks)
        dpg.set_value(
            self.summary,
            f"{len(checks)} photos, {usable} usable; views: "
            + ", ".join(f"{v} {n}" for v, n in views.items() if v != "unknown")
            + ("\nThe model will have to guess: " + "; ".join(guessed) if checks and guessed else ""),
        )
        dpg.set_value(self.progress, 0.0)
        dpg.configure_item(self.progress, overlay=f"{usable} usable photos" if checks else "no photos yet")
        for i, c in enumerate(checks):
            self._photo_row(i, c)

    def _photo_row(self, i: int, c) -> None:
        rgb = c.image
        s = THUMB_H / rgb.shape[0]
        thumb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), THUMB_H), interpolation=cv2.INTER_AREA)
        with dpg.group(horizontal=True, parent=self.list):
            with dpg.drawlist(width=thumb.shape[1], height=THUMB_H):
                dpg.draw_image(self._texture(fit_overlay(thumb, c, s)), (0, 0), (thumb.shape[1], THUMB_H))
                for box, colour in ((c.person_box, (90, 230, 120)), (c.face_box, (250, 210, 80))):
                    if box is not None:
                        dpg.draw_rectangle(
                            (box[0] * s, box[1] * s), (box[2] * s, box[3] * s), color=colour, thickness=2
                        )
            if c.body_crop is not None:
                dpg.add_image(self._texture(c.body_crop), width=75, height=100)
                dpg.add_image(self._texture(c.face_crop), width=60, height=60)
            with dpg.group():
                dpg.add_text(c.path.rsplit("/", 1)[-1][:28])
                dpg.add_combo(
                    list(VIEWS),
                    default_value=c.view,
                    width=90,
                    callback=lambda s, v, u: self.set_view(u, v),
                    user_data=i,
                )
                ok = "ok" if c.usable and not c.problems else ("usable" if c.usable else "not usable")
                colour = (120, 220, 120) if ok == "ok" else (255, 200, 90) if c.usable else (255, 110, 110)
                dpg.add_text(ok, color=colour)
                dpg.add_text(c.face_status(), color=(120, 220, 120) if c.face_visible else (255, 200, 90))
                if c.fit is not None:
                    bad = c.fit.poor
                    dpg.add_text(c.fit.summary(), wrap=170, color=(255, 110, 110) if bad else (120, 220, 120))
                for p in c.problems:
                    dpg.add_text(p, wrap=170, color=(255, 200, 90))


PANEL_WRAP = 400


def fit_overlay(thumb: np.ndarray, c, s: float) -> np.ndarray:
    """The thumbnail with the fitted body (with its clothing allowance once the shape is fitted) drawn over it (red,
    translucent) and the person mask's outline (green): where they disagree, the avatar would take colours from the
    wrong place."""
    out = thumb.copy()
    h, w = thumb.shape[:2]
    sil = getattr(getattr(c, "fit", None), "silhouette", None)
    if sil is not None:
        m = cv2.resize(sil, (w, h), interpolation=cv2.INTER_NEAREST) > 127
        out[m] = (out[m] * 0.55 + np.array([230, 40, 40]) * 0.45).astype(out.dtype)
    if getattr(c, "mask", None) is not None:
        pm = cv2.resize(c.mask, (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours((pm > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (60, 230, 90), 1)
    return out
