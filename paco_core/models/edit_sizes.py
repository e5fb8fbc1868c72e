"""Working sizes for edits, and the Qwen-Image-Edit condition size that diffusers fixes.

FLUX and Qwen-Image take sides that are multiples of 16 (VAE x8, 2x2 latent packing).
An edit works at the input's size (or a chosen area) snapped to that grid.

Qwen-Image-Edit's condition image size is fixed inside diffusers' pipeline modules
(``calculate_dimensions`` called with 1024*1024 in Qwen-Image-Edit; ``VAE_IMAGE_SIZE`` /
``CONDITION_IMAGE_SIZE`` in Edit-Plus) with no argument to change it.
``qwen_condition_area`` swaps those module attributes for one call, under a lock, and
restores them in ``finally``.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from paco_core.errors import InputError
from paco_core.families import family
from paco_core.families.qwen_image_edit import QWEN_IMAGE_ARCHITECTURE

SIZE_MULTIPLE = 16
"""Every side the FLUX / Qwen-Image pipelines take is a multiple of this (VAE 8 x packing 2)."""

_QWEN_PATCH_LOCK = threading.Lock()


def working_size(width: int, height: int, area: int | None = None) -> tuple[int, int]:
    """The (width, height) the model works at for an input of this size.

    The aspect is kept; the area is ``area`` (or the input's own); both sides are rounded
    to the nearest multiple of 16 (halves round up; at least 16).
    """
    if width < 1 or height < 1:
        raise InputError(f"the image is empty ({width}x{height}).")
    return _size_for_area(area if area is not None else width * height, width / height)


@contextmanager
def qwen_condition_area(kind: str, area: int) -> Iterator[None]:
    """Make Qwen-Image-Edit size its condition image to ``area`` pixels for one call.

    diffusers fixes the condition size inside the pipeline module (``calculate_dimensions``
    called with 1024*1024 in Qwen-Image-Edit; ``VAE_IMAGE_SIZE`` / ``CONDITION_IMAGE_SIZE``
    in Edit-Plus) and offers no argument for it. This swaps those module attributes for
    the duration of the call, under a lock, and restores them in ``finally``. Sides are
    snapped to 16 (diffusers snaps to 32) so a condition of the working size lines up
    pixel for pixel with the output.
    """
    item = family(kind)
    if item.architecture.name != QWEN_IMAGE_ARCHITECTURE.name:
        raise InputError(f"condition_area applies to Qwen-Image-Edit pipelines, not {kind}.")
    module = importlib.import_module(item.diffusers_module)
    if hasattr(module, "VAE_IMAGE_SIZE"):  # Edit-Plus: several condition images, sized by module constants
        patches = {
            "calculate_dimensions": _size_for_area,
            "VAE_IMAGE_SIZE": area,
            "CONDITION_IMAGE_SIZE": min(module.CONDITION_IMAGE_SIZE, area),
        }
    else:

        def condition_size(target_area, ratio):
            width, height = _size_for_area(area, ratio)
            return width, height, None

        patches = {"calculate_dimensions": condition_size}
    with _QWEN_PATCH_LOCK:
        saved = {name: getattr(module, name) for name in patches}
        try:
            for name, value in patches.items():
                setattr(module, name, value)
            yield
        finally:
            for name, value in saved.items():
                setattr(module, name, value)


def _size_for_area(area: int, ratio: float) -> tuple[int, int]:
    """(width, height) of about ``area`` pixels at aspect ``ratio`` = width / height, on the 16 grid."""
    width = math.sqrt(area * ratio)
    return _snap(width), _snap(width / ratio)


def _snap(side: float) -> int:
    return max(SIZE_MULTIPLE, int(math.floor(side / SIZE_MULTIPLE + 0.5)) * SIZE_MULTIPLE)
