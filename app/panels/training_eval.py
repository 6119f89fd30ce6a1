"""The training tab's evaluation section: person-only PSNR/SSIM/L1 of a run's "eval" rows as plot and table, and an A/B of two
checkpoints rendered on one fixed grid of views, poses and expressions (in a worker thread; shown and saved)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app.session import Session
from core.train.runs import Run

log = logging.getLogger(__name__)

AB_SIZE = (400, 326)  # (W, H) of the A/B texture; the sheet is letterboxed into it
TABLE_ROWS = 4


def eval_rows(run: Run) -> list[dict]:
    """The run's evaluation rows (kind "eval") with a PSNR, by step."""
    return [r for r in run.metrics.rows if r.get("kind") == "eval" and isinstance(r.get("psnr"), (int, float))]


TABLE_COLUMNS = ("step", "PSNR (dB)", "SSIM", "L1", "frame PSNR")


def table_cells(row: dict) -> tuple[str, ...]:
    """One eval row as the table's cells: person-only PSNR, SSIM, L1 (the headline) and the whole-render PSNR
    beside them ("-" where a run from before person-only metrics lacks a value)."""

    def fmt(key: str, spec: str) -> str:
        v = row.get(key)
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    return (str(row["step"]), fmt("psnr", ".2f"), fmt("ssim", ".3f"), fmt("l1", ".4f"), fmt("frame_psnr", ".2f"))


def checkpoint_labels(runs: list[Run]) -> list[str]:
    """`run@step` for every step checkpoint of every run."""
    return [f"{r.name}@{step}" for r in runs for step, _ in r.checkpoints()]


def resolve_label(root: Path, label: str) -> Path:
    """`run@step` -> the checkpoint file; raises ValueError for a label that names none."""
    name, _, step = label.partition("@")
    path = root / name / f"step{int(step or -1):07d}.safetensors" if step.lstrip("-").isdigit() else None
    if not name or path is None or not path.is_file():
        raise ValueError(f"pick a checkpoint as run@step (got {label!r})")
    return path


