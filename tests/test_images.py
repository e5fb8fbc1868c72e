"""IMAGE tensor <-> PIL conversion and grid split / compose (paco_core.images)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from paco_core.errors import InputError
from paco_core.images import compose_grid, pil_to_tensor, split_grid, tensor_to_pil


def labelled_grid(rows: int, cols: int, panel_w: int = 8, panel_h: int = 6) -> Image.Image:
    """A grid whose panel k (row-major) is filled with the colour (k, 10*k, 255-k)."""
    grid = Image.new("RGB", (cols * panel_w, rows * panel_h))
    for k in range(rows * cols):
        row, col = divmod(k, cols)
        grid.paste(
            (k, 10 * k, 255 - k), (col * panel_w, row * panel_h, (col + 1) * panel_w, (row + 1) * panel_h)
        )
    return grid


def colour_of(panel: Image.Image) -> tuple[int, int, int]:
    colours = panel.getcolors()
    assert colours is not None and len(colours) == 1, "panel should be one flat colour"
    return colours[0][1]


def test_tensor_to_pil_and_back_is_exact_on_8_bit_values():
    values = torch.randint(0, 256, (2, 5, 7, 3), generator=torch.Generator().manual_seed(0))
    images = values.float() / 255
    pils = tensor_to_pil(images)
    assert [(p.mode, p.size) for p in pils] == [("RGB", (7, 5))] * 2
    assert torch.equal(pil_to_tensor(pils), images)


def test_tensor_to_pil_clamps_and_accepts_one_image_without_batch():
    image = torch.full((4, 4, 3), 2.0)
    image[0, 0] = -1.0
    (pil,) = tensor_to_pil(image)
    assert pil.getpixel((1, 1)) == (255, 255, 255) and pil.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (4, "RGBA")])
def test_tensor_to_pil_maps_channels_to_modes(channels, mode):
    assert tensor_to_pil(torch.zeros(1, 2, 2, channels))[0].mode == mode


def test_pil_to_tensor_converts_any_mode_to_rgb():
    tensor = pil_to_tensor(Image.new("L", (3, 2), 255))
    assert tensor.shape == (1, 2, 3, 3) and tensor.dtype == torch.float32 and float(tensor.min()) == 1.0


def test_tensor_to_pil_rejects_non_tensors():
    with pytest.raises(InputError, match=r"expected an IMAGE tensor \[B, H, W, C\], got list"):
        tensor_to_pil([1, 2])


def test_tensor_to_pil_rejects_channel_first_tensors():
    with pytest.raises(InputError, match=r"C in \(1, 3, 4\), got shape \(1, 3, 8, 8\)"):
        tensor_to_pil(torch.zeros(1, 3, 8, 8))


def test_pil_to_tensor_rejects_mixed_sizes():
    with pytest.raises(InputError, match=r"all images must have one size, got 4x4, 4x5 \(width x height\)"):
        pil_to_tensor([Image.new("RGB", (4, 4)), Image.new("RGB", (4, 5))])


def test_pil_to_tensor_rejects_an_empty_list_and_non_images():
    with pytest.raises(InputError, match="got no images to convert"):
        pil_to_tensor([])
    with pytest.raises(InputError, match="expected PIL images, got str"):
        pil_to_tensor(["a.png"])


@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (1, 5), (2, 3), (3, 2), (2, 4), (1, 1)])
def test_split_grid_pil_is_row_major(rows, cols):
    panels = split_grid(labelled_grid(rows, cols), f"{rows}x{cols}")
    assert [colour_of(p) for p in panels] == [(k, 10 * k, 255 - k) for k in range(rows * cols)]
    assert {p.size for p in panels} == {(8, 6)}


@pytest.mark.parametrize("layout", ["2x2", "1x3", "3x2", "2x4"])
def test_compose_grid_pil_inverts_split(layout):
    rows, cols = (int(n) for n in layout.split("x"))
    grid = labelled_grid(rows, cols)
    assert list(compose_grid(split_grid(grid, layout), layout).getdata()) == list(grid.getdata())


def test_split_grid_tensor_matches_pil_and_keeps_grids_in_order():
    grids = [labelled_grid(2, 3), labelled_grid(2, 3).rotate(180)]
    panels = split_grid(pil_to_tensor(grids), "2x3")
    assert panels.shape == (12, 6, 8, 3)
    expected = [panel for grid in grids for panel in split_grid(grid, "2x3")]
    assert torch.equal(panels, pil_to_tensor(expected))


def test_compose_grid_tensor_makes_one_grid_per_group_of_panels():
    images = torch.rand(2, 12, 16, 3, generator=torch.Generator().manual_seed(1))
    panels = split_grid(images, "2x4")
    assert panels.shape == (16, 6, 4, 3)
    assert torch.equal(compose_grid(panels, "2x4"), images)
    assert torch.equal(compose_grid(panels[:8], "2x4"), images[:1])


def test_split_grid_reports_the_nearest_divisible_size():
    with pytest.raises(
        InputError,
        match=r"a 100x64 image cannot be split into a 3x3 grid of equal panels: "
        r"width 100 is not divisible by 3 columns and height 64 is not divisible by 3 rows; "
        r"the nearest size that splits is 99x63",
    ):
        split_grid(Image.new("RGB", (100, 64)), "3x3")


def test_split_grid_tensor_reports_width_only_when_height_divides():
    with pytest.raises(
        InputError, match=r"width 65 is not divisible by 2 columns; the nearest size that splits is 66x64"
    ):
        split_grid(torch.zeros(1, 64, 65, 3), "2x2")


def test_split_grid_rejects_non_images_and_bad_layouts():
    with pytest.raises(InputError, match=r"expected PIL image\(s\) or an IMAGE tensor"):
        split_grid("grid.png", "2x2")
    with pytest.raises(InputError, match="layout should look like '2x2'"):
        split_grid(Image.new("RGB", (8, 8)), "two by two")


def test_compose_grid_rejects_the_wrong_panel_count():
    with pytest.raises(InputError, match="layout 2x2 needs 4 panels, got 3"):
        compose_grid([Image.new("RGB", (4, 4))] * 3, "2x2")
    with pytest.raises(InputError, match="layout 2x2 needs a multiple of 4 panels, got 6"):
        compose_grid(torch.zeros(6, 4, 4, 3), "2x2")
    with pytest.raises(InputError, match="needs 2 panels for layout 1x2, got one image"):
        compose_grid(Image.new("RGB", (4, 4)), "1x2")


def test_compose_grid_rejects_mixed_panel_sizes():
    with pytest.raises(InputError, match=r"all panels must have one size, got 4x4, 5x4 \(width x height\)"):
        compose_grid([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))], "1x2")
