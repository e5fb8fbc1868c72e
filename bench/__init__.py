"""Measurements side by side: run from the repository root as ``python -m bench.<name>``."""
