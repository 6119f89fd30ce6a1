"""Dock panels of the studio: each owns its Dear PyGui items and edits the session through its methods."""
