"""What this machine offers the studio: versions, devices and optional backends."""

from __future__ import annotations

import importlib.util
import platform
import sys


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def describe_environment() -> dict:
    import torch

    info: dict = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "optional": {m: has_module(m) for m in ("gsplat", "anny", "smplx", "dearpygui", "moderngl", "glfw")},
    }
    return info
