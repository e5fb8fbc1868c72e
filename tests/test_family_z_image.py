"""The Z-Image family (beyond the paper) on its tiny models: pipeline from the diffusers folder
and from ComfyUI's files, sets with a LoRA, the judge, one PaCo-GRPO step, the preset, the node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import merge_sections

from paco_core.families.z_image import KIND, T2IS_PRESET, comfy_to_diffusers, diffusers_to_comfy

RL_FIXTURES = Path(__file__).parent / "fixtures" / "rl"


@pytest.fixture(scope="module")
def tiny_z_image(tmp_path_factory) -> Path:  # TEMP until the factory reads the registry
    from paco_core.testing.z_image import save_tiny_z_image

    folder = tmp_path_factory.mktemp("z") / KIND
    save_tiny_z_image(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_comfy(tiny_z_image) -> Path:  # TEMP
    from paco_core.testing.z_image import write_z_image_files

    models = tiny_z_image.parent / "comfyui" / "models"
    write_z_image_files(tiny_z_image, models, f"tiny-{KIND}")
    return models


@pytest.fixture(scope="module")
def pipe(tiny_z_image):
    from diffusers import ZImagePipeline

    return ZImagePipeline.from_pretrained(tiny_z_image)


def _load(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for file in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(file)).items()}


def test_comfy_layout_round_trips_and_agrees_with_diffusers_own_converter(tiny_z_image, tiny_comfy):
    from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers

    config = json.loads((tiny_z_image / "transformer" / "config.json").read_text())
    weights = _load(tiny_z_image / "transformer")
    written = _original_file(tiny_comfy)
    assert "layers.0.attention.qkv.weight" in written and "x_embedder.weight" in written
    assert not any(".to_q." in key or "all_x_embedder" in key for key in written)
    assert written.keys() == diffusers_to_comfy(weights, config).keys()
    ours = comfy_to_diffusers(written, config)
    theirs = convert_z_image_transformer_checkpoint_to_diffusers(dict(written))
    assert ours.keys() == weights.keys() == theirs.keys()
    assert all(torch.equal(ours[key], weights[key]) and torch.equal(theirs[key], weights[key]) for key in weights)


def _original_file(models: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(models / "diffusion_models" / f"tiny-{KIND}.safetensors"))


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_rollout_adapter_samples_what_the_pipeline_samples(pipe, guidance):
    """The adapter's ODE path (no SDE step) reproduces ZImagePipeline's latents, with and without CFG."""
    from paco_core.rl.data import PromptRow
    from paco_core.rl.rollout import sample_with_log_probs
    from paco_core.rl.rollout_adapter_z_image import ZImageAdapter

    adapter = ZImageAdapter(pipe, guidance_scale=guidance, max_sequence_length=32, negative_prompt="")
    row = PromptRow(kind="set", prompt="a red cat with a hat", index=0)
    cond = adapter.encode(row, 32, 64)
    schedule = adapter.schedule(3, 32, 64)
    noise = adapter.initial_noise(2, 32, 64, torch.Generator().manual_seed(7))
    ours = sample_with_log_probs(
        adapter, pipe.transformer, cond, schedule, noise, sde_steps=(), noise_level=0.7, generator=torch.Generator()
    ).final_latents
    theirs = pipe(
        prompt=row.prompt, height=32, width=64, num_inference_steps=3, guidance_scale=guidance,
        latents=noise.float(), num_images_per_prompt=2, max_sequence_length=32, output_type="latent",
    ).images  # fmt: skip
    torch.testing.assert_close(ours.float(), theirs.float(), atol=1e-5, rtol=1e-5)
    assert len(adapter.decode(ours, 32, 64)) == 2
