"""Grid cells: references fitted to a panel, cell masks, and cells pasted into a grid.

A grid of layout ``R x C`` holds ``R*C`` cells of one panel size, numbered row-major from 0
(``paco_core.images``). These helpers are plain PIL: no model code.

Example:
    >>> from PIL import Image
    >>> fit_reference(Image.new("RGBA", (300, 100)), 64, 64).size
    (64, 64)
    >>> cell_mask("2x2", 32, 32, [1]).getpixel((40, 8))
    255
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from PIL import Image

from paco_core.errors import InputError
from paco_core.prompts import Layout, parse_layout

ReferenceFit = Literal["pad", "crop"]
REFERENCE_FITS = ("pad", "crop")
"""How a reference of another aspect fills a panel: ``pad`` (all of it, centred on its mean
colour) or ``crop`` (the panel filled, the overflow cut off centred). Both keep the aspect."""


def as_rgb(image: Image.Image, what: str = "image") -> Image.Image:
    """An RGB copy of any PIL image; transparent parts become white (not black)."""
    if not isinstance(image, Image.Image):
        raise InputError(f"{what} should be a PIL image, got {type(image).__name__}.")
    if min(image.size) < 1:
        raise InputError(f"{what} is empty ({image.size[0]}x{image.size[1]}).")
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def fit_reference(
    image: Image.Image, width: int, height: int, fit: ReferenceFit = "pad", what: str = "reference"
) -> Image.Image:
    """The reference as one ``width x height`` RGB panel, its aspect kept.

    An image already of that size is returned unchanged (pixel for pixel).
    """
    if fit not in REFERENCE_FITS:
        raise InputError(f"reference fit should be one of {', '.join(REFERENCE_FITS)}, got {fit!r}.")
    image = as_rgb(image, what)
    if image.size == (width, height):
        return image
    scale_of = min if fit == "pad" else max
    scale = scale_of(width / image.width, height / image.height)
    new_w, new_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    if fit == "crop":
        left, top = (new_w - width) // 2, (new_h - height) // 2
        return resized.crop((left, top, left + width, top + height))
    mean = tuple(round(sum(channel) / max(1, len(channel))) for channel in _channels(resized))
    canvas = Image.new("RGB", (width, height), mean)
    canvas.paste(resized, ((width - new_w) // 2, (height - new_h) // 2))
    return canvas


def _channels(image: Image.Image) -> list[list[int]]:
    small = image.resize((8, 8), Image.Resampling.BOX)
    return [list(band.getdata()) for band in small.split()]


def cell_box(
    layout: Layout | str, panel_width: int, panel_height: int, cell: int
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a cell in pixels."""
    layout = parse_layout(layout)
    row, col = divmod(cell, layout.cols)
    return (col * panel_width, row * panel_height, (col + 1) * panel_width, (row + 1) * panel_height)


def cell_mask(layout: Layout | str, panel_width: int, panel_height: int, cells: Sequence[int]) -> Image.Image:
    """An ``L`` mask of the grid: 255 (white, to generate) on ``cells``, 0 (kept) elsewhere."""
    layout = parse_layout(layout)
    mask = Image.new("L", (layout.cols * panel_width, layout.rows * panel_height), 0)
    for cell in cells:
        mask.paste(255, cell_box(layout, panel_width, panel_height, cell))
    return mask


def paste_cells(
    grid: Image.Image, source: Image.Image, layout: Layout | str, cells: Sequence[int]
) -> Image.Image:
    """A copy of ``grid`` with ``cells`` taken from ``source`` (same size); every other pixel of
    ``grid`` stays as it was."""
    if grid.size != source.size:
        raise InputError(f"cannot paste cells between grids of {grid.size} and {source.size} pixels.")
    layout = parse_layout(layout)
    panel_w, panel_h = grid.width // layout.cols, grid.height // layout.rows
    result = grid.copy()
    for cell in cells:
        box = cell_box(layout, panel_w, panel_h, cell)
        result.paste(source.crop(box), box[:2])
    return result


def check_cells(cells: Sequence[int], num_cells: int, what: str) -> tuple[int, ...]:
    """0-based cell numbers, each once and inside the grid, in the given order."""
    cells = tuple(cells)
    bad = [
        cell
        for cell in cells
        if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell < num_cells
    ]
    if bad:
        raise InputError(
            f"`{what}` should hold cell numbers from 1 to {num_cells} (row-major), got {[c + 1 if isinstance(c, int) else c for c in bad]}."
        )
    if len(set(cells)) != len(cells):
        raise InputError(f"`{what}` names a cell twice: {[c + 1 for c in cells]}.")
    return cells
