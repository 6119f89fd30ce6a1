"""Core of the avatar studio: body model, rasterisers, avatar model, data, training and tracking (no GUI)."""
