"""Real-time moderngl splat renderer, camera controls and overlays."""
