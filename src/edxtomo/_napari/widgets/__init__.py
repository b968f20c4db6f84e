"""Dock widgets: load, reconstruct, export."""
