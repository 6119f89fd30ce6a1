"""The per-frame drive as a replayed CUDA graph: one launch instead of a few hundred small kernels.

`drive_gaussians` is a chain of small ops (pose code, pose head, kinematic chain level by level, skinning,
shading); for one avatar at 131K Gaussians an H100 spends most of a frame launching kernels. A CUDA graph
records that chain once for fixed input shapes and replays it, reading the inputs from static buffers.

A `GraphedDrive` is valid for one avatar state (it holds the state's tensors); `Avatar` drops its graphs
whenever an edit rebuilds its caches. Outputs live in the graph's static buffers and are overwritten by the
next replay, so `__call__` returns copies (opacity and part labels, which only an edit changes, are copied once
and shared between frames: treat returned Gaussians as read-only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
from torch import Tensor

from core.model.appearance import Lighting
from core.raster.types import Gaussians

log = logging.getLogger(__name__)

DriveFn = Callable[[Tensor, Tensor, Tensor, Lighting, Tensor], Gaussians]  # pose, expression, gaze, lighting, transl.


def graphs_enabled(device: torch.device) -> bool:
    """CUDA graphs for `Avatar.drive` on CUDA devices unless LCA_CUDA_GRAPHS=0."""
    return device.type == "cuda" and os.environ.get("LCA_CUDA_GRAPHS", "1") != "0"


def lighting_signature(lighting: Lighting) -> tuple[bool, bool]:
    """Which optional lighting inputs are present: they change the recorded ops, so each needs its own graph."""
    return lighting.direction is not None, lighting.code is not None


class GraphedDrive:
    """`fn(pose, expression, gaze, lighting, translation) -> Gaussians` recorded once and replayed."""

    def __init__(
        self,
        fn: DriveFn,
        pose: Tensor,  # [J, 3] or [J, 3, 3]: an example (shapes, device and dtype are fixed from here on)
        expression: Tensor,  # [E]
        gaze: Tensor,  # [2]
        lighting: Lighting,
        translation: Tensor,  # [3]
        warmup: int = 2,
    ) -> None:
        self.signature = (tuple(pose.shape), lighting_signature(lighting))
        self._pose, self._expr, self._gaze, self._transl = (t.clone() for t in (pose, expression, gaze, translation))
        self._light = Lighting(
            env=lighting.env.clone(),
            direction=None if lighting.direction is None else lighting.direction.clone(),
            colour=None if lighting.colour is None else lighting.colour.clone(),
            code=None if lighting.code is None else lighting.code.clone(),
        )
        args = (self._pose, self._expr, self._gaze, self._light, self._transl)
        side = torch.cuda.Stream(device=pose.device)
        side.wait_stream(torch.cuda.current_stream(pose.device))
        with torch.cuda.stream(side):  # warm up off the default stream (lazy inits, caches) before recording
            for _ in range(warmup):
                fn(*args)
        torch.cuda.current_stream(pose.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._out = fn(*args)
        # Opacity and part labels depend on the avatar state only: copied once here, shared by every frame.
        self._fixed = {
            "opacity_logits": self._out.opacity_logits.clone(),
            "parts": None if self._out.parts is None else self._out.parts.clone(),
        }

    def matches(self, pose: Tensor, lighting: Lighting) -> bool:
        return self.signature == (tuple(pose.shape), lighting_signature(lighting))

    def __call__(
        self, pose: Tensor, expression: Tensor, gaze: Tensor, lighting: Lighting, translation: Tensor
    ) -> Gaussians:
        self._pose.copy_(pose, non_blocking=True)
        self._expr.copy_(expression, non_blocking=True)
        self._gaze.copy_(gaze, non_blocking=True)
        self._transl.copy_(translation, non_blocking=True)
        self._light.env.copy_(lighting.env, non_blocking=True)
        for name in ("direction", "colour", "code"):
            dst = getattr(self._light, name)
            if dst is not None:
                dst.copy_(getattr(lighting, name), non_blocking=True)
        self.graph.replay()
        o = self._out
        return Gaussians(
            means=o.means.clone(), quats=o.quats.clone(), log_scales=o.log_scales.clone(), sh=o.sh.clone(),
            **self._fixed,
        )  # fmt: skip
