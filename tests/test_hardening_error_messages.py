"""Tracebacks turned into messages: one top-level handler with exit status 2, folders and named pipes refused at
once, a bad avatar file behind a recording."""

from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hardening_files import tiny_gaussians

from core.config import ConfigError, load_config
from core.io import FileFormatError
from core.train.checkpoint import read_checkpoint_meta

ROOT = Path(__file__).resolve().parents[1]


def _main_module():
    sys.path.insert(0, str(ROOT))
    import main

    return main


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (OSError(28, "No space left on device", "out.png"), "out.png: no space left on device"),
        (MemoryError(), "out of memory"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (FileFormatError("x.npz: not a driving recording"), "x.npz: not a driving recording"),
    ],
)
def test_the_command_line_turns_input_errors_into_one_line_and_exit_2(caplog, error, text):
    main = _main_module()

    def runner(args):
        raise error

    with caplog.at_level(logging.ERROR):
        assert main.run_reporting_errors(runner, argparse.Namespace(verbose=False)) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [text] or text in caplog.text
    assert "Traceback" not in caplog.text


def test_programming_errors_still_raise():
    main = _main_module()

    def runner(args):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main.run_reporting_errors(runner, argparse.Namespace(verbose=False))


def test_reading_a_checkpoint_from_a_folder_or_a_named_pipe_is_refused_at_once(tmp_path):
    from core.train.export import model_from_checkpoint

    with pytest.raises(FileFormatError, match="is a folder"):
        model_from_checkpoint(tmp_path)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def read():
        try:
            read_checkpoint_meta(fifo)
            result.append(None)
        except BaseException as e:  # noqa: BLE001
            result.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10.0)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a named pipe blocked")
    assert isinstance(result[0], FileFormatError) and "named pipe" in str(result[0])


def test_drive_from_a_recording_with_a_bad_avatar_file_exits_2(tmp_path, caplog):
    from app.drive_cli import EXIT_SOURCE, _drive_headless_channels
    from core.tracking.recording import Recording, save_recording

    take = save_recording(
        Recording(times=np.arange(3) / 30.0, names=("expr.jawOpen",), values=np.zeros((3, 1), np.float32)),
        tmp_path / "take.npz",
    )
    bad = tmp_path / "nan.ply"
    from core.raster.ply import save_ply

    save_ply(bad, tiny_gaussians())
    data = bytearray(bad.read_bytes())
    end = data.index(b"end_header\n") + len(b"end_header\n")
    data[end : end + 4] = struct.pack("<f", float("nan"))
    bad.write_bytes(bytes(data))
    for avatar in (bad, tmp_path / "missing.safetensors", tmp_path):
        args = argparse.Namespace(source=str(take), avatar=str(avatar), example=None, fps=None, frames=None,
                                  mirror=False, view="front", out=None, record_channels=None, osc=None, vmc=False)  # fmt: skip
        with caplog.at_level(logging.ERROR):
            assert _drive_headless_channels(args, (64, 64)) == EXIT_SOURCE
    assert "NaN" in caplog.text


def test_configs_and_recordings_that_are_folders_or_pipes_are_refused_without_reading(tmp_path):
    from core.tracking.recording import load_recording
    from core.train.config import TrainConfig

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(TrainConfig, fifo)
    os.mkfifo(tmp_path / "take.npz")
    with pytest.raises(FileFormatError, match="named pipe"):
        load_recording(tmp_path / "take.npz")
    (tmp_path / "take.json").mkdir()
    with pytest.raises(FileFormatError, match="is a folder"):
        load_recording(tmp_path / "take.json")
