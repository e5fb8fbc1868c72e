"""Test double of ``comfy_api.latest.ui``: previews saved where ComfyUI would put them."""

from __future__ import annotations

import os
import uuid

import folder_paths

from ._io import FolderType, _UIOutput


class SavedResult(dict):
    def __init__(self, filename: str, subfolder: str, type: FolderType):
        super().__init__(filename=filename, subfolder=subfolder, type=type.value)

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class SavedImages(_UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False):
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict:
        data = {"images": self.results}
        if self.is_animated:
            data["animated"] = (True,)
        return data


def _save_pngs(images, folder: str) -> list[SavedResult]:
    import numpy as np
    from PIL import Image as PILImage

    os.makedirs(folder, exist_ok=True)
    results = []
    for image in images:
        array = (image.detach().cpu().float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        name = f"preview_{uuid.uuid4().hex[:12]}.png"
        PILImage.fromarray(array).save(os.path.join(folder, name))
        results.append(SavedResult(name, "", FolderType.temp))
    return results


class PreviewImage(_UIOutput):
    def __init__(self, image, animated: bool = False, cls=None, **kwargs):
        self.values = _save_pngs(image, folder_paths.get_temp_directory())
        self.animated = animated

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask, animated: bool = False, cls=None, **kwargs):
        preview = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(preview, animated, cls, **kwargs)


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


__all__ = ["SavedResult", "SavedImages", "PreviewImage", "PreviewMask", "PreviewText"]
