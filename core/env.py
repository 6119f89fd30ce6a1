"""What this machine offers the studio: versions, devices and optional backends."""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def processor_name() -> str:
    """The CPU as the platform names it (its architecture where it gives no name)."""
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str | None = None) -> str:
    """The name of CUDA `device` (default: the GPU, if there is one), else the processor's, else "cpu"."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def describe_environment() -> dict:
    import torch

    info: dict = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device_name(),
        "optional": {m: has_module(m) for m in ("gsplat", "anny", "smplx", "dearpygui", "moderngl", "glfw")},
    }
    return info
