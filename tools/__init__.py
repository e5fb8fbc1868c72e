"""Developer tools (not shipped with the pack): run from the repository root as ``python -m tools.<name>``."""
