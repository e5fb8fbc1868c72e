"""Images: ComfyUI IMAGE tensors <-> PIL, and grids <-> panels.

A ComfyUI IMAGE is a float tensor ``[B, H, W, C]`` with values in 0..1 (C = 3 for RGB).
A grid of layout ``R x C`` holds ``R*C`` equal panels read row-major (2x2: top-left,
top-right, bottom-left, bottom-right). ``split_grid`` and ``compose_grid`` accept PIL
images (as diffusers returns them) or IMAGE tensors and answer in the same kind.
torch is imported only inside the tensor functions.

Example:
    >>> from PIL import Image
    >>> grid = Image.new("RGB", (128, 64))
    >>> [p.size for p in split_grid(grid, "1x2")]
    [(64, 64), (64, 64)]
    >>> compose_grid(split_grid(grid, "1x2"), "1x2").size
    (128, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from paco_core.errors import InputError
from paco_core.prompts import Layout, parse_layout

if TYPE_CHECKING:
    import torch

_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""Integer modes PIL reads 16-bit images in (a 16-bit grayscale PNG: ``I;16`` or ``I``)."""
MAX_ASPECT_RATIO = 200
"""The widest long-side / short-side ratio the judge's image processor (Qwen2-VL) takes."""


def rgb_image(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; 16-bit grayscale is scaled (65535 -> 255), not clipped to white
    as ``Image.convert("RGB")`` does."""
    if image.mode in _SIXTEEN_BIT_MODES:
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)  # 65535 / 255 = 257
        return Image.fromarray(scaled, "L").convert("RGB")
    return image.convert("RGB")


def check_aspect_ratio(size: tuple[int, int], what: str) -> None:
    """InputError when an image is more than ``MAX_ASPECT_RATIO`` times wider than high (or the
    reverse): the judge's image processor cannot take it."""
    width, height = size
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise InputError(
            f"{what} is {width}x{height} pixels, an aspect ratio above the judge's limit of "
            f"{MAX_ASPECT_RATIO}:1; crop or pad it to a less elongated shape."
        )


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """An IMAGE tensor ``[B, H, W, C]`` (or one ``[H, W, C]``) -> one PIL image per item.

    Values are clamped to 0..1 and rounded to 8 bits; C = 1, 3 or 4 gives L, RGB, RGBA.
    """
    import torch

    if not isinstance(images, torch.Tensor):
        raise InputError(f"expected an IMAGE tensor [B, H, W, C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    _check_image_tensor(images)
    array = (images.detach().to("cpu", torch.float32).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    channels = array.shape[-1]
    return [Image.fromarray(item[..., 0] if channels == 1 else item, _PIL_MODES[channels]) for item in array]


def pil_to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """PIL image(s) of one size -> IMAGE tensor ``[B, H, W, 3]`` float32 in 0..1 (RGB)."""
    import numpy as np
    import torch

    items = [images] if isinstance(images, Image.Image) else list(images)
    if not items:
        raise InputError("got no images to convert: pass at least one PIL image")
    not_pil = [type(item).__name__ for item in items if not isinstance(item, Image.Image)]
    if not_pil:
        raise InputError(f"expected PIL images, got {not_pil[0]}")
    _check_same_size([item.size for item in items], "images")
    stacked = np.stack([np.asarray(item.convert("RGB"), dtype=np.uint8) for item in items])
    return torch.from_numpy(stacked).to(torch.float32).div_(255.0)


def split_grid(image, layout: Layout | str):
    """Cut a grid into its panels, row-major.

    Args:
        image: one PIL image, or an IMAGE tensor ``[B, H, W, C]`` of B grids.
        layout: ``Layout`` or text such as ``"2x2"``.

    Returns:
        For a PIL image, a list of ``rows*cols`` PIL panels. For a tensor, a tensor
        ``[B*rows*cols, H/rows, W/cols, C]``: grid 0's panels, then grid 1's, ...

    Raises:
        InputError: the size is not divisible by the layout (the message gives the
            nearest size that is), or the input is not an image.
    """
    layout = parse_layout(layout)
    if isinstance(image, Image.Image):
        return _split_pil(image, layout)
    _check_image_tensor(image)
    return _split_tensor(image, layout)


def compose_grid(panels, layout: Layout | str):
    """Put panels side by side into a grid, row-major (the inverse of ``split_grid``).

    Args:
        panels: a sequence of ``rows*cols`` PIL images of one size, or an IMAGE tensor
            ``[N, h, w, C]`` with N a multiple of ``rows*cols`` (giving N/(rows*cols) grids).
        layout: ``Layout`` or text such as ``"2x2"``.

    Returns:
        One PIL image, or an IMAGE tensor ``[N/(rows*cols), rows*h, cols*w, C]``.

    Raises:
        InputError: wrong number of panels, or panels of different sizes.
    """
    layout = parse_layout(layout)
    if isinstance(panels, Image.Image):
        raise InputError(f"compose_grid needs {layout.num_panels} panels for layout {layout}, got one image")
    if isinstance(panels, Sequence) and all(isinstance(p, Image.Image) for p in panels):
        return _compose_pil(list(panels), layout)
    _check_image_tensor(panels)
    return _compose_tensor(panels, layout)


def _check_image_tensor(images) -> None:
    import torch

    if not isinstance(images, torch.Tensor):
        raise InputError(
            f"expected PIL image(s) or an IMAGE tensor [B, H, W, C], got {type(images).__name__}"
        )
    if images.ndim != 4 or images.shape[-1] not in _PIL_MODES or 0 in images.shape:
        raise InputError(
            f"expected an IMAGE tensor [B, H, W, C] with C in (1, 3, 4), got shape {tuple(images.shape)}"
        )


def _nearest_multiple(value: int, step: int) -> int:
    """The multiple of ``step`` nearest to ``value`` (ties go up), at least ``step``."""
    return max(step, (value + step // 2) // step * step)


def _check_divisible(width: int, height: int, layout: Layout) -> None:
    if width % layout.cols == 0 and height % layout.rows == 0:
        return
    problems = []
    if width % layout.cols:
        problems.append(f"width {width} is not divisible by {layout.cols} columns")
    if height % layout.rows:
        problems.append(f"height {height} is not divisible by {layout.rows} rows")
    near_w, near_h = _nearest_multiple(width, layout.cols), _nearest_multiple(height, layout.rows)
    raise InputError(
        f"a {width}x{height} image cannot be split into a {layout} grid of equal panels: "
        f"{' and '.join(problems)}; the nearest size that splits is {near_w}x{near_h} (width x height)"
    )


def _check_same_size(sizes: list[tuple[int, int]], what: str) -> None:
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sizes)
        raise InputError(f"all {what} must have one size, got {listed} (width x height); resize them first")


def _check_panel_count(count: int, layout: Layout, allow_multiple: bool) -> None:
    fits = count % layout.num_panels == 0 if allow_multiple else count == layout.num_panels
    if count == 0 or not fits:
        need = f"a multiple of {layout.num_panels}" if allow_multiple else f"{layout.num_panels}"
        raise InputError(f"layout {layout} needs {need} panels, got {count}")


def _split_pil(image: Image.Image, layout: Layout) -> list[Image.Image]:
    width, height = image.size
    _check_divisible(width, height, layout)
    panel_w, panel_h = width // layout.cols, height // layout.rows
    return [
        image.crop((c * panel_w, r * panel_h, (c + 1) * panel_w, (r + 1) * panel_h))
        for r in range(layout.rows)
        for c in range(layout.cols)
    ]


def _compose_pil(panels: list[Image.Image], layout: Layout) -> Image.Image:
    _check_panel_count(len(panels), layout, allow_multiple=False)
    _check_same_size([p.size for p in panels], "panels")
    panel_w, panel_h = panels[0].size
    grid = Image.new(panels[0].mode, (panel_w * layout.cols, panel_h * layout.rows))
    for index, panel in enumerate(panels):
        row, col = divmod(index, layout.cols)
        grid.paste(panel, (col * panel_w, row * panel_h))
    return grid


def _split_tensor(images: torch.Tensor, layout: Layout) -> torch.Tensor:
    batch, height, width, channels = images.shape
    _check_divisible(width, height, layout)
    panel_h, panel_w = height // layout.rows, width // layout.cols
    # [B, R, h, C_, w, ch] -> [B, R, C_, h, w, ch] -> [B*R*C_, h, w, ch]
    cells = images.reshape(batch, layout.rows, panel_h, layout.cols, panel_w, channels)
    return cells.permute(0, 1, 3, 2, 4, 5).reshape(-1, panel_h, panel_w, channels).contiguous()


def _compose_tensor(panels: torch.Tensor, layout: Layout) -> torch.Tensor:
    count, panel_h, panel_w, channels = panels.shape
    _check_panel_count(count, layout, allow_multiple=True)
    grids = count // layout.num_panels
    # [G, R, C_, h, w, ch] -> [G, R, h, C_, w, ch] -> [G, R*h, C_*w, ch]
    cells = panels.reshape(grids, layout.rows, layout.cols, panel_h, panel_w, channels)
    return (
        cells.permute(0, 1, 3, 2, 4, 5)
        .reshape(grids, layout.rows * panel_h, layout.cols * panel_w, channels)
        .contiguous()
    )


def open_image_file(path, *, what: str = "image") -> Image.Image:
    """An RGB image read from a file, or InputError naming the file.

    Only regular files are opened (a FIFO would block forever); 16-bit images are scaled to
    8 bits (``rgb_image``).

    Images larger than PIL's ``Image.MAX_IMAGE_PIXELS`` (about 89 megapixels by default)
    are refused before their pixels are decoded: a small file can declare gigapixels
    (a decompression bomb) and would otherwise take all memory.

    Args:
        path: the image file.
        what: how the message names it ("--image", "image").
    """
    import os
    import stat
    import warnings

    from PIL import UnidentifiedImageError

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as error:
        raise InputError(f"{what} {path} cannot be read as an image ({error}).") from error
    if not stat.S_ISREG(mode):
        raise InputError(
            f"{what} {path} is not a regular file (a folder, pipe or device); give an image file."
        )  # opening a pipe would wait for a writer forever
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixel_count(image.size, path, what)
                return rgb_image(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(_too_large(path, what, str(error))) from error
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise InputError(f"{what} {path} cannot be read as an image ({error}).") from error


def _check_pixel_count(size: tuple[int, int], path, what: str) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise InputError(_too_large(path, what, f"it declares {size[0]}x{size[1]} pixels"))


def _too_large(path, what: str, detail: str) -> str:
    return (
        f"{what} {path} has more pixels than the limit of {Image.MAX_IMAGE_PIXELS} ({detail.rstrip('.')}); "
        "the limit (PIL's Image.MAX_IMAGE_PIXELS) guards against decompression bombs. Use a smaller image."
    )
