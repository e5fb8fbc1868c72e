"""A set of your character (reference-anchored sets) on the tiny models: the references stay
pixel-identical in their cells, the other cells are generated in context of them with the
pipeline's own weights (and LoRA), every panel is judged against the references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.consistency.cells import cell_box, fit_reference
from paco_core.consistency.inpaint import inpaint_pipeline
from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
from paco_core.errors import InputError
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge

PANEL = 32


def request(**changes) -> ReferenceSetRequest:
    values = {
        "theme": "Mia, a red-haired courier.",
        "panels": ("she runs", "she eats", "she sleeps"),
        "layout": "2x2",
        "panel_width": PANEL,
        "panel_height": PANEL,
        "steps": 2,
        "seed": 3,
    }
    return ReferenceSetRequest(**{**values, **changes})


def noise_image(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = (np.random.default_rng(seed).random((height, width, channels)) * 255).astype(np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def cell(grid, layout, number):
    return grid.crop(cell_box(layout, PANEL, PANEL, number))


@pytest.fixture(scope="module")
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"])


def test_the_inpaint_pipeline_shares_every_component_of_the_loaded_pipeline(flux):
    inpaint = inpaint_pipeline(flux.pipe)
    assert type(inpaint).__name__ == "FluxInpaintPipeline"
    for name, component in flux.pipe.components.items():
        assert inpaint.components[name] is component, name
    assert inpaint_pipeline(flux.pipe) is inpaint  # built once per pipeline


def test_grid_path_keeps_the_reference_pixel_identical_and_generates_the_other_cells(flux, judge):
    reference = noise_image(PANEL, PANEL, seed=1)
    result = generate_reference_set(flux, judge, [reference], request())
    assert result.path == "grid" and result.grid.size == (2 * PANEL, 2 * PANEL)
    np.testing.assert_array_equal(pixels(cell(result.grid, "2x2", 0)), pixels(reference))
    np.testing.assert_array_equal(pixels(result.cells[0]), pixels(reference))
    assert result.reference_cells == (0,) and result.panel_cells == (1, 2, 3)
    grey = np.full((PANEL, PANEL, 3), 127)
    for panel in result.panels:
        assert np.abs(pixels(panel) - grey).max() > 0  # generated, not the grey start
    assert "[TOP]-[LEFT]:Mia, a red-haired courier." in result.prompt
    assert "[TOP]-[RIGHT]:she runs" in result.prompt


def test_the_generated_cells_are_denoised_in_context_of_the_reference(flux, judge):
    first = generate_reference_set(flux, judge, [noise_image(PANEL, PANEL, seed=1)], request())
    second = generate_reference_set(flux, judge, [noise_image(PANEL, PANEL, seed=2)], request())
    again = generate_reference_set(flux, judge, [noise_image(PANEL, PANEL, seed=1)], request())
    # same seed and prompt: only the reference differs, and it changes the generated panels
    assert np.abs(pixels(first.panels[0]) - pixels(second.panels[0])).max() > 0
    for a, b in zip(first.panels, again.panels, strict=True):
        np.testing.assert_array_equal(pixels(a), pixels(b))


def test_references_of_any_size_and_mode_are_fitted_with_their_aspect_kept(flux, judge):
    wide = noise_image(90, 30, seed=4, mode="RGBA")
    grey = noise_image(20, 50, seed=5, mode="L")
    result = generate_reference_set(
        flux, judge, [wide, grey], request(panels=("she runs", "she eats"), reference_cells=(3, 1))
    )
    # reference k goes to reference_cells[k]: the first to cell 3, the second to cell 1
    assert result.reference_cells == (3, 1) and result.panel_cells == (0, 2)
    fitted_wide, fitted_grey = fit_reference(wide, PANEL, PANEL), fit_reference(grey, PANEL, PANEL)
    np.testing.assert_array_equal(pixels(cell(result.grid, "2x2", 3)), pixels(fitted_wide))
    np.testing.assert_array_equal(pixels(cell(result.grid, "2x2", 1)), pixels(fitted_grey))
    # pad keeps the whole image: a 3:1 reference fills the width and a third of the height
    band = pixels(fitted_wide)
    assert np.abs(band[:10] - band[0, 0]).max() == 0 and np.abs(band[11:21] - band[0, 0]).max() > 0


def test_crop_fit_fills_the_panel():
    wide = noise_image(90, 30, seed=4)
    cropped = fit_reference(wide, PANEL, PANEL, "crop")
    assert cropped.size == (PANEL, PANEL)
    column = pixels(cropped)[:, 0]
    assert np.abs(column - column[0]).max() > 0  # no flat padding band


def test_every_panel_is_judged_against_the_reference_and_the_others(flux, judge):
    result = generate_reference_set(flux, judge, [noise_image(PANEL, PANEL, seed=1)], request())
    matrix = result.set_score.matrix
    assert result.identity == pytest.approx([matrix[0][cell] for cell in (1, 2, 3)])
    among = [matrix[1][2], matrix[1][3], matrix[2][3]]
    assert result.panel_score == pytest.approx(sum(among) / 3)
    assert result.set_score.num_images == 4
    assert result.keeps_identity == [score >= 0.5 for score in result.identity]
    everyone = generate_reference_set(
        flux, judge, [noise_image(PANEL, PANEL, seed=1)], request(identity_threshold=0.0)
    )
    nobody = generate_reference_set(
        flux, judge, [noise_image(PANEL, PANEL, seed=1)], request(identity_threshold=1.0)
    )
    assert everyone.keeps_identity == [True] * 3 and nobody.keeps_identity == [False] * 3
    assert result.usage.seconds > 0 and result.usage.peak_memory_bytes > 0


def test_the_lora_of_the_view_is_used(flux, judge, tiny_models, tmp_path):
    from diffusers import FluxPipeline
    from peft import LoraConfig

    from paco_core.models.lora import LoraSpec, apply_loras
    from paco_core.models.lora_save import save_peft_transformer_lora

    private = FluxPipeline.from_pretrained(str(tiny_models["flux"]), use_safetensors=True)
    import torch

    torch.manual_seed(1)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_out"]
    private.transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=targets), adapter_name="paco"
    )
    path = save_peft_transformer_lora(private.transformer, tmp_path / "paco.safetensors", adapter_name="paco")
    with_lora = apply_loras(flux, [LoraSpec(str(path), 1.0)])
    reference = noise_image(PANEL, PANEL, seed=1)
    base = generate_reference_set(flux, judge, [reference], request())
    tuned = generate_reference_set(with_lora, judge, [reference], request())
    off = generate_reference_set(apply_loras(flux, [LoraSpec(str(path), 0.0)]), judge, [reference], request())
    assert np.abs(pixels(base.panels[0]) - pixels(tuned.panels[0])).max() > 0
    np.testing.assert_array_equal(pixels(base.grid), pixels(off.grid))
    np.testing.assert_array_equal(pixels(tuned.cells[0]), pixels(reference))
    assert tuned.settings["loras"][0]["path"] == str(path)


@pytest.mark.parametrize("kind", ["flux-kontext", "qwen-image-edit"])
def test_edit_path_makes_each_panel_an_edit_of_the_reference(tiny_models, judge, kind):
    editor = load_pipeline(tiny_models[kind])
    reference = noise_image(48, 40, seed=6)
    result = generate_reference_set(editor, judge, [reference], request())
    assert result.path == "edit" and result.prompt == ""
    assert [panel.size for panel in result.panels] == [(PANEL, PANEL)] * 3
    np.testing.assert_array_equal(
        pixels(cell(result.grid, "2x2", 0)), pixels(fit_reference(reference, PANEL, PANEL))
    )
    assert result.judge_theme == "Mia, a red-haired courier."
    assert len(result.identity) == 3


def test_edit_plus_takes_several_references_and_single_image_editors_refuse_them(tiny_models, judge):
    plus = load_pipeline(tiny_models["qwen-image-edit-plus"])
    refs = [noise_image(PANEL, PANEL, seed=7), noise_image(PANEL, PANEL, seed=8)]
    result = generate_reference_set(plus, judge, refs, request(panels=("she runs", "she eats")))
    for number, reference in enumerate(refs):
        np.testing.assert_array_equal(pixels(result.cells[number]), pixels(reference))
    only_first = generate_reference_set(plus, judge, refs[:1], request(panels=("she runs", "she eats", "x")))
    assert np.abs(pixels(result.panels[0]) - pixels(only_first.panels[0])).max() > 0
    kontext = load_pipeline(tiny_models["flux-kontext"])
    with pytest.raises(InputError, match=r"^`references`: a flux-kontext edit takes one input image, got 2"):
        generate_reference_set(kontext, judge, refs, request(panels=("she runs", "she eats")))


def test_progress_counts_the_steps_and_cancel_stops_within_one_step(flux, judge):
    calls = []
    generate_reference_set(
        flux,
        judge,
        [noise_image(PANEL, PANEL, 1)],
        request(steps=3),
        hooks=Hooks(progress=lambda done, total: calls.append((done, total))),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]

    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    forward_calls = []
    handle = flux.pipe.transformer.register_forward_hook(lambda *args: forward_calls.append(1))
    try:
        with pytest.raises(Stop):
            generate_reference_set(
                flux,
                judge,
                [noise_image(PANEL, PANEL, 1)],
                request(steps=5),
                hooks=Hooks(check_cancel=cancel),
            )
    finally:
        handle.remove()
    assert len(forward_calls) == 1
