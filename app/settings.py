"""Settings kept between studio sessions (last avatar, camera, lighting), as JSON in the studio's home folder."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.state import OrbitView
from core.raster.lighting import LightingEdit

log = logging.getLogger(__name__)


def studio_home() -> Path:
    return Path(os.environ.get("LCA_STUDIO_HOME", Path.home() / ".lca_studio"))


@dataclass
class Settings:
    last_avatar: str = ""  # a file path, or "gallery:<name>"
    view: dict = field(default_factory=lambda: asdict(OrbitView()))
    lighting: dict = field(default_factory=lambda: asdict(LightingEdit()))

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or studio_home() / "settings.json"
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
            out = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
            out.orbit_view()
            out.lighting_edit()
            return out
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            log.warning("ignoring unreadable studio settings %s (%s); starting from defaults", path, e)
            return cls()

    def orbit_view(self) -> OrbitView:
        v = dict(self.view)
        v["target"] = tuple(v.get("target", (0.0, 0.9, 0.0)))
        return OrbitView(**v)

    def lighting_edit(self) -> LightingEdit:
        d = dict(self.lighting)
        d["key_color"] = tuple(d.get("key_color", (1.0, 1.0, 1.0)))
        return LightingEdit(**d)

    def save_from(self, session, path: Path | None = None) -> Path:
        """Remember the session's camera, lighting and avatar (written atomically)."""
        path = path or studio_home() / "settings.json"
        self.view = asdict(session.view)
        self.lighting = asdict(session.edit.lighting)
        if session.avatar_path is not None:
            self.last_avatar = str(session.avatar_path)
        elif session.avatar.name:
            self.last_avatar = f"gallery:{session.avatar.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path
