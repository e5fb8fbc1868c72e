"""Pipelines assembled from ComfyUI's split files give the same images as the diffusers
folders those files were written from; wrong combinations are clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from paco_core.errors import InputError, ModelLoadError
from paco_core.generate import EditOptions, SetRequest, edit_image, generate_sets
from paco_core.models.comfy_files import CONFIGS_DIR, ComfyModelFiles, build_pipeline_from_files
from paco_core.models.pipelines import load_pipeline, load_pipeline_from_files

PANELS = ("a fox packs a map", "a fox crosses a bridge", "a fox climbs a hill", "a fox sleeps in a tent")
REQUEST = SetRequest(
    theme="a red fox", panels=PANELS, layout="2x2", panel_width=32, panel_height=16, steps=2, seed=7
)


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models["comfyui"] / "models"


def flux_files(models, name="tiny-flux", transformer=None, t5=None, **changes) -> ComfyModelFiles:
    values = {
        "transformer": str(models / "diffusion_models" / f"{transformer or name}.safetensors"),
        "text_encoders": (
            str(models / "text_encoders" / f"{name}-clip_l.safetensors"),
            str(models / "text_encoders" / f"{t5 or name + '-t5xxl'}.safetensors"),
        ),
        "vae": str(models / "vae" / f"{name}-ae.safetensors"),
        "config_folder": str(models / "paco_configs" / name),
    }
    return ComfyModelFiles(**{**values, **changes})


def qwen_files(models, name="tiny-qwen-image-edit", text_encoder=None, **changes) -> ComfyModelFiles:
    values = {
        "transformer": str(models / "diffusion_models" / f"{name}.safetensors"),
        "text_encoders": (
            str(models / "text_encoders" / f"{text_encoder or name + '-qwen_2.5_vl'}.safetensors"),
        ),
        "vae": str(models / "vae" / f"{name}-qwen_image_vae.safetensors"),
        "config_folder": str(models / "paco_configs" / name),
    }
    return ComfyModelFiles(**{**values, **changes})


def grid(loaded) -> np.ndarray:
    [result] = generate_sets(loaded, REQUEST)
    return np.asarray(result.grid, dtype=np.float32)


def edited(loaded) -> np.ndarray:
    image = np.linspace(0, 255, 40 * 48 * 3, dtype=np.float32).reshape(40, 48, 3).astype(np.uint8)
    from PIL import Image

    options = EditOptions(steps=2, seed=3, max_area=32 * 32, condition_area=32 * 32)
    return np.asarray(
        edit_image(loaded, Image.fromarray(image), "make it blue", options).image, dtype=np.float32
    )


def latents_of(loaded, seed=5):
    """The transformer's output latents for one prompt: compared to 1e-5 (pixels are 8-bit)."""
    import torch

    pipe = loaded.pipe
    out = pipe(
        "a fox",
        height=32,
        width=32,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent",
    ).images
    return out


def test_flux_set_from_comfyui_files_equals_the_diffusers_folder(tiny_models, models):
    from_files = load_pipeline_from_files(flux_files(models))
    from_folder = load_pipeline(tiny_models["flux"])
    assert from_files.kind == "flux" and "tiny-flux.safetensors" in from_files.source
    np.testing.assert_array_equal(grid(from_files), grid(from_folder))
    difference = (latents_of(from_files) - latents_of(from_folder)).abs().max().item()
    assert difference < 1e-5


def test_all_in_one_checkpoint_equals_the_diffusers_folder(tiny_models, models):
    files = ComfyModelFiles(
        checkpoint=str(models / "checkpoints" / "tiny-flux-aio.safetensors"),
        config_folder=str(models / "paco_configs" / "tiny-flux"),
    )
    from_checkpoint = load_pipeline_from_files(files)
    from_folder = load_pipeline(tiny_models["flux"])
    assert (latents_of(from_checkpoint) - latents_of(from_folder)).abs().max().item() < 1e-5
    np.testing.assert_array_equal(grid(from_checkpoint), grid(from_folder))


def test_kontext_edit_from_comfyui_files_equals_the_diffusers_folder(tiny_models, models):
    from_files = load_pipeline_from_files(flux_files(models, "tiny-flux-kontext", kind="flux-kontext"))
    assert from_files.kind == "flux-kontext"
    np.testing.assert_array_equal(edited(from_files), edited(load_pipeline(tiny_models["flux-kontext"])))


@pytest.mark.parametrize("kind", ["qwen-image-edit", "qwen-image-edit-plus"])
def test_qwen_image_edit_from_comfyui_files_equals_the_diffusers_folder(tiny_models, models, kind):
    from paco_core.testing import TINY_MODEL_NAMES

    if kind not in TINY_MODEL_NAMES:
        pytest.skip("this diffusers has no QwenImageEditPlusPipeline")
    from_files = load_pipeline_from_files(qwen_files(models, f"tiny-{kind}", kind=kind))
    assert from_files.kind == kind
    np.testing.assert_array_equal(edited(from_files), edited(load_pipeline(tiny_models[kind])))


