"""Test double of ``comfy_api.latest.ui``: the text preview the pack shows on its nodes."""

from __future__ import annotations

from ._io import _UIOutput


class PreviewText(_UIOutput):
    """Text shown on the node (ComfyUI's ``ui.PreviewText``)."""

    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


__all__ = ["PreviewText"]
