"""PaCo Pipeline Loader (ComfyUI files), run as ComfyUI runs it (through the test double)."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
from pack_loader import load_pack, reset_comfy_stub, run_node, widget_defaults

from paco_core.errors import InputError
from paco_core.generate import SetRequest, generate_sets
from paco_core.models.pipelines import load_pipeline


@pytest.fixture(scope="module")
def model_files():
    pack = load_pack()
    return importlib.import_module(f"{pack.__name__}.nodes.model_files")


@pytest.fixture()
def comfy(tmp_path, tiny_models, model_files):
    """A ComfyUI whose models/ folders are the tiny models' ComfyUI layout."""
    reset_comfy_stub(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    for folder in ("diffusion_models", "text_encoders", "vae", "checkpoints", "paco_configs"):
        os.symlink(tiny_models["comfyui"] / "models" / folder, models / folder)
    import comfy.model_management as mm

    yield models
    mm.stub_reset()


def run_loader(model_files, **inputs):
    node = model_files.PaCoPipelineFromFiles
    return run_node(node, **{**widget_defaults(node), **inputs})[0]


def grid(loaded) -> np.ndarray:
    request = SetRequest(
        theme="a fox", panels=("a", "b"), layout="1x2", panel_width=32, panel_height=16, steps=2, seed=1
    )
    return np.asarray(generate_sets(loaded, request)[0].grid)


def test_dropdowns_list_comfyuis_folders(model_files, comfy):
    inputs = {item.id: item for item in model_files.PaCoPipelineFromFiles.GET_SCHEMA().inputs}
    assert "tiny-flux-fp8_scaled.safetensors" in inputs["diffusion_model"].options
    assert "tiny-flux-t5xxl.safetensors" in inputs["text_encoder_2"].options
    assert "tiny-flux-ae.safetensors" in inputs["vae"].options
    assert "tiny-flux-aio.safetensors" in inputs["checkpoint"].options
    assert "tiny-flux" in inputs["config"].options


def test_loader_from_split_files_and_from_checkpoint_match_the_folder(model_files, comfy, tiny_models):
    split = run_loader(
        model_files,
        diffusion_model="tiny-flux.safetensors",
        text_encoder_1="tiny-flux-clip_l.safetensors",
        text_encoder_2="tiny-flux-t5xxl.safetensors",
        vae="tiny-flux-ae.safetensors",
        config="tiny-flux",
    )
    checkpoint = run_loader(
        model_files, checkpoint="tiny-flux-aio.safetensors", config="tiny-flux", keep_loaded=False
    )
    assert split.kind == checkpoint.kind == "flux" and not checkpoint.keep_loaded
    reference = grid(load_pipeline(tiny_models["flux"]))
    np.testing.assert_array_equal(grid(split), reference)
    np.testing.assert_array_equal(grid(checkpoint), reference)


def test_qwen_image_edit_from_files(model_files, comfy):
    loaded = run_loader(
        model_files,
        diffusion_model="tiny-qwen-image-edit.safetensors",
        text_encoder_1="tiny-qwen-image-edit-qwen_2.5_vl-fp8_scaled.safetensors",
        vae="tiny-qwen-image-edit-qwen_image_vae.safetensors",
        config="tiny-qwen-image-edit",
    )
    assert loaded.kind == "qwen-image-edit"


def test_empty_loader_and_wrong_kind_say_what_to_choose(model_files, comfy):
    with pytest.raises(InputError, match="no model given"):
        run_loader(model_files)
    with pytest.raises(InputError, match="kind qwen-image-edit needs a qwen-image one"):
        run_loader(
            model_files,
            kind="qwen-image-edit",
            diffusion_model="tiny-flux-kontext.safetensors",
            text_encoder_1="tiny-flux-kontext-clip_l.safetensors",
            vae="tiny-flux-kontext-ae.safetensors",
        )