def test_fp8_files_are_upcast_and_stay_within_fp8_rounding(tiny_models, models):
    import torch

    reference = load_pipeline(tiny_models["flux"]).pipe.transformer.state_dict()
    for name in ("tiny-flux-fp8_e4m3fn", "tiny-flux-fp8_scaled"):
        pipe, _ = build_pipeline_from_files(
            flux_files(models, transformer=name, t5="tiny-flux-t5xxl-fp8_scaled"), torch.float32
        )
        weights = pipe.transformer.state_dict()
        assert all(tensor.dtype == torch.float32 for tensor in weights.values())
        worst = max(
            ((weights[key] - value).abs().max() / value.abs().max().clamp(min=1e-8)).item()
            for key, value in reference.items()
        )
        assert 0 < worst < 0.07, name  # e4m3 keeps 3 mantissa bits: <= 1/16 relative per weight
    scaled, _ = build_pipeline_from_files(
        flux_files(models, transformer="tiny-flux-fp8_scaled"), torch.float32
    )
    plain, _ = build_pipeline_from_files(flux_files(models), torch.float32)
    with torch.no_grad():
        out = [
            pipe(
                "a fox",
                height=32,
                width=32,
                num_inference_steps=2,
                generator=torch.Generator().manual_seed(1),
                output_type="latent",
            ).images
            for pipe in (scaled, plain)
        ]
    relative = ((out[0] - out[1]).norm() / out[1].norm()).item()
    assert 0 < relative < 0.1


def test_qwen_fp8_scaled_text_encoder_and_transformer_load(models):
    import torch

    pipe, kind = build_pipeline_from_files(
        qwen_files(models, text_encoder="tiny-qwen-image-edit-qwen_2.5_vl-fp8_scaled"), torch.float32
    )
    assert kind == "qwen-image-edit" and pipe.text_encoder.dtype == torch.float32
    files = qwen_files(
        models, transformer=str(models / "diffusion_models" / "tiny-qwen-image-edit-fp8_scaled.safetensors")
    )
    pipe, _ = build_pipeline_from_files(files, torch.bfloat16)
    assert pipe.transformer.dtype == torch.bfloat16


def test_kontext_transformer_with_qwen_text_encoder_is_a_clear_error(models):
    files = flux_files(models, "tiny-flux-kontext", kind="flux-kontext")
    qwen_encoder = str(models / "text_encoders" / "tiny-qwen-image-edit-qwen_2.5_vl.safetensors")
    files = ComfyModelFiles(**{**files.__dict__, "text_encoders": (files.text_encoders[0], qwen_encoder)})
    with pytest.raises(
        InputError,
        match=r"tiny-qwen-image-edit-qwen_2.5_vl.safetensors \(qwen_2.5_vl_7b\) belong to another model.*t5xxl",
    ):
        build_pipeline_from_files(files, None)


def test_a_t5_slot_holding_something_else_names_the_file(models):
    files = flux_files(models, t5="../vae/tiny-flux-ae")
    with pytest.raises(
        ModelLoadError,
        match=r"tiny-flux-ae.safetensors is not CLIP-L, T5-XXL, Qwen2.5-VL( or [^:]+)?: it looks like the ae VAE",
    ):
        build_pipeline_from_files(files, None)
    files = flux_files(models, t5="tiny-flux-clip_l")
    with pytest.raises(InputError, match=r"also needs t5xxl.*given: tiny-flux-clip_l.safetensors is clip_l"):
        build_pipeline_from_files(files, None)


def test_a_transformer_slot_holding_something_else_names_every_family(models):
    from paco_core.families import all_families, architectures

    with pytest.raises(
        ModelLoadError, match=r"tiny-flux-ae.safetensors is not a .* transformer: it looks like"
    ) as caught:
        build_pipeline_from_files(flux_files(models, transformer="../vae/tiny-flux-ae"), None)
    message = str(caught.value)
    assert all(architecture.title in message for architecture in architectures()), message
    assert all(item.title in message for item in all_families()), message


def test_kind_that_contradicts_the_transformer_is_refused(models):
    with pytest.raises(
        InputError, match=r"is a flux transformer, but kind qwen-image-edit needs a qwen-image one"
    ):
        build_pipeline_from_files(flux_files(models, kind="qwen-image-edit"), None)


def test_truncated_file_is_a_clear_error(models, tmp_path):
    broken = tmp_path / "flux1-dev.safetensors"
    data = (models / "diffusion_models" / "tiny-flux.safetensors").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"flux1-dev.safetensors.*truncated.*download it again"):
        build_pipeline_from_files(flux_files(models, transformer=str(broken.with_suffix(""))), None)


def test_file_of_another_size_than_the_config_says_so(models):
    files = flux_files(models, config_folder=str(CONFIGS_DIR / "flux"))  # FLUX.1-dev's real config
    with pytest.raises(
        ModelLoadError, match=r"tiny-flux.safetensors does not fit the transformer.*other sizes"
    ):
        build_pipeline_from_files(files, None)