class EvalSection:
    """Widgets and worker of the evaluation and A/B part of the training tab."""

    def __init__(self, session: Session, runs_root: Path, letterbox) -> None:
        self.session = session
        self.runs_root = runs_root
        self._letterbox = letterbox
        self._job: threading.Thread | None = None
        self._result: tuple[np.ndarray | None, str, Path | None] | None = None
        self._progress = (0.0, "")
        self.ab_path: Path | None = None  # the last A/B sheet written
        self._labels: list[str] = []

    def build(self) -> None:
        w, h = AB_SIZE
        with dpg.texture_registry():
            self.ab_texture = dpg.add_dynamic_texture(w, h, np.zeros(w * h * 4, np.float32))
        dpg.add_text("evaluation inside the person (held-out batch, live weights)", color=(170, 190, 210))
        with dpg.plot(label="eval", height=130, width=400) as self.plot:
            dpg.add_plot_legend()
            self.x = dpg.add_plot_axis(dpg.mvXAxis, label="step")
            self.y_psnr = dpg.add_plot_axis(dpg.mvYAxis, label="person PSNR dB")
            self.y_ssim = dpg.add_plot_axis(dpg.mvYAxis2, label="person SSIM")
            self.psnr_series = dpg.add_line_series([], [], label="PSNR", parent=self.y_psnr)
            self.ssim_series = dpg.add_line_series([], [], label="SSIM", parent=self.y_ssim)
        with dpg.table(header_row=True, borders_innerH=True, width=400) as self.table:
            for name in TABLE_COLUMNS:
                dpg.add_table_column(label=name)
        self.table_rows = []
        for _ in range(TABLE_ROWS):
            with dpg.table_row(parent=self.table) as row:
                self.table_rows.append([dpg.add_text("") for _ in TABLE_COLUMNS])
            dpg.hide_item(row)
        self.note = dpg.add_text("", color=(150, 150, 160), wrap=400)
        dpg.add_text("A/B two checkpoints (same views, poses, expressions)", color=(170, 190, 210))
        self.ab_a = dpg.add_combo([], label="A", width=200)
        self.ab_b = dpg.add_combo([], label="B", width=200)
        with dpg.group(horizontal=True):
            self.ab_button = dpg.add_button(label="Compare A/B", callback=lambda: self.start_ab())
            self.ab_progress = dpg.add_progress_bar(default_value=0.0, width=220, overlay="")
        self.ab_image = dpg.add_image(self.ab_texture)

    # Evaluation ------------------------------------------------------------------------------
    def show(self, run: Run | None) -> None:
        rows = eval_rows(run) if run is not None else []
        xs = [float(r["step"]) for r in rows]
        dpg.set_value(self.psnr_series, [xs, [float(r["psnr"]) for r in rows]])
        dpg.set_value(self.ssim_series, [xs, [float(r.get("ssim") or 0.0) for r in rows]])
        if rows:
            for axis in (self.x, self.y_psnr, self.y_ssim):
                dpg.fit_axis_data(axis)
        for i, cells in enumerate(self.table_rows):
            row = rows[-1 - i] if i < len(rows) else None
            parent = dpg.get_item_parent(cells[0])
            (dpg.show_item if row else dpg.hide_item)(parent)
            if row:
                for cell, v in zip(cells, table_cells(row), strict=True):
                    dpg.set_value(cell, v)
        if run is None:
            note = ""
        elif not rows:
            note = "no evaluation rows yet (set 'eval every' > 0 before launching)"
        else:
            split = run.config().get("eval_split") or "the training split (fit, not generalisation)"
            region = "inside the person mask" if "frame_psnr" in rows[-1] else "over the whole render (older run)"
            note = f"last of {len(rows)} evaluations, {region}; data: {split}"
        dpg.set_value(self.note, note)

    def set_checkpoints(self, runs: list[Run]) -> None:
        labels = checkpoint_labels(runs)
        if labels != self._labels:
            self._labels = labels
            for combo in (self.ab_a, self.ab_b):
                dpg.configure_item(combo, items=labels)

    # A/B -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._job is not None and self._job.is_alive()

    def start_ab(self, a: str | None = None, b: str | None = None) -> None:
        """Render the A/B sheet of checkpoints `a` and `b` (`run@step`; None: the combos') in a worker thread."""
        if self.busy:
            self.session.say("an A/B comparison is already being rendered", logging.WARNING)
            return
        try:
            pa = resolve_label(self.runs_root, a if a is not None else dpg.get_value(self.ab_a))
            pb = resolve_label(self.runs_root, b if b is not None else dpg.get_value(self.ab_b))
        except ValueError as e:
            self.session.say(f"A/B: {e}", logging.ERROR)
            return
        for combo, path in ((self.ab_a, pa), (self.ab_b, pb)):
            dpg.set_value(combo, f"{path.parent.name}@{int(path.stem[4:])}")
        out = pa.parent / "ab" / f"{pa.parent.name}-{pa.stem}_vs_{pb.parent.name}-{pb.stem}.png"
        self._result = None
        self._progress = (0.05, "starting")
        self._job = threading.Thread(target=self._work, args=(pa, pb, out), daemon=True, name="ab-compare")
        self._job.start()

    def _work(self, pa: Path, pb: Path, out: Path) -> None:
        from app.ab_compare import compare_checkpoints

        def progress(f: float, text: str) -> None:
            self._progress = (f, text)

        try:
            sheet = compare_checkpoints(pa, pb, out, progress=progress)
            self._result = (sheet, f"A/B saved to {out}", out)
        except Exception as e:  # noqa: BLE001 - any failure of the worker must reach the console, not vanish
            log.debug("A/B failed", exc_info=True)
            self._result = (None, f"A/B failed: {type(e).__name__}: {e}", None)

    def tick(self) -> None:
        f, text = self._progress
        if dpg.get_value(self.ab_progress) != f:
            dpg.set_value(self.ab_progress, f)
            dpg.configure_item(self.ab_progress, overlay=text[-40:])
        if self._result is None or self.busy:
            return
        sheet, message, path = self._result
        self._result = None
        if sheet is None:
            self.session.say(message, logging.ERROR)
            dpg.configure_item(self.ab_progress, overlay="failed: see the console")
            return
        dpg.set_value(self.ab_texture, self._letterbox(sheet, AB_SIZE).ravel())
        self.ab_path = path
        self.session.say(message)
