"""Image sets and edit chains on the tiny models: sizes, determinism, progress, cancel, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.errors import InputError
from paco_core.generate import (
    EditOptions,
    SetRequest,
    edit_chain,
    edit_image,
    edit_images,
    generate_sets,
)
from paco_core.models.edit_sizes import qwen_condition_area, working_size
from paco_core.models.pipelines import load_pipeline

PANELS = ("a fox packs a map", "a fox crosses a bridge", "a fox climbs a hill", "a fox sleeps in a tent")


def small_request(**changes) -> SetRequest:
    values = {
        "theme": "a red fox explorer",
        "panels": PANELS,
        "layout": "2x2",
        "panel_width": 32,
        "panel_height": 16,
        "steps": 2,
        "seed": 7,
    }
    return SetRequest(**{**values, **changes})


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


@pytest.fixture(scope="module")
def kontext(tiny_models):
    return load_pipeline(tiny_models["flux-kontext"])


@pytest.fixture(scope="module")
def qwen(tiny_models):
    return load_pipeline(tiny_models["qwen-image-edit"])


@pytest.fixture(scope="module")
def reference():
    gradient = np.linspace(0, 255, 50 * 40 * 3, dtype=np.float32).reshape(40, 50, 3)
    return Image.fromarray(gradient.astype(np.uint8))


def test_a_set_is_one_grid_split_into_panels(flux):
    [result] = generate_sets(flux, small_request())
    assert result.grid.size == (64, 32)
    assert [panel.size for panel in result.panels] == [(32, 16)] * 4
    np.testing.assert_array_equal(pixels(result.panels[3]), pixels(result.grid)[16:, 32:])
    assert result.prompt.startswith("FOUR-PANEL Images with a 2x2 grid layout a red fox explorer")
    assert result.settings["seed"] == 7 and result.settings["width"] == 64 and result.settings["loras"] == []


def test_same_seed_gives_identical_sets_and_each_set_has_its_own_seed(flux):
    first, second = generate_sets(flux, small_request(), num_sets=2)
    [again] = generate_sets(flux, small_request())
    [alone_second] = generate_sets(flux, small_request(seed=8))
    np.testing.assert_array_equal(pixels(first.grid), pixels(again.grid))
    np.testing.assert_array_equal(pixels(second.grid), pixels(alone_second.grid))
    assert (first.seed, second.seed) == (7, 8)
    assert np.abs(pixels(first.grid) - pixels(second.grid)).max() > 0


def test_progress_counts_every_step_of_every_set(flux):
    calls = []
    generate_sets(
        flux,
        small_request(),
        num_sets=2,
        hooks=Hooks(progress=lambda done, total: calls.append((done, total))),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancel_stops_within_one_step(flux):
    class Cancelled(Exception):
        pass

    def cancel() -> None:
        raise Cancelled

    forward_calls = []
    handle = flux.pipe.transformer.register_forward_hook(lambda *args: forward_calls.append(1))
    try:
        with pytest.raises(Cancelled):
            generate_sets(flux, small_request(steps=5), hooks=Hooks(check_cancel=cancel))
    finally:
        handle.remove()
    assert len(forward_calls) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"panels": PANELS[:3]}, "layout 2x2 has 4 panels, got 3 panel prompts"),
        ({"panel_width": 40}, r"`panel_width` should be a multiple of 16 .*got 40; use 32 or 48"),
        ({"steps": 0}, "`steps` should be a whole number >= 1, got 0"),
        ({"seed": -1}, "`seed` should be a whole number from 0"),
        ({"layout": "two by two"}, "layout should look like '2x2'"),
    ],
)
def test_bad_set_requests_are_refused(flux, changes, message):
    with pytest.raises(InputError, match=message):
        generate_sets(flux, small_request(**changes))


def test_models_are_refused_for_the_wrong_task(flux, kontext, reference):
    with pytest.raises(
        InputError, match="cannot generate a set with a flux-kontext pipeline.*Load a FLUX.1-dev"
    ):
        generate_sets(kontext, small_request())
    with pytest.raises(
        InputError,
        match="cannot edit an image with a flux pipeline.*Kontext-dev, Qwen-Image-Edit or Qwen-Image-Edit-Plus for edits",
    ):
        edit_image(flux, reference, "make it blue")


def test_working_size_keeps_the_aspect_on_the_16_pixel_grid():
    assert working_size(50, 40) == (48, 48)
    assert working_size(64, 32) == (64, 32)
    assert working_size(1000, 500, area=1024 * 1024) == (1456, 720)
    assert working_size(8, 8) == (16, 16)


def test_kontext_edit_keeps_the_input_size_and_is_deterministic(kontext, reference):
    options = EditOptions(steps=2, seed=3)
    first = edit_image(kontext, reference, "make it blue", options)
    again = edit_image(kontext, reference, "make it blue", options)
    assert first.image.size == (50, 40)
    assert first.settings["working_size"] == [48, 48] and first.settings["guidance"] == 2.5
    np.testing.assert_array_equal(pixels(first.image), pixels(again.image))
    native = edit_image(
        kontext, reference, "make it blue", EditOptions(steps=2, seed=3, keep_input_size=False)
    )
    assert native.image.size == (48, 48)


def test_edit_chain_feeds_each_result_into_the_next_step(kontext, reference):
    options = EditOptions(steps=1, seed=5)
    chain = edit_chain(kontext, reference, ["add a hat", "make it night"], options)
    step_two = edit_image(kontext, chain.images[0], "make it night", EditOptions(steps=1, seed=6))
    np.testing.assert_array_equal(pixels(chain.images[1]), pixels(step_two.image))
    assert chain.instructions == ["add a hat", "make it night"] and [s.seed for s in chain.steps] == [5, 6]

    from_reference = edit_chain(
        kontext, reference, ["add a hat", "make it night"], options, from_reference=True
    )
    direct = edit_image(kontext, reference, "make it night", EditOptions(steps=1, seed=6))
    np.testing.assert_array_equal(pixels(from_reference.images[1]), pixels(direct.image))


def test_a_batch_of_edits_gives_image_k_seed_plus_k(kontext, reference):
    first, second = edit_images(kontext, [reference, reference], "add a hat", EditOptions(steps=1, seed=2))
    alone = edit_image(kontext, reference, "add a hat", EditOptions(steps=1, seed=3))
    assert (first.seed, second.seed) == (2, 3)
    np.testing.assert_array_equal(pixels(second.image), pixels(alone.image))


def test_edit_chain_progress_spans_all_steps(kontext, reference):
    calls = []
    hooks = Hooks(progress=lambda done, total: calls.append((done, total)))
    edit_chain(kontext, reference, ["a", "b"], EditOptions(steps=2), hooks=hooks)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_bad_edit_inputs_are_refused(kontext, reference):
    with pytest.raises(InputError, match="at least one instruction"):
        edit_chain(kontext, reference, [])
    with pytest.raises(InputError, match=r"instruction\(s\) \[2\] are empty"):
        edit_chain(kontext, reference, ["ok", "  "])
    with pytest.raises(InputError, match="should be a PIL image, got ndarray"):
        edit_image(kontext, np.zeros((4, 4, 3)), "x")
    with pytest.raises(InputError, match="`max_area` should be a pixel count of at least 256"):
        EditOptions(max_area=100)


def test_qwen_edit_uses_the_condition_area_and_restores_diffusers(qwen, reference):
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as module

    original = module.calculate_dimensions
    seen = []
    encoder = qwen.pipe.vae.encoder
    handle = encoder.register_forward_pre_hook(lambda _module, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        result = edit_image(qwen, reference, "make it blue", EditOptions(steps=1, condition_area=32 * 32))
    finally:
        handle.remove()
    assert result.image.size == (50, 40) and result.settings["guidance"] == 4.0
    assert module.calculate_dimensions is original
    assert (32, 32) in seen  # the condition image was encoded at 32x32, not diffusers' ~1024x1024


def test_condition_area_patch_is_undone_when_the_call_fails():
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    saved = (plus.calculate_dimensions, plus.VAE_IMAGE_SIZE, plus.CONDITION_IMAGE_SIZE)
    with pytest.raises(RuntimeError, match="boom"), qwen_condition_area("qwen-image-edit-plus", 64 * 64):
        assert plus.VAE_IMAGE_SIZE == 64 * 64 and plus.calculate_dimensions(64 * 64, 2.0) == (96, 48)
        raise RuntimeError("boom")
    assert (plus.calculate_dimensions, plus.VAE_IMAGE_SIZE, plus.CONDITION_IMAGE_SIZE) == saved


def test_qwen_edit_plus_keeps_the_input_size(tiny_models, reference):
    if "qwen-image-edit-plus" not in list(tiny_models):
        pytest.skip("this diffusers has no QwenImageEditPlusPipeline")
    plus = load_pipeline(tiny_models["qwen-image-edit-plus"])
    result = edit_image(plus, reference, "make it blue", EditOptions(steps=1, guidance=1.0))
    assert result.image.size == (50, 40)


def test_sets_ask_diffusers_for_the_device_only_inside_the_pipeline_call(flux, monkeypatch):
    """Regression: encoding the prompt outside the call used to walk every module a second time
    to find the device (``_execution_device``, ~1 ms on the tiny FLUX) - the overhead bench's gap."""
    from dataclasses import replace

    import torch

    from paco_core.models.pipelines import execution_device

    pipeline_class = type(flux.pipe)
    diffusers_answer = pipeline_class._execution_device
    calls = []

    def counted(pipe):
        calls.append(1)
        return diffusers_answer.fget(pipe)

    monkeypatch.setattr(pipeline_class, "_execution_device", property(counted))
    assert execution_device(flux) == torch.device("cpu") == flux.pipe._execution_device
    calls.clear()
    assert execution_device(replace(flux, offload="model")) == torch.device("cpu") and len(calls) == 1
    calls.clear()  # with offload the hooks decide, so diffusers is asked
    generate_sets(flux, small_request(steps=1), num_sets=2)
    assert len(calls) == 2  # once per set, inside FluxPipeline.__call__, as in a direct call