def test_shipped_tokenizers_come_from_a_comfyui_folder_or_the_message_says_how(models, tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(models / "paco_configs" / "tiny-flux", configs)
    shutil.rmtree(configs / "tokenizer_2")
    (configs / "tokenizers.json").write_text('{"tokenizer_2": "text_encoders/t5_tokenizer"}')
    with pytest.raises(ModelLoadError, match=r"--comfyui-dir /path/to/ComfyUI"):
        build_pipeline_from_files(flux_files(models, config_folder=str(configs)), None)


def test_shipped_configs_build_the_released_architectures_on_the_meta_device():
    import diffusers
    import torch
    import transformers

    sizes = {}
    for kind in ("flux", "flux-kontext", "qwen-image-edit", "qwen-image-edit-plus"):
        folder = CONFIGS_DIR / kind
        with torch.device("meta"):
            config = diffusers.FluxTransformer2DModel.load_config(str(folder / "transformer"))
            cls = getattr(diffusers, config["_class_name"])
            transformer = cls.from_config(config)
            sizes[kind] = sum(p.numel() for p in transformer.parameters())
            encoder_config = transformers.AutoConfig.from_pretrained(str(folder / "text_encoder"))
            assert encoder_config.model_type in ("clip_text_model", "qwen2_5_vl")
    assert round(sizes["flux"] / 1e9, 1) == 11.9  # FLUX.1-dev: 11.9 B parameters
    assert round(sizes["qwen-image-edit"] / 1e9, 1) == 20.4  # Qwen-Image: 20 B


@pytest.mark.comfyui
@pytest.mark.skipif(
    not __import__("os").environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"
)
def test_shipped_config_folders_take_their_tokenizers_from_comfyui():
    import json
    import os

    from paco_core.models.comfy_files import _tokenizers

    comfy_dir = os.environ["COMFYUI_DIR"]
    for kind in ("flux", "flux-kontext", "qwen-image-edit", "qwen-image-edit-plus"):
        folder = CONFIGS_DIR / kind
        components = _tokenizers(folder, json.loads((folder / "model_index.json").read_text()), comfy_dir)
        if kind.startswith("flux"):
            assert components["tokenizer"]("a cat").input_ids == [49406, 320, 2368, 49407]  # CLIP's BOS/EOS
            assert components["tokenizer_2"]("a cat").input_ids[-1] == 1  # T5's </s>
        else:
            assert components["tokenizer"]("a photo of a cat").input_ids == [64, 6548, 315, 264, 8251]
            assert components["processor"].tokenizer is components["tokenizer"]


def test_paco_generate_takes_comfyui_files_without_model(tiny_models, models, tmp_path, capsys):
    from PIL import Image

    from paco_core.cli import main

    common = [
        "generate",
        "--theme",
        "a red fox",
        "--layout",
        "1x2",
        "--panel",
        "running",
        "--panel",
        "sleeping",
    ]
    common += ["--panel-size", "32x16", "--steps", "2", "--seed", "3"]
    files = flux_files(models)
    from_files = [
        "--transformer-file", files.transformer, "--text-encoder-file", files.text_encoders[1],
        "--text-encoder-file", files.text_encoders[0], "--vae-file", files.vae, "--config-folder", files.config_folder,
    ]  # fmt: skip
    assert main([*common, *from_files, "--out", str(tmp_path / "files")]) == 0
    assert main([*common, "--model", str(tiny_models["flux"]), "--out", str(tmp_path / "folder")]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "files" / "grid.png")),
        np.asarray(Image.open(tmp_path / "folder" / "grid.png")),
    )
    assert (
        main([*common, "--model", str(tiny_models["flux"]), *from_files[2:], "--out", str(tmp_path / "x")])
        == 1
    )
    assert "give either a model folder or ComfyUI's files, not both" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y")]) == 1
    assert "no model given" in capsys.readouterr().err


def test_the_comfyui_sized_tiny_flux_loads_with_the_tiny_text_encoders(models):
    import torch

    files = flux_files(
        models, transformer="tiny-flux-comfy", config_folder=str(models / "paco_configs" / "tiny-flux-comfy")
    )
    pipe, kind = build_pipeline_from_files(files, torch.float32)
    assert kind == "flux" and pipe.transformer.config.attention_head_dim == 128
    image = pipe("a fox", height=32, width=32, num_inference_steps=1, output_type="np").images
    assert image.shape == (1, 32, 32, 3)


def test_fp16_keeps_t5s_fp32_modules_as_from_pretrained_does(tiny_models, models):
    import torch
    from diffusers import FluxPipeline

    pipe, _ = build_pipeline_from_files(flux_files(models), torch.float16)
    reference = FluxPipeline.from_pretrained(str(tiny_models["flux"]), dtype=torch.float16)

    def dtypes(model):
        return {name: str(parameter.dtype) for name, parameter in model.named_parameters()}

    assert dtypes(pipe.text_encoder_2) == dtypes(reference.text_encoder_2)
    assert "torch.float32" in dtypes(pipe.text_encoder_2).values()
    assert pipe.transformer.dtype == torch.float16
