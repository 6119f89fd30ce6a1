"""A/B of two checkpoints: both decode the same example photos and are rendered on one fixed grid of views,
poses and expressions, side by side in one labelled image (no GUI code; the training panel shows and saves it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from app.presets import load_expression_presets, load_pose_presets, pose_from_rotations
from app.state import CAMERA_PRESETS, EditState, edit_frame
from app.viewport import orbit_camera
from core.raster.types import Camera, Gaussians

VIEWS = ("front", "side", "back")
# (label, pose preset or "" for the rest pose, expression preset): the rows of each checkpoint's block
VARIANTS = (
    ("rest, neutral", "", "neutral"),
    ("walking, smile", "walking", "smile"),
    ("waving, surprise", "waving", "surprise"),
)
TILE = (96, 128)  # (W, H) of one rendered view
LABEL_H = 18
BACKGROUND = (0.13, 0.14, 0.16)


@dataclass(frozen=True)
class GridCell:
    row: int
    col: int
    view: str
    variant: str
    edit: EditState


def grid_cells(joint_names: tuple[str, ...]) -> list[GridCell]:
    """The fixed grid: one row per pose/expression variant, one column per view (same for every checkpoint)."""
    poses, expressions = load_pose_presets(), load_expression_presets()
    cells = []
    for r, (label, pose, expr) in enumerate(VARIANTS):
        edit = EditState().with_expression(expressions.get(expr, {}))
        if pose:
            edit = replace(edit, pose=pose_from_rotations(poses[pose], joint_names))
        cells += [GridCell(r, c, view, label, edit) for c, view in enumerate(VIEWS)]
    return cells


def _label(text: str, width: int) -> np.ndarray:
    img = np.zeros((LABEL_H, width, 3), np.uint8)
    cv2.putText(img, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (235, 235, 235), 1, cv2.LINE_AA)
    return img


def _rasterise(g: Gaussians, cam: Camera) -> np.ndarray:
    from core.raster.rasterize import rasterize

    r = rasterize(g.to(torch.float32), cam, background=BACKGROUND)
    return (r.color[0].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)  # [H, W, 3]


def render_block(avatar, lighting, *, tile: tuple[int, int] = TILE, render=_rasterise) -> np.ndarray:
    """One checkpoint's grid [rows * H, views * W, 3] uint8 of a studio avatar (`drive(frame)`)."""
    w, h = tile
    cells = grid_cells(avatar.controls.joint_names)
    out = np.zeros((len(VARIANTS) * h, len(VIEWS) * w, 3), np.uint8)
    for c in cells:
        g = avatar.drive(edit_frame(c.edit, avatar.controls, lighting))
        view = replace(CAMERA_PRESETS[c.view], distance=3.2)
        out[c.row * h : (c.row + 1) * h, c.col * w : (c.col + 1) * w] = render(g, orbit_camera(view, w, h))
    return out


def ab_sheet(
    block_a: np.ndarray,  # [rows * H, views * W, 3] uint8 from render_block
    block_b: np.ndarray,
    label_a: str,
    label_b: str,
    *,
    tile: tuple[int, int] = TILE,
) -> np.ndarray:
    """A | B blocks side by side with a title over each and the variant and view names: [H', W', 3] uint8."""
    if block_a.shape != block_b.shape:
        raise ValueError(f"A/B blocks differ in shape: {block_a.shape} vs {block_b.shape}")
    w, h = tile
    gap = np.full((block_a.shape[0], 6, 3), 255, np.uint8)
    body = np.concatenate([block_a, gap, block_b], 1)
    views = np.concatenate(
        [
            np.concatenate([_label(v, w) for v in VIEWS], 1),
            gap[:LABEL_H],
            np.concatenate([_label(v, w) for v in VIEWS], 1),
        ],
        1,
    )
    titles = np.concatenate(
        [_label("A: " + label_a, block_a.shape[1]), gap[:LABEL_H], _label("B: " + label_b, block_b.shape[1])], 1
    )
    rows = [
        np.concatenate([_label(lab, 110), np.zeros((LABEL_H, body.shape[1] - 110, 3), np.uint8)], 1)
        for lab, *_ in VARIANTS
    ]
    parts = [titles, views]
    for r, strip in enumerate(rows):
        parts += [strip, body[r * h : (r + 1) * h]]
    return np.concatenate(parts, 0)


def compare_checkpoints(
    path_a: Path,
    path_b: Path,
    out_png: Path,
    *,
    tile: tuple[int, int] = TILE,
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Decode the first bundled example with each checkpoint, render the grid, save the sheet to `out_png`."""
    from app.model_avatar import ModelAvatar, example_files
    from core.io import atomic_write_bytes
    from core.model.examples import decode_example
    from core.raster.lighting import LightingEdit, build_lighting, load_environment_presets
    from core.train.export import model_from_checkpoint

    examples = example_files()
    if not examples:
        raise FileNotFoundError("no example inputs in assets/examples to decode the two avatars from")
    lighting = build_lighting(LightingEdit(), load_environment_presets())
    blocks, labels = [], []
    for i, path in enumerate((path_a, path_b)):
        if progress:
            progress(0.1 + 0.45 * i, f"decoding {Path(path).parent.name}/{Path(path).name}")
        model, meta = model_from_checkpoint(path, "cpu")
        avatar = ModelAvatar(decode_example(model, examples[0])[0], name=str(path), description="", device="cpu")
        blocks.append(render_block(avatar, lighting, tile=tile))
        labels.append(f"{Path(path).parent.name} @ step {meta['step']}")
    sheet = ab_sheet(blocks[0], blocks[1], labels[0], labels[1], tile=tile)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the A/B sheet as PNG")
    atomic_write_bytes(out_png, buf.tobytes())
    if progress:
        progress(1.0, f"saved {out_png}")
    return sheet
