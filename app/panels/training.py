"""Training tab: launch a run as its own process, follow its curves, samples and log, pause/resume/stop it,
and load any of its checkpoints into the preview.

Callbacks only record intent; `tick` does the work and polls the selected run's folder twice a second, so the
studio never waits on the training process.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app.panels.base import Panel
from app.panels.training_eval import EvalSection
from app.session import Session
from core.paths import user_data_dir
from core.train.runs import Run, SynthData, estimate_step_s, launch, list_runs, train_configs

log = logging.getLogger(__name__)

POLL_S = 0.5
SAMPLE_SIZE = (256, 192)  # (W, H) of the sample texture; samples are letterboxed into it
PLOT_W, PLOT_H = 400, 170
STAGES = ("pretrain", "posttrain", "mixed", "studio-only")
SIZES = ("tiny", "base", "large")
NOT_TERMS = {"step", "kind", "time", "lr", "data_s", "step_s", "gpu_mem_gb", "skipped"}
DEFAULT_STEP_S = 1.0  # the form's seconds per step until a run of the same model has been measured


def devices() -> list[str]:
    """What the device combo offers: auto, cpu, and cuda when torch sees a GPU."""
    import torch

    return ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> RGBA float32 [h, w, 4] of `size` (W, H), scaled to fit, centred on black."""
    import cv2

    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)
    out = np.zeros((h, w, 4), np.float32)
    out[..., 3] = 1.0
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y : y + nh, x : x + nw, :3] = small.astype(np.float32) / 255.0
    return out


