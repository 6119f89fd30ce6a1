"""Webcam and video sources, landmark tracking, retargeting to the avatar, filters."""
