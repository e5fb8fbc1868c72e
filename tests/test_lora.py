"""LoRAs: reading every format, saving, applying per branch, strengths, stacking, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paco_core.errors import InputError, LoraError
from paco_core.models.lora import (
    LoraSpec,
    apply_loras,
    lora_scope,
    read_lora,
    remove_loras,
    save_lora,
    save_peft_transformer_lora,
)
from paco_core.models.pipelines import load_pipeline

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_out"]


def render(pipe_or_view, seed: int = 0):
    """One 32x32 image, 1 step, as a float array (through lora_scope for a view)."""
    import torch

    def call(pipe):
        return pipe(
            prompt="a fox",
            height=32,
            width=32,
            num_inference_steps=1,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).images[0]

    if hasattr(pipe_or_view, "loras"):
        with lora_scope(pipe_or_view) as pipe:
            return call(pipe)
    return call(pipe_or_view)


def private_flux_pipe(folder):
    """A pipeline of our own (not the shared cached one) to wrap with peft."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(str(folder), use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def add_random_adapter(transformer, seed: int, rank: int = 4, alpha: float = 8.0, name: str = "paco"):
    import torch
    from peft import LoraConfig

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=False, target_modules=TARGETS)
    transformer.add_adapter(config, adapter_name=name)


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """Two LoRA files saved from peft-wrapped transformers, with the in-memory outputs."""
    folder = tmp_path_factory.mktemp("loras")
    pipe = private_flux_pipe(tiny_models["flux"])
    base = render(pipe)
    add_random_adapter(pipe.transformer, seed=1)
    peft_output = render(pipe)
    first = save_peft_transformer_lora(pipe.transformer, folder / "first.safetensors", adapter_name="paco")
    pipe.transformer.delete_adapters("paco")
    add_random_adapter(pipe.transformer, seed=2, name="other")
    second = save_peft_transformer_lora(pipe.transformer, folder / "second.safetensors", adapter_name="other")
    pipe.transformer.delete_adapters("other")
    return {"pipe": pipe, "base": base, "peft_output": peft_output, "first": first, "second": second}


@pytest.fixture()
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


