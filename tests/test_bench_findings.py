"""bench/findings.py: means with 95% intervals from per-identity, per-seed evaluation JSON, verdicts, and plots."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import findings  # noqa: E402


def _write_eval(path: Path, values: dict[str, list[float]]) -> None:
    benches = {}
    for bench, vals in values.items():
        ids = [
            {"key": f"id{i}", "person": {"psnr": v, "ssim": 0.9, "l1": 0.05}, "frame": {"psnr": v + 6}}
            for i, v in enumerate(vals)
        ]
        benches[bench] = {"all": {"person": {"psnr": float(np.mean(vals))}}, "per_identity": ids}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmarks": benches}))


def test_intervals_and_verdicts_from_per_seed_per_identity_json(tmp_path):
    rng = np.random.default_rng(0)
    people = rng.normal(18, 2, size=32)  # identities differ far more than the arms
    for seed in range(3):
        noise = rng.normal(0, 0.05, size=32)
        _write_eval(tmp_path / "f-posttrain" / f"seed{seed}" / "eval.json", {"studio-test": list(people + 1.0 + noise)})
        _write_eval(tmp_path / "f-studio-only" / f"seed{seed}" / "eval.json", {"studio-test": list(people + noise)})
        _write_eval(tmp_path / "f-mixed" / f"seed{seed}" / "eval.json", {"studio-test": list(people + 1.0 - noise)})
    text, data = findings.report(tmp_path)
    arm = data["arms"]["f-posttrain"]["studio-test"]
    assert arm["lo"] < arm["mean"] < arm["hi"] and arm["seeds"] == 3 and arm["identities"] == 32
    assert arm["identity_sd"] > 1.0 > arm["seed_sd"]
    # pairing on the same identities removes their spread: a 1 dB gap is resolved although identities vary by 2 dB
    f = data["findings"]["(1) pre -> post beats studio-only"]
    assert f["verdict"] == "holds" and 0.9 < f["lo"] < f["mean"] < f["hi"] < 1.1
    assert data["findings"]["(1) pre -> post beats mixed"]["verdict"].startswith("not resolved")
    assert "holds" in text and "[" in text
    findings.plot(data, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_old_single_seed_means_are_read_without_an_interval(tmp_path):
    (tmp_path / "f-posttrain.json").write_text(
        json.dumps({"benchmarks": {"wild-test": {"all": {"psnr": 21.0, "psnr_masked": 14.0}}}})
    )
    _, data = findings.report(tmp_path)
    v = data["arms"]["f-posttrain"]["wild-test"]
    assert v["mean"] == 14.0 and not np.isfinite(v["lo"])  # person PSNR was "psnr_masked" there
    _, frame = findings.report(tmp_path, region="frame")
    assert frame["arms"]["f-posttrain"]["wild-test"]["mean"] == 21.0


def test_finding_four_reads_the_personalise_json(tmp_path):
    rows = [
        {a: {"person": {"psnr": 15.0 + d + i * 0.1}, "frame": {"psnr": 20.0}, "seconds": s}
         for a, d, s in (("feed_forward", 2.0, 0.02), ("per_subject", 0.0, 9.0), ("feed_forward_refined", 2.5, 9.0))}
        | {"key": f"id{i}"}
        for i in range(8)
    ]  # fmt: skip
    (tmp_path / "personalise").mkdir()
    (tmp_path / "personalise" / "seed0.json").write_text(
        json.dumps({"benchmarks": {"studio-test": {"per_identity": rows}}})
    )
    text, data = findings.report(tmp_path)
    gap = data["personalise"]["studio-test"]["feed_forward_minus_per_subject"]
    assert abs(gap["mean"] - 2.0) < 1e-9 and data["personalise"]["studio-test"]["per_subject"]["seconds"] == 9.0
    assert "per-subject" in text
