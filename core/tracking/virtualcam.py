"""The driving preview as a virtual camera for video-call apps (pyvirtualcam, an optional dependency).

`pip install "lca-studio[virtualcam]"` brings pyvirtualcam; it also needs a camera device: v4l2loopback on
Linux, OBS Studio's virtual camera on Windows and macOS. Without them `open_virtual_camera` raises
`VirtualCameraUnavailable` with a message that says so, and the studio keeps running.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

from core.tracking.video_out import as_uint8_rgb

log = logging.getLogger(__name__)

HOW_TO = (
    "install pyvirtualcam (pip install 'lca-studio[virtualcam]') and a virtual camera device: "
    "v4l2loopback on Linux (sudo modprobe v4l2loopback), OBS Studio on Windows or macOS"
)


class VirtualCameraUnavailable(RuntimeError):
    """No virtual camera can be opened here; the message says what to install."""


def virtual_camera_available() -> bool:
    """Whether pyvirtualcam is installed (a device may still be missing: `open_virtual_camera` tells)."""
    return importlib.util.find_spec("pyvirtualcam") is not None


class VirtualCamera:
    """A pyvirtualcam camera of a fixed size; frames of another size are resized to it."""

    def __init__(self, cam, width: int, height: int) -> None:
        self._cam = cam
        self.width, self.height = width, height
        self.device: str = getattr(cam, "device", "virtual camera")
        self.frames_sent = 0

    def send(self, frame: np.ndarray) -> None:
        """Show an [H, W, 3|4] image (float [0, 1] or uint8) on the virtual camera."""
        pixels = as_uint8_rgb(frame)
        if pixels.shape[:2] != (self.height, self.width):
            import cv2

            pixels = cv2.resize(pixels, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        self._cam.send(pixels)
        self.frames_sent += 1

    def close(self) -> None:
        self._cam.close()

    def __enter__(self) -> VirtualCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_virtual_camera(width: int, height: int, fps: float = 30.0) -> VirtualCamera:
    """Open the system's virtual camera at width x height; raises VirtualCameraUnavailable when there is none."""
    if not virtual_camera_available():
        raise VirtualCameraUnavailable(f"no virtual camera: pyvirtualcam is not installed; {HOW_TO}")
    import pyvirtualcam

    try:
        cam = pyvirtualcam.Camera(width=width, height=height, fps=fps)
    except (RuntimeError, OSError, ValueError) as e:
        raise VirtualCameraUnavailable(f"no virtual camera device ({e}); {HOW_TO}") from e
    log.info("virtual camera %s opened at %dx%d", getattr(cam, "device", "?"), width, height)
    return VirtualCamera(cam, width, height)
