"""The command line fed crafted files, as a user would run it: every case runs `python main.py ...` in a fresh
process under memory (RLIMIT_AS) and CPU-time (RLIMIT_CPU) limits and must end, within a wall-clock bound, in its
expected exit status (2: a refused input) with one error line that names the input and no traceback; its peak RSS
(from `wait4`) must stay under the case's bound.

    python tests/hardening_cli.py                         # every case, a table on stdout
    python tests/hardening_cli.py --write docs/RELIABILITY.md   # ... and into the document's cli table
    python tests/hardening_cli.py --only eval              # the cases whose name contains "eval"

`tests/test_hardening_cli.py` runs a few fast cases in the default test run and every case under `-m slow`.
A new subcommand or loader is covered by adding a `CliCase` here; each case writes its result as JSON to
LCA_RELIABILITY_DIR/cli (see hardening_fuzz.summary_dir), which `hardening_report.py` also turns into the table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MEMORY_LIMIT = 6 << 30  # address space of one case (torch, OpenCV and the studio's imports take about 2 GiB)
CPU_LIMIT_S = 120  # CPU seconds of one case
WALL_LIMIT_S = 240.0  # a case that blocks (a named pipe, a lock) is killed here: it fails
CLI_BEGIN, CLI_END = "<!-- cli:begin -->", "<!-- cli:end -->"


@dataclass(frozen=True)
class CliCase:
    name: str  # what a user does, in words
    args: tuple[str, ...]  # after main.py; "{d}" is the case's folder
    make: Callable[[Path], None]  # writes the crafted inputs into the case's folder
    expect: int = 2
    mentions: str = ""  # text the error line must contain ("{d}" is the folder)
    rss_mib: int = 1200  # bound of the peak resident memory
    file_size_limit: int | None = None  # RLIMIT_FSIZE: writes past it fail (a full disk, for the process)
    fast: bool = False  # also in the default test run


# -- crafted inputs ------------------------------------------------------------------------------------------------
def _np_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def _recording_npz(path: Path, names: bytes, times: bytes, values: bytes) -> None:
    members = {
        "version": _np_bytes(np.int64(1)),
        "kind": _np_bytes(np.str_("lca-driving-channels")),
        "names": names,
        "times": times,
        "values": values,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(f"{k}.npy", v)


def _many_names(d: Path) -> None:  # 1.5 MB that unpack to 2^25 names
    _recording_npz(d / "take.npz", _np_bytes(np.full(1 << 25, "x")), _np_bytes(np.zeros(0)),
                   _np_bytes(np.zeros((0, 1 << 25), np.float32)))  # fmt: skip


def _many_frames(d: Path) -> None:  # a valid recording of 2^27 frames, declared
    _recording_npz(d / "take.npz", _np_bytes(np.array(["expr.jawOpen"])), _npy_header((1 << 27,), "<f8"),
                   _npy_header((1 << 27, 1), "<f4"))  # fmt: skip


def _good_recording(d: Path) -> None:
    from core.tracking.recording import Recording, save_recording

    t = np.arange(4) / 30.0
    save_recording(Recording(t, ("expr.jawOpen",), np.zeros((4, 1), np.float32)), d / "take.npz")


def _gaussians(n: int = 64):
    import torch

    from core.raster.types import Gaussians

    return Gaussians(
        means=torch.randn(n, 3) * 0.2, quats=torch.tensor([[1.0, 0, 0, 0]] * n), log_scales=torch.full((n, 3), -4.0),
        opacity_logits=torch.zeros(n), sh=torch.rand(n, 1, 3),
    )  # fmt: skip


def _ply(d: Path) -> None:
    from core.raster.ply import save_ply

    save_ply(d / "avatar.ply", _gaussians())


def _nan_ply(d: Path) -> None:
    _ply(d)
    data = bytearray((d / "avatar.ply").read_bytes())
    end = data.index(b"end_header\n") + len(b"end_header\n")
    data[end : end + 4] = b"\x00\x00\xc0\x7f"  # NaN
    (d / "avatar.ply").write_bytes(bytes(data))


def _safetensors_with_meta(path: Path, meta_json: str, kind: str) -> None:
    import torch

    from core.io import save_tensors

    data = save_tensors(path, {"x": torch.zeros(1)}, {}, kind=kind).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"]["lca_meta"] = meta_json
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n :])


def _deep_avatar(d: Path) -> None:
    _good_recording(d)
    _safetensors_with_meta(d / "avatar.safetensors", "[" * 100_000 + "]" * 100_000, "lca-avatar")


def _deep_checkpoint(d: Path) -> None:
    _safetensors_with_meta(d / "m.safetensors", '{"a":' * 50_000 + "1" + "}" * 50_000, "lca-checkpoint")


def _checkpoint(d: Path, *, model: dict | None = None, data: dict | None = None, cut: int = 0) -> None:
    import torch

    from core.config import to_dict
    from core.model.config import load_model_config
    from core.train.checkpoint import save_checkpoint

    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 16}})
    shapes_cfg = to_dict(cfg)
    sd = {"w": torch.zeros(4)}
    config = {"model": {**shapes_cfg, **(model or {})}, "train": {"data": data or {}}}
    path = save_checkpoint(d / "m.safetensors", model=sd, step=1, config=config)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])


def _fifo(d: Path) -> None:
    os.mkfifo(d / "m.safetensors")


def _yaml(text: str) -> Callable[[Path], None]:
    return lambda d: (d / "t.yaml").write_text(text)


def _photo(d: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 96), (200, 180, 160)).save(d / "photo.jpg")
    (d / "existing").mkdir()


def _shard_8tib(d: Path) -> None:
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("K.npy", _npy_header((1 << 41,), "<f4"))
    meta = {"num_frames": 1, "num_cameras": 1, "height": 8, "width": 8, "kind": "wild"}
    import tarfile

    (d / "data" / "train").mkdir(parents=True)
    with tarfile.open(d / "data" / "train" / "wild-000000.tar", "w") as tar:
        for name, blob in (
            ("wild-train-000001.json", json.dumps(meta).encode()),
            ("wild-train-000001.npz", npz.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (d / "t.yaml").write_text(
        "name: fuzz\nmodel: tiny\nsteps: 1\ndevice: cpu\nout_dir: {d}/runs\ndata:\n  root: {d}/data\n  workers: 0\n"
        "  crop_size: 64\n  face_size: 32\n  render_size: 32\n".replace("{d}", str(d))
    )


CASES: tuple[CliCase, ...] = (
    CliCase(
        "drive from a 1.5 MB .npz declaring 2^25 channel names",
        ("drive", "--headless", "--source", "{d}/take.npz", "--out", "{d}/o.mp4"),
        _many_names,
        mentions="take.npz",
        fast=True,
    ),  # fmt: skip
    CliCase(
        "drive from an .npz declaring 2^27 frames",
        ("drive", "--headless", "--source", "{d}/take.npz", "--out", "{d}/o.mp4"),
        _many_frames,
        mentions="frames",
    ),  # fmt: skip
    CliCase(
        "drive with a NaN .ply avatar",
        ("drive", "--headless", "--source", "{d}/take.npz", "--avatar", "{d}/avatar.ply", "--out", "{d}/o.mp4"),
        lambda d: (_good_recording(d), _nan_ply(d)),
        mentions="NaN",
    ),  # fmt: skip
    CliCase(
        "drive with an avatar whose header nests 100,000 levels",
        ("drive", "--headless", "--source", "{d}/take.npz", "--avatar", "{d}/avatar.safetensors", "--out", "{d}/o.mp4"),
        _deep_avatar,
        mentions="nested",
    ),  # fmt: skip
    CliCase(
        "drive from a network port with a missing avatar",
        ("drive", "--headless", "--source", "network:0", "--avatar", "{d}/none.safetensors", "--frames", "1"),
        lambda d: None,
        mentions="none.safetensors",
    ),  # fmt: skip
    CliCase(
        "drive --out into a folder that is a file",
        ("drive", "--headless", "--source", "{d}/take.npz", "--out", "{d}/take.npz/o.mp4"),
        _good_recording,
        mentions="is a file",
    ),  # fmt: skip
    CliCase("eval on a folder", ("eval", "{d}"), lambda d: None, mentions="is a folder", fast=True),
    CliCase("eval on a named pipe", ("eval", "{d}/m.safetensors"), _fifo, mentions="named pipe", fast=True),
    CliCase(
        "eval on a truncated checkpoint",
        ("eval", "{d}/m.safetensors"),
        lambda d: _checkpoint(d, cut=8),
        mentions="truncated",
    ),  # fmt: skip
    CliCase(
        "eval on a checkpoint whose header nests 50,000 levels",
        ("eval", "{d}/m.safetensors"),
        _deep_checkpoint,
        mentions="nested",
    ),  # fmt: skip
    CliCase(
        "eval on a checkpoint with crop_size 60000",
        ("eval", "{d}/m.safetensors"),
        lambda d: _checkpoint(d, data={"crop_size": 60000}),
        mentions="crop_size",
    ),  # fmt: skip
    CliCase(
        "eval on a checkpoint of a 65,536-wide model",
        ("eval", "{d}/m.safetensors"),
        lambda d: _checkpoint(d, model={"transformer": {"width": 65536, "heads": 4}}),
        mentions="width",
    ),  # fmt: skip
    CliCase(
        "train a YAML with a 5,000-digit integer",
        ("train", "{d}/t.yaml"),
        _yaml("name: " + "7" * 5000 + "\n"),
        mentions="t.yaml",
    ),  # fmt: skip
    CliCase(
        "train a YAML with the date 2024-13-45", ("train", "{d}/t.yaml"), _yaml("name: 2024-13-45\n"), mentions="t.yaml"
    ),  # fmt: skip
    CliCase(
        "train --set name=2024-13-45",
        ("train", "{d}/t.yaml", "--set", "name=2024-13-45"),
        _yaml("steps: 1\n"),
        mentions="--set",
    ),  # fmt: skip
    CliCase(
        "train a YAML with crop_size -64",
        ("train", "{d}/t.yaml"),
        _yaml("data:\n  crop_size: -64\n"),
        mentions="crop_size",
    ),  # fmt: skip
    CliCase(
        "train on a shard whose sample declares an 8 TiB array",
        ("train", "{d}/t.yaml", "--fresh", "--no-progress"),
        _shard_8tib,
        mentions="limit",
        rss_mib=2000,
    ),  # fmt: skip
    CliCase(
        "create --out an existing folder",
        ("create", "{d}/photo.jpg", "--out", "{d}/existing"),
        _photo,
        mentions="is a folder",
        fast=True,
    ),  # fmt: skip
    CliCase("export --out a folder", ("export", "{d}/avatar.ply", "--out", "{d}"), _ply, mentions="is a folder"),
    CliCase(
        "export to a full disk (RLIMIT_FSIZE 4 KiB)",
        ("export", "{d}/avatar.ply", "--out", "{d}/big.ply"),
        _ply,
        mentions="big.ply",
        file_size_limit=4096,
    ),  # fmt: skip
    CliCase("render a NaN .ply", ("render", "{d}/avatar.ply", "--out", "{d}/o.png"), _nan_ply, mentions="NaN"),
    CliCase(
        "render --out into a folder that is a file",
        ("render", "demo", "--out", "{d}/photo.jpg/o.png"),
        _photo,
        mentions="is a file",
    ),  # fmt: skip
)


# -- running -------------------------------------------------------------------------------------------------------
# Linux carries a process's peak RSS across exec, and a fork of this (possibly large, e.g. pytest after many tests)
# process starts with this process's pages: its ru_maxrss would be ours. So each case starts from a small fresh
# launcher, which sets the limits, forks and execs the command and reports the command's own wait4 usage as JSON.
_LAUNCHER = r"""
import json, os, resource, signal, sys, time
spec = json.loads(sys.argv[1])
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (spec["as"], spec["as"]))
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu"], spec["cpu"]))
    if spec["fsize"] is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], spec["fsize"]))
    os.execv(spec["argv"][0], spec["argv"])
