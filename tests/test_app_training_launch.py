"""The training panel's launch form (device, processes, synthetic data, memory/time estimate before launch), its
live evaluation plot and table, and the A/B of two checkpoints. Studio tests run in an interpreter of their own
(see tests/test_app_training.py). Screenshot: docs/screenshots/training_panel_eval_ab.png."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from child_pytest import run_in_child
from reference_shots import screenshot_dir
from training_gui import frames_until, open_training_studio, training_panel

from core.train.runs import ROOT, SynthData, chain_script, train_command

SHOTS = screenshot_dir()  # a temporary folder unless the references are being updated
CHILD = "LCA_TRAINING_LAUNCH_CHILD"
needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (xvfb-run)")
in_child = pytest.mark.skipif(not os.environ.get(CHILD), reason="runs inside test_launch_form_in_its_own_process")
CONFIG = ROOT / "configs" / "train" / "smoke-tiny.yaml"


def test_train_command_uses_torch_distributed_run_for_several_processes():
    one = train_command(CONFIG, {"steps": 3}, python="py")
    assert one[:3] == ["py", str(ROOT / "main.py"), "train"] and one[-1] == "steps=3"
    two = train_command(CONFIG, {"steps": 3}, python="py", nproc=2)
    assert two[:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert two[5:7] == [str(ROOT / "main.py"), "train"]
    with pytest.raises(ValueError, match="processes"):
        train_command(CONFIG, {}, nproc=0)


def test_chain_generates_data_then_execs_the_trainer(tmp_path):
    synth = SynthData(identities=3, frames=5, size=32)
    prep = synth.command("py", tmp_path / "d")
    assert prep[2:4] == ["prepare", "synth"] and "--wild" in prep and prep[prep.index("--frames") + 1] == "5"
    line = chain_script([["echo", "a b"], ["echo", "c"]])
    assert line == "echo 'a b' || exit $?; exec echo c", "stops at a failure; the trainer keeps the pid"
    out = subprocess.run(["/bin/sh", "-c", chain_script([["false"], ["echo", "never"]])], capture_output=True)
    assert out.returncode == 1 and b"never" not in out.stdout
    assert synth.folder("data") == Path("data/synth-3x5-32px")


# The studio end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = open_training_studio(tmp_path_factory)
    yield s
    s.close()


@needs_display
@in_child
def test_launch_form_shows_memory_and_time_before_launch(studio):
    import dearpygui.dearpygui as dpg

    panel = training_panel(studio)
    dpg.set_value(panel.config, "smoke-tiny.yaml")
    dpg.set_value(panel.size, "base")
    dpg.set_value(panel.batch, 1)
    panel.poll()
    one = dpg.get_value(panel.estimate)
    dpg.set_value(panel.batch, 8)
    dpg.set_value(panel.steps, 100)
    dpg.set_value(panel.step_s, 0.5)
    panel.poll()
    eight = dpg.get_value(panel.estimate)
    gib = lambda t: float(t.split("about ")[1].split(" GiB")[0])  # noqa: E731
    assert gib(eight) > gib(one) > 0, (one, eight)
    assert "time: about 50 s (100 steps x 0.50 s/step, from the s/step field)" in eight
    assert "cpu" in dpg.get_item_configuration(panel.device)["items"]
    # an FSDP config: each process holds a share of the weights, gradients and optimiser state
    dpg.set_value(panel.config, "pretrain-large.yaml")
    dpg.set_value(panel.size, "large")
    dpg.set_value(panel.batch, 2)
    panel.poll()
    single = dpg.get_value(panel.estimate)
    dpg.set_value(panel.nproc, 4)
    panel.poll()
    sharded = dpg.get_value(panel.estimate)
    assert "x4 processes (FSDP)" in sharded and gib(sharded) < gib(single), (single, sharded)
    sets = panel.overrides()  # the form's batch wins over the config's global_batch (8 for pretrain-large)
    assert sets["batch_size"] == 2 and sets["global_batch"] == 0
    dpg.set_value(panel.nproc, 1)
    dpg.set_value(panel.config, "smoke-tiny.yaml")
    dpg.set_value(panel.size, "tiny")


@needs_display
@in_child
def test_launch_generates_synthetic_data_trains_on_two_processes_evaluates_and_compares(studio, tmp_path_factory):
    import dearpygui.dearpygui as dpg

    from tests.test_app_gui import trigger

    panel = training_panel(studio)
    data = tmp_path_factory.mktemp("data") / "synth"
    dpg.set_value(panel.config, "smoke-tiny.yaml")
    dpg.set_value(panel.name, "ddp-synth")
    dpg.set_value(panel.data_root, str(data))
    dpg.set_value(panel.steps, 4)
    dpg.set_value(panel.batch, 1)
    dpg.set_value(panel.device, "cpu")
    dpg.set_value(panel.nproc, 2)
    dpg.set_value(panel.eval_every, 2)
    dpg.set_value(panel.synth, True)
    dpg.set_value(panel.synth_ids, 2)  # one shard per identity: each of the two processes reads its own
    dpg.set_value(panel.synth_frames, 2)
    panel.launch_extra = {"data.render_size": 32, "data.workers": 0}
    panel.synth_data = lambda: SynthData(identities=2, frames=2, size=32, detail=0.08)  # quicker than the form's
    trigger(panel.launch_button)
    frames_until(studio, lambda: panel.selected is not None and panel.selected.name == "ddp-synth", 10, "the launch")
    run = panel.selected
    frames_until(studio, lambda: run.status() in ("finished", "crashed"), 600, "the run to end")
    log = (run.path / "log.txt").read_text()
    assert run.status() == "finished", log[-3000:]
    assert "prepare synth" in log and "torch.distributed.run" in log and (data / "card.json").is_file()
    assert (run.path / "rank0.json").is_file() and (run.path / "rank1.json").is_file(), "two DDP processes ran"
    panel.poll()
    xs = dpg.get_value(panel.evals.psnr_series)[0]
    assert xs == [2.0, 4.0], "eval rows every 2 steps are plotted"
    assert dpg.get_value(panel.evals.table_rows[0][0]) == "4" and float(dpg.get_value(panel.evals.table_rows[0][1])) > 5

    labels = dpg.get_item_configuration(panel.evals.ab_a)["items"]
    assert labels == ["ddp-synth@2", "ddp-synth@4"]
    panel.evals.start_ab("ddp-synth@2", "ddp-synth@4")
    frames_until(studio, lambda: panel.evals.ab_path is not None, 240, "the A/B sheet")
    assert panel.evals.ab_path.is_file() and panel.evals.ab_path.parent == run.path / "ab"
    dpg.set_value(panel.form_header, False)
    studio.run(max_frames=studio.frames + 2)
    scroller = dpg.get_item_parent(panel.evals.plot)
    while not dpg.get_item_type(scroller).endswith("mvChildWindow"):
        scroller = dpg.get_item_parent(scroller)
    dpg.set_y_scroll(scroller, dpg.get_y_scroll_max(scroller))  # show the evaluation and the A/B sheet
    studio.run(max_frames=studio.frames + 3)
    dpg.set_y_scroll(scroller, dpg.get_y_scroll_max(scroller))
    studio.run(max_frames=studio.frames + 2)
    studio.screenshot(SHOTS / "training_panel_eval_ab.png")
    dpg.set_y_scroll(scroller, 0.0)
    dpg.set_value(panel.form_header, True)
    studio.run(max_frames=studio.frames + 2)
    studio.screenshot(SHOTS / "training_panel_form.png")


@needs_display
@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the child")
def test_launch_form_in_its_own_process():
    res = run_in_child(__file__, "launch_", CHILD, timeout=900)
    assert "\n2 passed" in res.stdout, res.stdout[-2000:]
