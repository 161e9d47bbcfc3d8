"""Pyroclast."""
