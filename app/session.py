"""The studio's state object: current avatar, edit state with undo/redo, preview camera, playback, messages.

No GUI code here: panels call these methods (they record intent and mark the preview dirty) and the frame
loop calls `frame()` to decode only what changed. Tests drive a `Session` directly or through the GUI.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from app.avatar_source import AvatarLoadError, StudioAvatar, default_avatar, load_avatar
from app.history import History
from app.state import CAMERA_PRESETS, EditState, OrbitView, edit_frame
from core.raster.lighting import Lighting, build_lighting, load_environment_presets
from core.raster.parts import swap_parts
from core.raster.types import PART_NAMES, Gaussians

log = logging.getLogger(__name__)

PREVIEW_DETAIL = 4  # Gaussians per anchor decoded while a control is dragged (of 16 in the shipped models)
CPU_PREVIEW_DETAIL = 2  # ... on a CPU-only machine: 2 cores reach >= 10 pictures/s while dragging (docs/PERFORMANCE.md)


def preview_detail() -> int:
    """Gaussians per anchor while a control is dragged on this machine (the full avatar once it settles)."""
    return PREVIEW_DETAIL if torch.cuda.is_available() else CPU_PREVIEW_DETAIL


def decode_threads(cpu_count: int) -> int:
    """Torch threads for decoding on a CPU-only machine of `cpu_count` cores.

    Decoding and the software OpenGL rasteriser take turns within a frame, so on small machines both may use
    every core (2 cores, base avatar: decode 24 ms on 2 threads vs 39 ms on 1, drawing no slower); larger
    machines keep half their cores (at most 4) for the rasteriser's own threads.
    """
    return max(1, min(cpu_count, max(2, min(4, cpu_count // 2))))


def share_cpu_with_gl() -> None:
    """On CPU-only machines size torch's thread pool to share the cores with the software OpenGL rasteriser.

    LCA_TORCH_THREADS overrides the choice (for measurements).
    """
    if not torch.cuda.is_available():
        threads = os.environ.get("LCA_TORCH_THREADS")
        torch.set_num_threads(int(threads) if threads else decode_threads(os.cpu_count() or 2))


@dataclass(frozen=True)
class Message:
    level: int  # logging level
    text: str
    time: float


class Session:
    """Everything the studio shows and edits, with change tracking for the frame loop."""

    def __init__(self, avatar: StudioAvatar | None = None) -> None:
        self.avatar: StudioAvatar = avatar if avatar is not None else default_avatar()
        self.avatar_path: Path | None = None
        self.environments = load_environment_presets()
        self.edit = EditState()
        self.view = CAMERA_PRESETS["front"]
        self.history: History[EditState] = History()
        self.messages: deque[Message] = deque(maxlen=200)
        self.messages_total = 0  # messages ever posted (the deque keeps the last 200)
        self.revision = 0  # bumps on every edit; panels re-read widgets when `external_revision` moves
        self.external_revision = 0  # bumps when the edit changed from outside the widgets (undo, preset, load)
        self.turntable_deg_per_s = 0.0
        self._decoded: tuple[tuple[int, EditState, int | None], Gaussians] | None = None  # (key, Gaussians)
        self._lighting_cache: tuple[object, Lighting] | None = None
        self._avatar_serial = 0
        self.decode_ms = 0.0
        self._donors: dict[str, StudioAvatar] = {}

    # Messages --------------------------------------------------------------------------------
    def say(self, text: str, level: int = logging.INFO) -> None:
        """A message for the GUI's console (and the log)."""
        log.log(level, "%s", text)
        self.post(Message(level, text, time.time()))

    def post(self, message: Message) -> None:
        """Add a message to the console without logging it again."""
        self.messages.append(message)
        self.messages_total += 1

    # Edits -----------------------------------------------------------------------------------
    def apply(self, new: EditState, *, key: str | None = None, external: bool = False) -> None:
        """Make `new` the current edit; `key` merges consecutive changes of one control into one undo step."""
        if new == self.edit:
            return
        self.history.record(self.edit, key)
        self.edit = new
        self.revision += 1
        if external:
            self.external_revision += 1

    def apply_live(self, new: EditState) -> None:
        """Make `new` the current edit without an undo step (live driving changes it dozens of times a second)."""
        if new == self.edit:
            return
        self.edit = new
        self.revision += 1

    def undo(self) -> bool:
        return self._restore(self.history.undo(self.edit))

    def redo(self) -> bool:
        return self._restore(self.history.redo(self.edit))

    def _restore(self, snapshot: EditState | None) -> bool:
        """Make an undo/redo `snapshot` the current edit (False when there was none)."""
        if snapshot is None:
            return False
        self.edit = snapshot
        self.revision += 1
        self.external_revision += 1
        return True

    # Camera ----------------------------------------------------------------------------------
    def set_view(self, view: OrbitView) -> None:
        self.view = view

    def camera_preset(self, name: str) -> None:
        if name not in CAMERA_PRESETS:
            raise ValueError(f"unknown camera preset {name!r}; choose one of {', '.join(CAMERA_PRESETS)}")
        view = CAMERA_PRESETS[name]
        if name == "face":
            view = replace(view, target=self.avatar.face_target())
        self.view = view

    def advance(self, dt: float) -> None:
        """Move time-driven things (turntable) on by `dt` seconds."""
        if self.turntable_deg_per_s:
            self.view = replace(self.view, yaw_deg=(self.view.yaw_deg + self.turntable_deg_per_s * dt) % 360.0)

    # Avatar ----------------------------------------------------------------------------------
    def set_avatar(self, avatar: StudioAvatar, path: Path | None = None) -> None:
        self.avatar = avatar
        self.avatar_path = path
        self._avatar_serial += 1  # a new serial is a new decode key; the old Gaussians go with the next decode
        self.external_revision += 1
        self.say(f"opened avatar: {avatar.name} ({avatar.description})")

    def open_avatar(self, path: str | Path) -> bool:
        """Load an avatar file; on failure the current avatar stays and the reason goes to the console."""
        try:
            avatar = load_avatar(path)
        except AvatarLoadError as e:
            self.say(f"could not open avatar: {e}", logging.ERROR)
            return False
        self.set_avatar(avatar, Path(path))
        return True

    # Decoding --------------------------------------------------------------------------------
    @property
    def lighting(self) -> Lighting:
        return self.lighting_for(self.edit)

    def lighting_for(self, edit: EditState) -> Lighting:
        key = edit.lighting
        cache = self._lighting_cache
        if cache is None or cache[0] != key:
            cache = self._lighting_cache = (key, build_lighting(key, self.environments))
        return cache[1]

    @property
    def avatar_serial(self) -> int:
        """Bumps whenever another avatar is set (part of what identifies a decoded frame)."""
        return self._avatar_serial

    def gaussians(self, detail: int | None = None) -> Gaussians:
        """The Gaussians for the current edit, decoded only when the avatar, the edit or the detail changed.

        `detail=k` asks avatars that offer levels of detail (`supports_detail`) for k Gaussians per anchor
        (a fast preview); others, and `None`, give the full avatar. In the studio only the preview worker's
        thread decodes (`app.preview_worker`).
        """
        return self.decode(self.avatar, self._avatar_serial, self.edit, detail)

    def decode(self, avatar: StudioAvatar, serial: int, edit: EditState, detail: int | None = None) -> Gaussians:
        """`gaussians()` for a snapshot (avatar, its serial, edit) taken earlier: what the preview worker decodes."""
        detail = self._detail_for(avatar, detail)
        key = (serial, edit, detail)
        decoded = self._decoded
        if decoded is None or decoded[0] != key:
            t0 = time.perf_counter()
            g = self._with_swaps(self._drive(avatar, edit, detail), edit, detail)
            self.decode_ms = 1e3 * (time.perf_counter() - t0)
            decoded = self._decoded = (key, g)
        return decoded[1]

    def donor(self, name: str) -> StudioAvatar:
        """A gallery avatar that lends parts (hair, garments) to the current one; opened once."""
        if name not in self._donors:
            from app.gallery import gallery

            entries = gallery()
            if name not in entries:
                raise AvatarLoadError(f"no gallery avatar named {name!r} to take parts from")
            self._donors[name] = entries[name]()
        return self._donors[name]

    @staticmethod
    def _detail_for(avatar: StudioAvatar, detail: int | None) -> int | None:
        return detail if detail is not None and getattr(avatar, "supports_detail", False) else None

    def _drive(self, avatar: StudioAvatar, edit: EditState, detail: int | None) -> Gaussians:
        detail = self._detail_for(avatar, detail)
        frame = edit_frame(edit, avatar.controls, self.lighting_for(edit))
        if detail is None:
            return avatar.drive(frame)
        return avatar.drive(frame, detail=detail)

    def _with_swaps(self, g: Gaussians, edit: EditState, detail: int | None = None) -> Gaussians:
        """Replace each part that has `swap_from` by the donor's part, driven with the same edit."""
        swaps = {i: e.swap_from for i, e in enumerate(edit.parts) if e.swap_from}
        if not swaps or g.parts is None:
            return g
        plain = replace(edit, parts=tuple(replace(e, swap_from="") for e in edit.parts))
        donors = {}
        for i, name in swaps.items():
            try:
                theirs = self._drive(self.donor(name), plain, detail)
            except AvatarLoadError as e:
                self.say(f"cannot swap {PART_NAMES[i]}: {e}", logging.ERROR)
                continue
            if theirs.parts is None:
                self.say(f"cannot swap {PART_NAMES[i]}: {name} has no part labels", logging.ERROR)
                continue
            donors[i] = theirs
        return swap_parts(g, donors)

    @property
    def needs_decode(self) -> bool:
        decoded = self._decoded
        return decoded is None or decoded[0][:2] != (self._avatar_serial, self.edit)
