"""Landmarks -> every driving channel: the face (expression, gaze, head) and the body and hands, groups switchable.

The face retargeter measures the head's rotation relative to the camera; when the body is driven too, the head
is expressed relative to the chest the body solve found, so turning the whole body does not turn the head twice.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.tracking.face import FaceRetargeter, head_channels
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)


def _body_retargeter(body: bool, hands: bool) -> Any | None:
    """core.tracking.body.BodyRetargeter, or None when it is not installed."""
    try:
        from core.tracking.body import BodyRetargeter
    except ImportError as e:
        log.warning("body retargeting is unavailable (%s): driving the face only", e)
        return None
    return BodyRetargeter(body=body, hands=hands, relaxed_arms=True)  # unseen arms hang down, not in the A pose


class Retargeter:
    """Face + body + hands retargeting. Groups can be switched on and off live (attributes face, body, hands)."""

    def __init__(self, *, face: bool = True, body: bool = True, hands: bool = True, neck_share: float = 0.0) -> None:
        self.face, self.body, self.hands = face, body, hands
        self.face_retargeter = FaceRetargeter(neck_share=neck_share)
        self._body = _body_retargeter(True, True) if (body or hands) else None
        self._body_tried = body or hands

    @property
    def body_available(self) -> bool:
        return self._body is not None

    def __call__(self, lm: Landmarks) -> dict[str, float]:
        out: dict[str, float] = {}
        if (self.body or self.hands) and not self._body_tried:
            self._body, self._body_tried = _body_retargeter(True, True), True
        if self._body is not None and (self.body or self.hands):
            self._body.body, self._body.hands = self.body, self.hands
            out.update(self._body(lm))
        if self.face:
            face = self.face_retargeter(lm)
            obs_head = [k for k in face if k.startswith("pose.")]
            if obs_head and self.body and self._body is not None:
                chest = np.asarray(getattr(self._body, "chest_rotation", np.eye(3)), np.float64)
                obs = self.face_retargeter.last_observation
                if obs is not None:
                    for k in obs_head:
                        face.pop(k)
                    face.update(head_channels(chest.T @ obs.R_world_head, self.face_retargeter.neck_share))
            out.update(face)
        return out

    def set_neutral(self, lm: Landmarks | None) -> bool:
        """Take this frame's face as the person's neutral (see FaceRetargeter.set_neutral)."""
        return self.face_retargeter.set_neutral(lm)

    def reset(self) -> None:
        self.face_retargeter.reset()
        if self._body is not None and hasattr(self._body, "reset"):
            self._body.reset()