def test_saved_file_matches_the_peft_model_in_diffusers_and_in_our_loader(trained, flux):
    from safetensors import safe_open

    with safe_open(str(trained["first"]), framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all(
        k.startswith("transformer.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys
    )
    assert not any(k.endswith(".alpha") for k in keys)

    pipe = trained["pipe"]
    pipe.load_lora_weights(str(trained["first"]), adapter_name="direct")
    try:
        np.testing.assert_allclose(render(pipe), trained["peft_output"], atol=1e-5)
    finally:
        pipe.delete_adapters("direct")
    view = apply_loras(flux, [LoraSpec(trained["first"], 1.0)])
    np.testing.assert_allclose(render(view), trained["peft_output"], atol=1e-5)
    assert np.abs(trained["peft_output"] - trained["base"]).max() > 1e-3


def test_matched_key_count_is_reported(trained, flux):
    view = apply_loras(flux, [LoraSpec(trained["first"], 0.5)])
    [lora] = view.loras
    # 6 modules in the double block, 4 in the single block, the final proj_out: 11 x (A, B)
    assert lora.num_keys == lora.num_matched == 2 * 11
    assert (lora.format, lora.strength) == ("diffusers", 0.5)


def test_a_lora_branch_does_not_change_the_base_branch(trained, flux):
    base_before = render(flux)
    with_lora = apply_loras(flux, [LoraSpec(trained["first"], 1.0)])
    lora_image = render(with_lora)
    np.testing.assert_array_equal(render(flux), base_before)
    np.testing.assert_array_equal(render(with_lora), lora_image)
    assert flux.loras == ()
    np.testing.assert_allclose(base_before, trained["base"], atol=1e-6)


def test_strength_zero_and_removal_give_the_base_image(trained, flux):
    base = render(flux)
    np.testing.assert_array_equal(render(apply_loras(flux, [LoraSpec(trained["first"], 0.0)])), base)
    stacked = apply_loras(flux, [LoraSpec(trained["first"]), LoraSpec(trained["second"])])
    assert len(stacked.loras) == 2
    np.testing.assert_array_equal(render(remove_loras(stacked)), base)
    only_second = remove_loras(stacked, [trained["first"]])
    np.testing.assert_array_equal(
        render(only_second), render(apply_loras(flux, [LoraSpec(trained["second"])]))
    )


def test_stacking_combines_and_the_same_file_twice_adds_strengths(trained, flux):
    first = render(apply_loras(flux, [LoraSpec(trained["first"])]))
    second = render(apply_loras(flux, [LoraSpec(trained["second"])]))
    both = render(apply_loras(apply_loras(flux, [LoraSpec(trained["first"])]), [LoraSpec(trained["second"])]))
    assert np.abs(both - first).max() > 1e-4 and np.abs(both - second).max() > 1e-4
    halves = apply_loras(flux, [LoraSpec(trained["first"], 0.5), LoraSpec(trained["first"], 0.5)])
    assert [lora.strength for lora in halves.loras] == [1.0]
    np.testing.assert_allclose(render(halves), first, atol=1e-6)


def test_peft_folder_reads_as_the_same_folded_weights(tiny_models, tmp_path):
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig, get_peft_model

    transformer = FluxTransformer2DModel.from_pretrained(str(tiny_models["flux"]), subfolder="transformer")
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=16, init_lora_weights=False, target_modules=TARGETS)
    peft_model = get_peft_model(transformer, config)
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    saved = save_peft_transformer_lora(peft_model, tmp_path / "folded.safetensors")
    from_folder, from_file = read_lora(tmp_path / "adapter"), read_lora(saved)
    assert (from_folder.format, from_folder.rank, from_folder.alpha, from_folder.architecture) == (
        "peft",
        4,
        16.0,
        "flux",
    )
    assert set(from_folder.state_dict) == set(from_file.state_dict)
    for key, tensor in from_folder.state_dict.items():
        torch.testing.assert_close(tensor, from_file.state_dict[key])
    weights_only = read_lora(tmp_path / "adapter" / "adapter_model.safetensors")  # config read beside it
    assert all(torch.equal(weights_only.state_dict[k], v) for k, v in from_folder.state_dict.items())


def test_peft_weights_without_their_config_warn_and_use_scale_one(tmp_path, caplog):
    import torch
    from safetensors.torch import save_file

    up = torch.ones(32, 4)
    save_file(
        {
            "base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight": torch.ones(4, 32),
            "base_model.model.transformer_blocks.0.attn.to_q.lora_B.weight": up,
        },
        str(tmp_path / "lonely.safetensors"),
    )
    with caplog.at_level("WARNING"):
        lora = read_lora(tmp_path / "lonely.safetensors")
    assert "no adapter_config.json beside it" in caplog.text
    assert torch.equal(lora.state_dict["transformer.transformer_blocks.0.attn.to_q.lora_B.weight"], up)


def test_diffusers_alpha_tensors_are_folded_like_diffusers_applies_them(trained, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(trained["first"]))
    modules = {key.rsplit(".lora_", 1)[0] for key in tensors}
    tensors.update({f"{module}.alpha": torch.tensor(2.0) for module in modules})  # scale 2 / 4 = 0.5
    with_alpha = tmp_path / "with_alpha.safetensors"
    save_file(tensors, str(with_alpha))
    lora = read_lora(with_alpha)
    key = next(k for k in lora.state_dict if k.endswith(".lora_B.weight"))
    torch.testing.assert_close(lora.state_dict[key], tensors[key] * 0.5)
    pipe = trained["pipe"]
    pipe.load_lora_weights(str(with_alpha), adapter_name="alpha")
    try:
        diffusers_image = render(pipe)
    finally:
        pipe.delete_adapters("alpha")
    pipe.load_lora_weights(dict(lora.state_dict), adapter_name="folded")
    try:
        np.testing.assert_allclose(render(pipe), diffusers_image, atol=1e-5)
    finally:
        pipe.delete_adapters("folded")


def test_a_lora_keyed_for_comfyui_reads_as_the_transformer_lora(trained, tmp_path):
    """Other trainers write ComfyUI LoRAs as ``diffusion_model.<diffusers name>``: the same weights."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(trained["first"]))
    renamed = {"diffusion_model." + key.removeprefix("transformer."): value for key, value in tensors.items()}
    comfy_keyed = tmp_path / "comfy_keyed.safetensors"
    save_file(renamed, str(comfy_keyed))
    expected = read_lora(trained["first"]).state_dict
    read = read_lora(comfy_keyed).state_dict
    assert sorted(read) == sorted(expected)
    assert all(key.startswith("transformer.") for key in read)


def test_kohya_file_is_converted_with_alpha_folded(tmp_path):
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    down, up = torch.randn(4, 32, generator=g), torch.randn(128, 4, generator=g)
    tensors = {
        "lora_unet_double_blocks_0_img_mlp_0.lora_down.weight": down,
        "lora_unet_double_blocks_0_img_mlp_0.lora_up.weight": up,
        "lora_unet_double_blocks_0_img_mlp_0.alpha": torch.tensor(2.0),
        "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.randn(4, 32, generator=g),
        "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.randn(96, 4, generator=g),
        "lora_unet_double_blocks_0_img_attn_qkv.alpha": torch.tensor(2.0),
    }
    save_file(tensors, str(tmp_path / "kohya.safetensors"))
    lora = read_lora(tmp_path / "kohya.safetensors")
    assert (lora.format, lora.architecture, lora.rank) == ("kohya", "flux", 4)
    prefix = "transformer.transformer_blocks.0."
    assert {f"{prefix}attn.to_q.lora_A.weight", f"{prefix}attn.to_v.lora_B.weight"} <= set(lora.state_dict)
    delta = (
        lora.state_dict[f"{prefix}ff.net.0.proj.lora_B.weight"]
        @ lora.state_dict[f"{prefix}ff.net.0.proj.lora_A.weight"]
    )
    torch.testing.assert_close(delta, up @ down * 0.5)


def test_a_qwen_image_lora_on_flux_is_a_clear_error(flux, tmp_path):
    import torch

    qwen_weights = {
        "transformer_blocks.0.img_mlp.net.0.proj.lora_A.weight": torch.ones(4, 32),
        "transformer_blocks.0.img_mlp.net.0.proj.lora_B.weight": torch.ones(128, 4),
        "transformer_blocks.0.attn.to_q.lora_A.weight": torch.ones(4, 32),
        "transformer_blocks.0.attn.to_q.lora_B.weight": torch.ones(32, 4),
    }
    path = save_lora(tmp_path / "qwen.safetensors", qwen_weights, alpha=4, rank=4, kind="qwen-image-edit")
    with pytest.raises(LoraError, match=r"targets Qwen-Image but the pipeline is flux: 2 of 4 keys matched"):
        apply_loras(flux, [LoraSpec(path)])


def test_zero_matched_keys_is_a_clear_error(flux, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file(
        {
            "transformer.blocks.9.proj.lora_A.weight": torch.ones(2, 8),
            "transformer.blocks.9.proj.lora_B.weight": torch.ones(8, 2),
        },
        str(tmp_path / "other.safetensors"),
    )
    with pytest.raises(LoraError, match="does not fit the flux pipeline: 0 of 2 keys matched"):
        apply_loras(flux, [LoraSpec(tmp_path / "other.safetensors")])


def test_unreadable_lora_files_are_clear_errors(flux, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(LoraError, match="not a readable safetensors file.*truncated or corrupt"):
        read_lora(corrupt)
    pickled = tmp_path / "lora.pt"
    pickled.write_bytes(b"pickle")
    with pytest.raises(LoraError, match="only safetensors LoRAs are read"):
        read_lora(pickled)
    with pytest.raises(LoraError, match="does not exist"):
        apply_loras(flux, [LoraSpec(tmp_path / "missing.safetensors")])
    (tmp_path / "half_adapter").mkdir()
    (tmp_path / "half_adapter" / "adapter_config.json").write_text(json.dumps({"r": 4}))
    with pytest.raises(LoraError, match="not a peft adapter folder.*found adapter_config.json"):
        read_lora(tmp_path / "half_adapter")


def test_lora_spec_parsing_and_checks():
    assert LoraSpec.parse("paco.safetensors:0.8") == LoraSpec("paco.safetensors", 0.8)
    assert LoraSpec.parse("paco.safetensors") == LoraSpec("paco.safetensors", 1.0)
    assert LoraSpec.parse(r"C:\loras\paco.safetensors") == LoraSpec(r"C:\loras\paco.safetensors", 1.0)
    with pytest.raises(InputError, match="strength should be a finite number, got nan"):
        LoraSpec("x.safetensors", float("nan"))


def test_save_lora_folds_alpha_and_checks_its_arguments(tmp_path):
    import torch
    from safetensors import safe_open

    weights = {
        "base_model.model.transformer_blocks.0.ff.net.2.lora_A.weight": torch.ones(4, 128),
        "base_model.model.transformer_blocks.0.ff.net.2.lora_B.weight": torch.ones(32, 4),
    }
    path = save_lora(
        tmp_path / "lora.safetensors", weights, alpha=8, rank=4, kind="flux", metadata={"step": 10}
    )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        lora_b = handle.get_tensor("transformer.transformer_blocks.0.ff.net.2.lora_B.weight")
    assert float(lora_b[0, 0]) == 2.0
    assert (metadata["paco.architecture"], metadata["paco.alpha"], metadata["step"]) == ("flux", "8", "10")
    with pytest.raises(LoraError, match="FLUX module names but kind is 'qwen-image-edit'"):
        save_lora(tmp_path / "bad.safetensors", weights, alpha=8, rank=4, kind="qwen-image-edit")
    with pytest.raises(InputError, match="rank and alpha should be positive"):
        save_lora(tmp_path / "bad.safetensors", weights, alpha=8, rank=0, kind="flux")
    with pytest.raises(InputError, match="saved as .safetensors"):
        save_lora(tmp_path / "bad.pt", weights, alpha=8, rank=4, kind="flux")


def test_qwen_image_edit_lora_applies_per_branch(tiny_models, tmp_path):
    import torch
    from diffusers import QwenImageTransformer2DModel
    from peft import LoraConfig
    from PIL import Image

    from paco_core.generate import EditOptions, edit_image

    folder = tiny_models["qwen-image-edit"]
    transformer = QwenImageTransformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    torch.manual_seed(0)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "img_mlp.net.0.proj", "img_mlp.net.2"]
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=targets))
    path = save_peft_transformer_lora(transformer, tmp_path / "qwen_edit.safetensors")
    assert read_lora(path).architecture == "qwen-image"

    qwen = load_pipeline(folder)
    image, options = Image.new("RGB", (32, 32), (120, 60, 30)), EditOptions(steps=1, guidance=1.0)
    base = np.asarray(edit_image(qwen, image, "make it blue", options).image, dtype=np.int16)
    view = apply_loras(qwen, [LoraSpec(path)])
    assert view.loras[0].num_matched == view.loras[0].num_keys == 2 * 2 * len(targets)  # 2 blocks x (A, B)
    edited = np.asarray(edit_image(view, image, "make it blue", options).image, dtype=np.int16)
    assert np.abs(edited - base).max() > 0
    np.testing.assert_array_equal(np.asarray(edit_image(qwen, image, "make it blue", options).image), base)