class TrainingPanel(Panel):
    title = "Training"

    def __init__(
        self, session: Session, *, runs_root: str | Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(session)
        self.runs_root = Path(runs_root) if runs_root is not None else user_data_dir("runs")  # never the cwd
        self.env = env  # extra environment for launched runs (e.g. thread counts)
        self.selected: Run | None = None
        self._intents: list[tuple[str, object]] = []
        self._since_poll = POLL_S
        self._series: dict[str, int | str] = {}
        self._sample_shown: Path | None = None
        self._runs_shown: list[str] = []
        self.compared: Run | None = None
        self._compare_series: int | str | None = None
        self._runs: dict[str, Run] = {}  # kept between polls so each follows its metrics incrementally
        self.loaded_checkpoint: Path | None = None
        self.launch_extra: dict[str, object] = {}  # further --set overrides for every launch (tests, scripts)
        self.evals = EvalSection(session, self.runs_root, _letterbox)
        self._estimate_key: tuple | None = None

    # Layout ----------------------------------------------------------------------------------
    def build(self, parent: int | str) -> None:
        configs = [p.name for p in train_configs()]
        with dpg.texture_registry():
            w, h = SAMPLE_SIZE
            self.sample_texture = dpg.add_dynamic_texture(w, h, np.zeros(w * h * 4, np.float32))
        with dpg.group(parent=parent) as self.root:
            with dpg.collapsing_header(label="New run", default_open=True) as self.form_header:
                self.config = dpg.add_combo(
                    configs, label="config", default_value="smoke-tiny.yaml" if "smoke-tiny.yaml" in configs else ""
                )
                self.name = dpg.add_input_text(label="run name", default_value="tiny-cpu")
                self.stage = dpg.add_combo(STAGES, label="stage", default_value="pretrain")
                self.size = dpg.add_combo(SIZES, label="model size", default_value="tiny")
                self.steps = dpg.add_input_int(label="steps", default_value=20, min_value=1, min_clamped=True)
                self.batch = dpg.add_input_int(
                    label="batch per process", default_value=1, min_value=1, min_clamped=True
                )
                self.device = dpg.add_combo(devices(), label="device", default_value="auto")
                self.nproc = dpg.add_input_int(
                    label="processes", default_value=1, min_value=1, max_value=64, min_clamped=True, max_clamped=True
                )
                self.data_root = dpg.add_input_text(label="data root", hint="empty: the config's data.root")
                with dpg.group(horizontal=True):
                    self.synth = dpg.add_checkbox(label="synthetic data:")
                    self.synth_ids = dpg.add_input_int(label="identities", default_value=4, width=70, min_value=1)
                    self.synth_frames = dpg.add_input_int(label="frames", default_value=4, width=70, min_value=1)
                self.init_from = dpg.add_input_text(label="init from", hint="checkpoint (post-training)")
                self.eval_every = dpg.add_input_int(label="eval every (0: off)", default_value=0, min_value=0)
                self.step_s = dpg.add_input_float(
                    label="s/step if unmeasured", default_value=DEFAULT_STEP_S, min_value=0.0, format="%.2f"
                )
                self.estimate = dpg.add_text("", color=(170, 190, 210), wrap=PLOT_W)
                with dpg.group(horizontal=True):
                    self.launch_button = dpg.add_button(label="Launch", callback=self._intent, user_data="launch")
                    self.pause_button = dpg.add_button(label="Pause", callback=self._intent, user_data="pause")
                    self.resume_button = dpg.add_button(label="Resume", callback=self._intent, user_data="resume")
                    self.stop_button = dpg.add_button(label="Stop", callback=self._intent, user_data="stop")
            dpg.add_text("Runs (folder: " + str(self.runs_root) + ")", color=(170, 190, 210))
            self.runs_list = dpg.add_listbox([], num_items=4, width=-1, callback=self._on_select)
            self.summary = dpg.add_text("", wrap=PLOT_W)
            self.log_text = dpg.add_text("", wrap=PLOT_W, color=(200, 200, 200))
            self.compare = dpg.add_combo([""], label="compare loss with", callback=self._on_compare, width=200)
            with dpg.plot(label="loss", height=PLOT_H, width=PLOT_W) as self.loss_plot:
                dpg.add_plot_legend()
                self.loss_x = dpg.add_plot_axis(dpg.mvXAxis, label="step")
                self.loss_y = dpg.add_plot_axis(dpg.mvYAxis, label="loss")
            with dpg.plot(label="learning rate", height=110, width=PLOT_W):
                self.lr_x = dpg.add_plot_axis(dpg.mvXAxis, label="step")
                self.lr_y = dpg.add_plot_axis(dpg.mvYAxis, label="lr")
                self.lr_series = dpg.add_line_series([], [], label="lr", parent=self.lr_y)
            with dpg.group(horizontal=True):
                self.ckpt_step = dpg.add_input_int(label="step", default_value=-1, width=90)
                self.load_button = dpg.add_button(
                    label="Load checkpoint into preview", callback=self._intent, user_data="load"
                )
            self.posttrain_button = dpg.add_button(
                label="Post-train from this checkpoint", callback=self._intent, user_data="posttrain"
            )
            dpg.add_text("latest sample (render | target)", color=(170, 190, 210))
            self.sample_image = dpg.add_image(self.sample_texture)
            self.evals.build()
        with dpg.item_handler_registry() as self._plot_handlers:
            dpg.add_item_clicked_handler(callback=self._on_plot_click)
        dpg.bind_item_handler_registry(self.loss_plot, self._plot_handlers)
        self._refresh_runs()

    # Intent ----------------------------------------------------------------------------------
    def _intent(self, sender, app_data, what: str) -> None:
        self._intents.append((what, None))

    def _on_plot_click(self, sender, app_data) -> None:
        self._intents.append(("load", dpg.get_plot_mouse_pos()[0]))  # the checkpoint nearest the clicked step

    def _on_compare(self, sender, value: str) -> None:
        self._intents.append(("compare", value))

    def _on_select(self, sender, value: str) -> None:
        self._intents.append(("select", value.split()[0] if value else ""))

    # Per-frame -------------------------------------------------------------------------------
    def tick(self, dt: float) -> None:
        self.evals.tick()
        while self._intents:
            what, arg = self._intents.pop(0)
            try:
                self._do(what, arg)
            except (OSError, ValueError, RuntimeError, KeyError) as e:
                self.session.say(f"training: {what} failed: {e}", logging.ERROR)
        self._since_poll += dt
        if self._since_poll >= POLL_S:
            self._since_poll = 0.0
            self.poll()

    def _do(self, what: str, arg: object) -> None:
        if what == "select":
            self.select(str(arg))
        elif what == "launch":
            self.select(self.launch().name)
        elif what == "resume":
            if self.selected is None:
                raise ValueError("select a run to resume")
            self.resume(self.selected)
        elif what in ("pause", "stop"):
            if self.selected is None:
                raise ValueError(f"select a run to {what}")
            ok = self.selected.pause() if what == "pause" else self.selected.stop()
            self.session.say(
                f"{what} {self.selected.name}: " + ("signal sent" if ok else "it is not running"),
                logging.INFO if ok else logging.WARNING,
            )
        elif what == "load":
            self.load_checkpoint(float(arg) if arg is not None else dpg.get_value(self.ckpt_step))
        elif what == "posttrain":
            self.posttrain_from(dpg.get_value(self.ckpt_step))
        elif what == "compare":
            self.compare_with(str(arg))

    # Actions ---------------------------------------------------------------------------------
    def overrides(self) -> dict[str, object]:
        """The form's fields as `--set` overrides (empty text fields keep the config's value)."""
        out: dict[str, object] = {
            "stage": dpg.get_value(self.stage),
            "model": dpg.get_value(self.size),
            "steps": dpg.get_value(self.steps),
            "batch_size": dpg.get_value(self.batch),
            "global_batch": 0,  # the form's batch is per process, also for configs that fix a global batch
            "device": dpg.get_value(self.device),
            "eval_every": dpg.get_value(self.eval_every),
        }
        if dpg.get_value(self.data_root).strip():
            out["data.root"] = dpg.get_value(self.data_root).strip()
        if dpg.get_value(self.init_from).strip():
            out["init_from"] = dpg.get_value(self.init_from).strip()
        return out

    def launch(self, extra: dict[str, object] | None = None) -> Run:
        config = dpg.get_value(self.config)
        matches = [p for p in train_configs() if p.name == config]
        if not matches:
            raise ValueError(f"pick a training config (got {config!r})")
        run = launch(
            matches[0],
            runs_root=self.runs_root,
            name=dpg.get_value(self.name).strip(),
            overrides={**self.overrides(), **self.launch_extra, **(extra or {})},
            env=self.env,
            nproc=int(dpg.get_value(self.nproc)),
            synth=self.synth_data(),
        )
        self.session.say(f"launched training run {run.name}")
        return run

    def synth_data(self) -> SynthData | None:
        """The synthetic data set the form asks for (None: use the data root as it is)."""
        if not dpg.get_value(self.synth):
            return None
        return SynthData(identities=int(dpg.get_value(self.synth_ids)), frames=int(dpg.get_value(self.synth_frames)))

    def resume(self, run: Run) -> Run:
        """Launch the run's own resolved config again: training continues from its last checkpoint.

        A steps field beyond the run's last checkpoint sets the new total (a finished run trains on for more).
        """
        cfg_file = run.path / "config.yaml"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{run.name} has no config.yaml to resume from")
        wanted = int(dpg.get_value(self.steps))
        steps = wanted if wanted > run.last_step() else int(run.config().get("steps", 1))
        launch(cfg_file, runs_root=self.runs_root, name=run.name, overrides={"steps": steps}, env=self.env)
        self.session.say(f"resumed {run.name} (to step {steps})")
        self.select(run.name)
        return run

    def select(self, name: str) -> None:
        if self.selected is not None and self.selected.name == name:
            return
        self.selected = self._runs.setdefault(name, Run(self.runs_root / name)) if name else None
        for series in self._series.values():
            dpg.delete_item(series)
        self._series = {}
        self._sample_shown = None
        w, h = SAMPLE_SIZE
        dpg.set_value(self.sample_texture, np.zeros(w * h * 4, np.float32))
        self.poll()

    def compare_with(self, name: str) -> None:
        """Draw another run's total loss on the same plot ("" clears it)."""
        if self._compare_series is not None:
            dpg.delete_item(self._compare_series)
            self._compare_series = None
        self.compared = self._runs.setdefault(name, Run(self.runs_root / name)) if name else None
        if self.compared is not None:
            self._compare_series = dpg.add_line_series([], [], label=f"{name}: loss", parent=self.loss_y)
        self.poll()

    def posttrain_from(self, step: float = -1) -> Path:
        """Fill the form for post-training from the selected run's checkpoint nearest `step` (-1: newest)."""
        path = self._checkpoint(step)
        dpg.set_value(self.stage, "posttrain")
        dpg.set_value(self.init_from, str(path.resolve()))
        dpg.set_value(self.form_header, True)
        self.session.say(f"the form now post-trains from {path}; name the run and launch it")
        return path

    def _checkpoint(self, step: float) -> Path:
        if self.selected is None:
            raise ValueError("select a run first")
        ckpts = self.selected.checkpoints()
        if not ckpts:
            raise ValueError(f"{self.selected.name} has no checkpoint yet; wait for its first save")
        return ckpts[-1][1] if step < 0 else self.selected.nearest_checkpoint(step)

    def load_checkpoint(self, step: float = -1) -> Path:
        """Decode the first bundled example with the selected run's checkpoint nearest `step` (-1: newest)."""
        from app.model_avatar import ModelAvatar, example_files
        from core.model.examples import decode_example
        from core.train.export import model_from_checkpoint

        path = self._checkpoint(step)
        examples = example_files()
        if not examples:
            raise FileNotFoundError("no example inputs in assets/examples to decode an avatar from")
        model, meta = model_from_checkpoint(path, "cpu")
        decoded, ex = decode_example(model, examples[0])
        avatar = ModelAvatar(
            decoded,
            name=f"{self.selected.name}@{meta['step']}",
            description=f"{ex.name} decoded by run {self.selected.name} at step {meta['step']} ({path.name})",
        )
        self.session.set_avatar(avatar)
        self.loaded_checkpoint = path
        self.session.say(f"loaded {path} into the preview")
        return path

    # Polling ---------------------------------------------------------------------------------
    def poll(self) -> None:
        """Re-read the runs folder and the selected run's new metrics, sample and log."""
        self._refresh_runs()
        self._update_estimate()
        run = self.selected
        self.evals.set_checkpoints(list(self._runs.values()))
        if run is None:
            self.evals.show(None)
            return
        run.metrics.poll()
        for key in self._term_keys(run):
            xs, ys = run.metrics.series(key)
            if key not in self._series:
                self._series[key] = dpg.add_line_series([], [], label=key, parent=self.loss_y)
            dpg.set_value(self._series[key], [xs, ys])
        dpg.set_value(self.lr_series, list(run.metrics.series("lr")))
        if self.compared is not None and self._compare_series is not None:
            self.compared.metrics.poll()
            dpg.set_value(self._compare_series, list(self.compared.metrics.series("loss")))
        if run.metrics.rows:
            for axis in (self.loss_x, self.loss_y, self.lr_x, self.lr_y):
                dpg.fit_axis_data(axis)
        info = run.info()
        dpg.set_value(self.summary, self._summary(run, info))
        if info.error:
            tail = [ln for ln in info.error.splitlines() if not ln.startswith("$ ")][-8:]
            dpg.set_value(self.log_text, "error:\n" + "\n".join(tail))
            dpg.configure_item(self.log_text, color=(255, 120, 120))
        else:
            tail = [ln[:160] for ln in run.log_tail(6).splitlines() if not ln.startswith("$ ")][-3:]
            dpg.set_value(self.log_text, "\n".join(tail))
            dpg.configure_item(self.log_text, color=(200, 200, 200))
        sample = run.latest_sample()
        if sample is not None and sample != self._sample_shown:
            self._show_sample(sample)
        self.evals.show(run)

    def estimate_text(self) -> str:
        """Memory (from the model config and batch) and time (steps x measured or configured s/step) of the form."""
        from core.config import ConfigError
        from core.model.config import load_model_config
        from core.train.config import load_train_config
        from core.train.estimate import estimate_memory, estimate_seconds, format_duration

        steps, batch, size = dpg.get_value(self.steps), dpg.get_value(self.batch), dpg.get_value(self.size)
        nproc, device = int(dpg.get_value(self.nproc)), dpg.get_value(self.device)
        matches = [p for p in train_configs() if p.name == dpg.get_value(self.config)]
        lines = []
        try:
            cfg = load_train_config(matches[0]) if matches else None
            d = cfg.data if cfg is not None else None
            dev = "cuda" if device == "cuda" or (device == "auto" and "cuda" in devices()) else "cpu"
            mem = estimate_memory(
                load_model_config(size), batch_size=batch, num_refs=d.num_refs if d else 8,
                num_targets=d.num_targets if d else 2, render_size=d.render_size if d else 128, device=dev,
                amp=cfg.amp if cfg else True, perceptual=(cfg.loss.perceptual > 0) if cfg else True,
                shards=nproc if (cfg is not None and cfg.fsdp) else 1,
            )  # fmt: skip
            how = "" if nproc == 1 else f", x{nproc} processes" + (" (FSDP)" if cfg is not None and cfg.fsdp else "")
            lines.append(mem.summary() + f" on {dev}{how}")
        except (ConfigError, FileNotFoundError, ValueError) as e:
            lines.append(f"memory: no estimate ({e})")
        est = estimate_step_s(list(self._runs.values()), model=size, batch_size=batch)
        per, source = est if est is not None else (float(dpg.get_value(self.step_s)), "the s/step field")
        lines.append(
            f"time: about {format_duration(estimate_seconds(steps, per))} ({steps} steps x {per:.2f} s/step, "
            f"from {'run ' + source if est is not None else source})"
        )
        if dpg.get_value(self.synth):
            folder = dpg.get_value(self.data_root).strip() or str(self.synth_data().folder())
            lines.append(f"data: generates a synthetic set in {folder} first unless it holds one")
        return "\n".join(lines)

    def _update_estimate(self) -> None:
        key = tuple(
            dpg.get_value(i)
            for i in (self.config, self.size, self.steps, self.batch, self.device, self.nproc, self.step_s, self.synth,
                      self.synth_ids, self.synth_frames)
        ) + (len(self._runs),)  # fmt: skip
        if key == self._estimate_key:
            return
        self._estimate_key = key
        dpg.set_value(self.estimate, self.estimate_text())

    def _term_keys(self, run: Run) -> list[str]:
        keys: dict[str, None] = {"loss": None}
        for r in run.metrics.rows:
            if r.get("kind", "train") == "train":
                keys.update({k: None for k in r if k not in NOT_TERMS})
        return list(keys)

    def _summary(self, run: Run, info) -> str:
        rows = [r for r in run.metrics.rows if r.get("kind", "train") == "train"]
        text = f"{info.name}: {info.status}, checkpoint step {info.step}/{info.steps}"
        if info.best_loss is not None:
            text += f", best loss {info.best_loss:.4f}"
        if rows:
            last = rows[-1]
            step_s = last.get("step_s") or 0.0
            left = max(0, info.steps - 1 - int(last["step"]))
            text += f"\nstep {last['step']}: {1.0 / step_s if step_s else 0.0:.2f} steps/s, ETA {left * step_s:.0f} s"
            if last.get("gpu_mem_gb"):
                text += f", GPU memory {last['gpu_mem_gb']:.2f} GiB"
        return text

    def _show_sample(self, path: Path) -> None:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:  # still being written: try again at the next poll
            return
        rgba = _letterbox(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), SAMPLE_SIZE)
        dpg.set_value(self.sample_texture, rgba.ravel())
        self._sample_shown = path

    def _refresh_runs(self) -> None:
        items = []
        for found in list_runs(self.runs_root):
            run = self._runs.setdefault(found.name, found)
            if self.selected is not None and run.name == self.selected.name:
                run = self.selected
            items.append(f"{run.name}  [{run.status()}]  step {run.last_step()}")
        if items != self._runs_shown:
            dpg.configure_item(self.runs_list, items=items)
            dpg.configure_item(self.compare, items=["", *(i.split()[0] for i in items)])
            self._runs_shown = items
        if self.selected is not None:
            current = [i for i in items if i.split()[0] == self.selected.name]
            if current and dpg.get_value(self.runs_list) != current[0]:
                dpg.set_value(self.runs_list, current[0])
