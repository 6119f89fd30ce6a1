"""OpenGL contexts for the renderer: headless EGL, GLX standalone beside Dear PyGui, or the current one."""

from __future__ import annotations

import logging
import os
from typing import Literal

import moderngl

log = logging.getLogger(__name__)

ContextKind = Literal["auto", "egl", "glx", "current"]
MIN_GL_VERSION = 330


def create_context(kind: ContextKind = "auto") -> moderngl.Context:
    """An OpenGL >= 3.3 core context.

    - "egl": headless (tests, `main.py render`, the GPU machine); needs no display.
    - "glx": standalone offscreen context under X, the one to use inside the Dear PyGui studio
      (wrap every moderngl call in `with ctx:` so the GUI's own context is current again afterwards).
    - "current": attach to the context current on this thread (a glfw window).
    - "auto": "egl", falling back to "glx" when a display is present.
    """
    if kind == "current":
        ctx = moderngl.create_context(require=MIN_GL_VERSION)
    elif kind in ("egl", "glx"):
        ctx = _standalone(kind)
    elif kind == "auto":
        try:
            ctx = _standalone("egl")
        except Exception as egl_error:  # noqa: BLE001 - any loader failure means: try the next backend
            if not os.environ.get("DISPLAY"):
                raise RuntimeError(
                    f"could not create a headless EGL OpenGL context ({egl_error}); install the EGL loader and "
                    "Mesa (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or run under a display"
                ) from egl_error
            log.info("EGL unavailable (%s); using a GLX standalone context", egl_error)
            ctx = _standalone("glx")
    else:
        raise ValueError(f"unknown context kind {kind!r}; use one of auto, egl, glx, current")
    log.debug("OpenGL context: %s, %s", ctx.info["GL_RENDERER"], ctx.info["GL_VERSION"])
    return ctx


def _standalone(backend: str) -> moderngl.Context:
    # Drivers such as NVIDIA's hand out exactly the version asked for: ask for 4.3 (compute) first.
    try:
        return moderngl.create_standalone_context(require=430, backend=backend)
    except Exception:  # noqa: BLE001 - an older GL: 3.3 core is enough without GPU sorting
        return moderngl.create_standalone_context(require=MIN_GL_VERSION, backend=backend)


def renderer_name(ctx: moderngl.Context) -> str:
    """Human-readable GL renderer and version, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits) / 4.5 (Core Profile) Mesa'."""
    return f"{ctx.info['GL_RENDERER']} / {ctx.info['GL_VERSION']}"


def has_compute(ctx: moderngl.Context) -> bool:
    """Whether compute shaders and storage buffers (OpenGL 4.3) are available."""
    return ctx.version_code >= 430
