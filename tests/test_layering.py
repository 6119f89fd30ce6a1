"""Who may import whom (README "Layers"), checked by a static scan of every import statement (ast, nothing imported).

core knows nothing of the studio (`app`) or the OpenGL preview (`render`); the core packages form layers with no
cycle: raster < body < model, tracking < data < train < capture (photos -> avatar), and `core.eval` (evaluation and
fitting harnesses) above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> the packages it may import (besides itself); "core" is the top-level helpers (config, io, env)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "core.raster": {"core"},
    "core.body": {"core", "core.raster"},
    "core.model": {"core", "core.raster", "core.body"},
    "core.tracking": {"core", "core.raster", "core.body"},
    "core.data": {"core", "core.raster", "core.body", "core.tracking"},
    "core.train": {"core", "core.raster", "core.body", "core.model", "core.data"},
    "core.capture": {"core", "core.raster", "core.body", "core.model", "core.tracking", "core.data", "core.train"},
    "core.eval": {
        "core",
        "core.raster",
        "core.body",
        "core.model",
        "core.tracking",
        "core.data",
        "core.train",
        "core.capture",
    },  # fmt: skip
    "render": {"core", "core.raster"},
}


def package_of(module: str) -> str | None:
    """'core.model.avatar' -> 'core.model'; 'app.session' -> 'app'; third-party modules -> None."""
    parts = module.split(".")
    if parts[0] in ("app", "render"):
        return parts[0]
    if parts[0] != "core":
        return None
    if len(parts) > 1 and (ROOT / "core" / parts[1]).is_dir():
        return f"core.{parts[1]}"
    return "core"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, wherever it sits (top level or inside a function)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(rules: dict[str, set[str]]) -> list[str]:
    found = []
    for folder in ("core", "render"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            src = package_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for line, module in imports(path):
                dst = package_of(module)
                if dst is not None and dst != src and dst not in rules.get(src, set()):
                    found.append(f"{path.relative_to(ROOT)}:{line} ({src}) imports {module} ({dst})")
    return found


def test_every_package_has_a_layer() -> None:
    packages = {f"core.{p.name}" for p in (ROOT / "core").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to the layers (here and in the README)"


def test_core_imports_neither_the_studio_nor_the_preview() -> None:
    bad = [v for v in violations(ALLOWED) if v.endswith("(app)") or v.endswith("(render)")]
    assert not bad, "core must not import app or render:\n" + "\n".join(bad)


def test_raster_and_body_do_not_import_the_model() -> None:
    bad = [v for v in violations(ALLOWED) if v.endswith("(core.model)")]
    assert not bad, "core.raster and core.body sit below core.model:\n" + "\n".join(bad)


def test_packages_import_only_the_layers_below_them() -> None:
    bad = violations(ALLOWED)
    assert not bad, "imports against the layering (README 'Layers'):\n" + "\n".join(bad)


def test_the_model_imports_neither_data_nor_tracking() -> None:
    """Photos are fitted in core.capture (core.capture.photo_fit), which may use core.data's fitter; the model may not."""
    bad = [v for v in violations(ALLOWED) if v.split(" ")[0].startswith("core/model/")]
    assert not bad, "core.model imports only core.raster, core.body and core:\n" + "\n".join(bad)


def test_no_package_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for folder in ("core", "render", "app"):
        for path in (ROOT / folder).rglob("*.py"):
            src = package_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for _, module in imports(path):
                dst = package_of(module)
                if dst is not None and dst != src:
                    edges.setdefault(src, set()).add(dst)

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in edges.get(a, ()))

    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if reaches(b, a, {b}))
    assert not cycles, f"package cycles: {cycles}"


def test_the_scan_sees_a_forbidden_import(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from app.session import Session\n    import render.viewer\n")
    assert [m for _, m in imports(bad)] == ["app.session", "render.viewer"]
    assert package_of("core.body.frame") == "core.body" and package_of("core.io") == "core"
    assert package_of("numpy") is None
