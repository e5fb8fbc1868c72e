"""Test double of ``comfy_api.latest``: ``ComfyExtension``, ``io`` and ``ui``."""

from __future__ import annotations

from abc import ABC, abstractmethod

from . import _io as io
from . import _ui as ui


class ComfyExtension(ABC):
    """What a pack's ``comfy_entrypoint()`` returns."""

    async def on_load(self) -> None:
        """Called once when the extension is loaded."""
        return None

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes the extension provides."""


__all__ = ["ComfyExtension", "io", "ui"]
