"""Test double of ``comfy_execution.graph_utils``: the output value that blocks the nodes using it."""

from __future__ import annotations


class ExecutionBlocker:
    """Returned as an output value: every node that takes it is blocked (silently when
    ``message`` is None, else with that error message)."""

    def __init__(self, message):
        self.message = message


__all__ = ["ExecutionBlocker"]
