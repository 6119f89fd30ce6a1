"""No pickle-based or unsafe deserialisation anywhere in the project's code."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("core", "app", "bench", "render", "tests")


def _python_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")]
    return sorted(files + [p for p in ROOT.glob("*.py")])


def _calls(pattern: str) -> list[tuple[Path, int, str]]:
    """(file, line, text) of every call matching `pattern`, with the call's arguments joined across lines."""
    out = []
    rx = re.compile(pattern)
    for path in _python_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in rx.finditer(text):
            depth, i = 0, m.end() - 1
            while i < len(text):  # the text up to the matching closing parenthesis
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            out.append((path, text.count("\n", 0, m.start()) + 1, text[m.start() : i + 1]))
    return out


def test_torch_load_is_only_called_with_weights_only_true():
    calls = _calls(r"\btorch\.load\(")
    bad = [f"{p.relative_to(ROOT)}:{n}" for p, n, c in calls if not re.search(r"weights_only\s*=\s*True", c)]
    assert not bad, f"torch.load without weights_only=True (it would run pickled code): {bad}"
    assert len(calls) >= 1  # the encoder's .pth reader is found, so the search itself works


def test_yaml_is_only_read_with_safe_load():
    unsafe = _calls(r"\byaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(")
    loaders = _calls(r"\bLoader\s*=\s*yaml\.(Loader|UnsafeLoader|FullLoader)\b\(?")
    bad = [f"{p.relative_to(ROOT)}:{n}" for p, n, _ in unsafe + loaders]
    assert not bad, f"YAML read without safe_load (it can build arbitrary objects): {bad}"
    assert _calls(r"\byaml\.safe_load\(")


def test_no_pickle_or_numpy_pickle_loading():
    bad = _calls(r"\b(pickle|cPickle|dill|joblib)\.loads?\(") + [
        c for c in _calls(r"\bnp\.load\(") if re.search(r"allow_pickle\s*=\s*True", c[2])
    ]
    assert not [f"{p.relative_to(ROOT)}:{n}" for p, n, _ in bad]