t0, timed_out = time.perf_counter(), False
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.perf_counter() - t0 > spec["wall"]:
        os.kill(pid, signal.SIGKILL)
        timed_out = True
        _, status, usage = os.wait4(pid, 0)
        break
    time.sleep(0.05)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "timed_out": timed_out}))
"""


def run_case(case: CliCase, work: Path) -> dict:
    """Run one case in a fresh process; the result records what happened and `problems` what was wrong."""
    d = work / re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")
    d.mkdir(parents=True, exist_ok=True)
    case.make(d)
    before = {p.name for p in d.rglob("*")}
    args = [a.replace("{d}", str(d)) for a in case.args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    err_path = d.parent / f"{d.name}.stderr"
    spec = {"argv": [sys.executable, str(ROOT / "main.py"), *args], "as": MEMORY_LIMIT, "cpu": CPU_LIMIT_S,
            "fsize": case.file_size_limit, "wall": WALL_LIMIT_S}  # fmt: skip
    t0 = time.perf_counter()
    with open(err_path, "wb") as err:
        launched = subprocess.run(
            [sys.executable, "-I", "-c", _LAUNCHER, json.dumps(spec)], cwd=d, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=err, timeout=WALL_LIMIT_S + 60,
        )  # fmt: skip
    report = json.loads(launched.stdout.decode().strip().splitlines()[-1])
    timed_out = report["timed_out"]
    seconds = time.perf_counter() - t0
    stderr = err_path.read_text(errors="replace")
    errors = [ln for ln in stderr.splitlines() if ln.startswith(("ERROR", "CRITICAL"))]
    rc = report["exit"]
    result = {
        "case": case.name,
        "command": "main.py " + " ".join(a.replace(str(d), "DIR") for a in case.args),
        "exit": rc,
        "rss_mib": round(report["maxrss_kib"] / 1024),
        "cpu_s": round(report["cpu_s"], 2),
        "wall_s": round(seconds, 2),
        "message": (errors or stderr.strip().splitlines() or [""])[-1][:300].replace(str(d), "DIR"),
        "problems": [],
    }
    problems = result["problems"]
    if timed_out:
        problems.append(f"still running after {WALL_LIMIT_S:.0f} s (killed)")
    if rc != case.expect:
        problems.append(f"exit status {rc}, expected {case.expect}")
    if "Traceback" in stderr:
        problems.append("a traceback instead of a message")
    if case.expect == 2 and len(errors) != 1:
        problems.append(f"{len(errors)} error lines, expected one")
    mention = case.mentions.replace("{d}", str(d))
    if mention and not any(mention in e for e in errors):
        problems.append(f"the error does not mention {mention!r}")
    if result["rss_mib"] > case.rss_mib:
        problems.append(f"peak RSS {result['rss_mib']} MiB, bound {case.rss_mib} MiB")
    left = sorted(p.name for p in d.rglob("*") if p.name not in before and p.name.endswith(".tmp"))
    if left:
        problems.append(f"temporaries left behind: {left}")
    return result


def record(result: dict) -> None:
    from hardening_fuzz import summary_dir

    out = summary_dir() / "cli"
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9]+", "-", result["case"].lower()).strip("-")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))


def cli_table(results: list[dict]) -> str:
    lines = [
        f"Each case: a fresh `python main.py` under RLIMIT_AS {MEMORY_LIMIT >> 30} GiB and RLIMIT_CPU {CPU_LIMIT_S} s; "
        "peak RSS from `wait4`, started from a small launcher so that no parent's pages count (the interpreter with torch and the command's imports is most of it).",
        "",
        "| case | exit | peak RSS | CPU | message (first 120 characters) | problems |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in sorted(results, key=lambda r: r["case"]):
        msg = r["message"].replace("|", "\\|")[:120]
        lines.append(
            f"| {r['case']} | {r['exit']} | {r['rss_mib']} MiB | {r['cpu_s']:.1f} s | `{msg}` "
            f"| {'; '.join(r['problems']) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="run the cases whose name contains this text")
    p.add_argument("--write", type=Path, help="replace the cli table between the markers in this markdown file")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="lca-cli-fuzz-") as work:
        for case in CASES:
            if args.only.lower() in case.name.lower():
                r = run_case(case, Path(work))
                record(r)
                results.append(r)
                print(f"{'ok ' if not r['problems'] else 'BAD'} {r['rss_mib']:5d} MiB {r['wall_s']:6.1f} s  {r['case']}"
                      f"{'  ' + '; '.join(r['problems']) if r['problems'] else ''}", flush=True)  # fmt: skip
    md = cli_table(results)
    if args.write is not None:
        text = args.write.read_text()
        if CLI_BEGIN not in text:
            raise SystemExit(f"{args.write} has no {CLI_BEGIN} ... {CLI_END} markers")
        args.write.write_text(
            re.sub(
                re.escape(CLI_BEGIN) + ".*?" + re.escape(CLI_END),
                lambda _: f"{CLI_BEGIN}\n{md}\n{CLI_END}",
                text,
                flags=re.S,
            )  # fmt: skip
        )
    else:
        print(md)
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
