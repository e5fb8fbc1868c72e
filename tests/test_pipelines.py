"""Pipeline loading: kind detection, folder checks, cache, single-file transformer, errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from paco_core.devices import resolve_dtype
from paco_core.errors import InputError, ModelLoadError
from paco_core.models.pipelines import (
    clear_pipeline_cache,
    detect_pipeline_kind,
    load_pipeline,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("flux", "flux"), ("flux-kontext", "flux-kontext"), ("qwen-image-edit", "qwen-image-edit")],
)
def test_kind_is_read_from_model_index(tiny_models, name, kind):
    assert detect_pipeline_kind(tiny_models[name]) == kind


def test_edit_plus_kind_where_diffusers_has_it(tiny_models):
    if "qwen-image-edit-plus" not in list(tiny_models):
        pytest.skip("this diffusers has no QwenImageEditPlusPipeline")
    assert detect_pipeline_kind(tiny_models["qwen-image-edit-plus"]) == "qwen-image-edit-plus"


def test_unknown_pipeline_class_lists_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelLoadError, match="StableDiffusionPipeline.*Supported: FluxPipeline"):
        detect_pipeline_kind(tmp_path)


def test_missing_folder_says_where_it_looked(tmp_path):
    with pytest.raises(ModelLoadError, match="not found: no such folder"):
        detect_pipeline_kind(tmp_path / "nowhere" / "FLUX.1-dev")
    with pytest.raises(ModelLoadError, match=f"{tmp_path}.*model_index.json is missing"):
        detect_pipeline_kind(tmp_path)


def test_partial_folder_lists_the_missing_components(tiny_models, tmp_path):
    partial = tmp_path / "flux-partial"
    shutil.copytree(tiny_models["flux"], partial, ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.rmtree(partial / "vae")
    with pytest.raises(
        ModelLoadError, match=r"incomplete: missing .*transformer/ \(no \.safetensors weights\).*vae/"
    ):
        load_pipeline(partial)


def test_corrupt_weights_give_a_load_error(tiny_models, tmp_path):
    broken = tmp_path / "flux-broken"
    shutil.copytree(tiny_models["flux"], broken)
    weights = next((broken / "transformer").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ModelLoadError, match="could not load the flux pipeline"):
        load_pipeline(broken)


def test_pipeline_is_cached_until_cleared(tiny_models):
    first = load_pipeline(tiny_models["flux"])
    assert load_pipeline(str(tiny_models["flux"]), dtype="fp32", device="cpu") is first
    assert (first.kind, first.device, str(first.dtype), first.offload) == (
        "flux",
        "cpu",
        "torch.float32",
        "none",
    )
    clear_pipeline_cache()
    second = load_pipeline(tiny_models["flux"])
    assert second is not first and second.pipe is not first.pipe


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offload": "model"}, "offload='model' moves components between the CPU and a GPU"),
        ({"offload": "disk"}, "offload should be one of none, model, sequential, got 'disk'"),
        ({"dtype": "int8"}, "dtype should be one of .*got 'int8'"),
        ({"device": "tpu"}, "device should be auto, cpu, .*got 'tpu'"),
    ],
)
def test_bad_load_options_are_refused(tiny_models, kwargs, message):
    with pytest.raises(InputError, match=message):
        load_pipeline(tiny_models["flux"], **{"device": "cpu", **kwargs})


def test_auto_dtype_is_fp32_on_cpu_and_bf16_on_gpu():
    import torch

    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype(None, "cuda") is torch.bfloat16
    assert resolve_dtype("fp16", "cpu") is torch.float16
    assert resolve_dtype("bf16", "cpu") is torch.bfloat16


def test_dtype_has_one_spelling():
    with pytest.raises(InputError, match="dtype should be one of auto, bf16, fp16, fp32, got 'bfloat16'"):
        resolve_dtype("bfloat16", "cpu")


def test_single_file_transformer_replaces_the_folders(tiny_models, tmp_path):
    import torch
    from safetensors.torch import save_file

    base = load_pipeline(tiny_models["flux"])
    state = {name: torch.full_like(value, 0.01) for name, value in base.pipe.transformer.state_dict().items()}
    single = tmp_path / "flux-transformer.safetensors"
    save_file(state, str(single))
    loaded = load_pipeline(tiny_models["flux"], transformer_file=single)
    assert loaded.transformer_file == str(single.resolve())
    loaded_state = loaded.pipe.transformer.state_dict()
    assert all(torch.equal(loaded_state[name], state[name]) for name in state)
    assert load_pipeline(tiny_models["flux"], transformer_file=single) is loaded


def test_single_file_transformer_must_be_safetensors_and_flux(tiny_models, tmp_path):
    pickle_file = tmp_path / "flux.ckpt"
    pickle_file.write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="not a .safetensors file"):
        load_pipeline(tiny_models["flux"], transformer_file=pickle_file)
    with pytest.raises(InputError, match="FLUX pipelines only.*qwen-image-edit"):
        load_pipeline(tiny_models["qwen-image-edit"], transformer_file=pickle_file)


def test_hub_id_not_in_the_offline_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(
        ModelLoadError, match="'nobody/not-a-model': no local folder .*hf download nobody/not-a-model"
    ):
        detect_pipeline_kind("nobody/not-a-model")


def missing_hub_model_message(tmp_path, **env) -> str:
    """The error a fresh process gets for a hub id that is in no cache, under ``env``."""
    script = (
        "from paco_core.errors import ModelLoadError\n"
        "from paco_core.models.hub import hub_snapshot\n"
        "try:\n"
        "    hub_snapshot('nobody/not-a-model', what='model')\n"
        "except ModelLoadError as error:\n"
        "    print(error)\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    base.update(HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(Path(__file__).resolve().parent.parent), **env)
    done = subprocess.run(
        [sys.executable, "-c", script], env=base, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_missing_hub_model_names_offline_mode_as_the_cause(tmp_path, switch):
    message = missing_hub_model_message(tmp_path, **{switch: "1"})
    assert f"offline mode is on ({switch}=1)" in message
    assert "hf download nobody/not-a-model" in message and "huggingface-cli" not in message


def test_missing_hub_model_online_says_what_failed_and_how_to_download(tmp_path):
    with socket.socket() as probe:  # a hub endpoint that refuses connections: no real network is asked
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    message = missing_hub_model_message(tmp_path, HF_ENDPOINT=endpoint, HF_HUB_ETAG_TIMEOUT="2")
    assert "could not be fetched (" in message and "offline mode" not in message
    assert "Download it first (hf download nobody/not-a-model)" in message


# --------------------------------------------------------------------------- Black Forest Labs layout

BFL_LINEAR_NAMES = {  # diffusers module (inside a double block / single block / the model) -> BFL module
    "double": {
        "norm1.linear": "img_mod.lin",
        "norm1_context.linear": "txt_mod.lin",
        "attn.to_out.0": "img_attn.proj",
        "attn.to_add_out": "txt_attn.proj",
        "ff.net.0.proj": "img_mlp.0",
        "ff.net.2": "img_mlp.2",
        "ff_context.net.0.proj": "txt_mlp.0",
        "ff_context.net.2": "txt_mlp.2",
    },
    "single": {"norm.linear": "modulation.lin", "proj_out": "linear2"},
    "model": {
        "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
        "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
        "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "context_embedder": "txt_in",
        "x_embedder": "img_in",
        "proj_out": "final_layer.linear",
    },
}
BFL_NORM_NAMES = {
    "double": {
        "attn.norm_q": "img_attn.norm.query_norm",
        "attn.norm_k": "img_attn.norm.key_norm",
        "attn.norm_added_q": "txt_attn.norm.query_norm",
        "attn.norm_added_k": "txt_attn.norm.key_norm",
    },
    "single": {"attn.norm_q": "norm.query_norm", "attn.norm_k": "norm.key_norm"},
}
BFL_FUSED = {  # BFL module -> the diffusers modules concatenated (dim 0) into it
    "double": {
        "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    },
    "single": {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")},
}


def to_bfl_layout(state: dict, num_layers: int, num_single_layers: int) -> dict:
    """A diffusers FLUX transformer state dict in the original Black Forest Labs layout (what
    ComfyUI users keep in models/diffusion_models), written from the inverse of diffusers'
    ``convert_flux_transformer_checkpoint_to_diffusers``. Every diffusers key is used once."""
    import torch

    state, bfl = dict(state), {}
    blocks = [("double", f"transformer_blocks.{i}.", f"double_blocks.{i}.") for i in range(num_layers)]
    blocks += [
        ("single", f"single_transformer_blocks.{i}.", f"single_blocks.{i}.") for i in range(num_single_layers)
    ]
    for kind, ours, theirs in [*blocks, ("model", "", "")]:
        for name, bfl_name in BFL_LINEAR_NAMES[kind].items():
            for part in ("weight", "bias"):
                bfl[f"{theirs}{bfl_name}.{part}"] = state.pop(f"{ours}{name}.{part}")
        for name, bfl_name in BFL_NORM_NAMES.get(kind, {}).items():
            bfl[f"{theirs}{bfl_name}.scale"] = state.pop(f"{ours}{name}.weight")
        for bfl_name, names in BFL_FUSED.get(kind, {}).items():
            for part in ("weight", "bias"):
                bfl[f"{theirs}{bfl_name}.{part}"] = torch.cat([state.pop(f"{ours}{n}.{part}") for n in names])
    for part in (
        "weight",
        "bias",
    ):  # diffusers' AdaLayerNormContinuous is (scale, shift); BFL's (shift, scale)
        scale, shift = state.pop(f"norm_out.linear.{part}").chunk(2, dim=0)
        bfl[f"final_layer.adaLN_modulation.1.{part}"] = torch.cat([shift, scale])
    assert not state, f"diffusers keys left unconverted: {sorted(state)}"
    return bfl


def generate_one(loaded):
    from paco_core.generate import SetRequest, generate_sets

    request = SetRequest(
        theme="a fox", panels=("runs", "sleeps"), layout="1x2", panel_width=32, panel_height=32, steps=2
    )
    return generate_sets(loaded, request)[0].grid


def test_single_file_transformer_in_the_original_bfl_layout_gives_the_same_images(tiny_models, tmp_path):
    import numpy as np
    import torch
    from safetensors.torch import save_file

    folder = load_pipeline(tiny_models["flux"])
    config = folder.pipe.transformer.config
    bfl = to_bfl_layout(folder.pipe.transformer.state_dict(), config.num_layers, config.num_single_layers)
    assert {"double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"} <= set(
        bfl
    )
    single = tmp_path / "flux1-dev-bfl.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in bfl.items()}, str(single))

    loaded = load_pipeline(tiny_models["flux"], transformer_file=single)

    expected, got = folder.pipe.transformer.state_dict(), loaded.pipe.transformer.state_dict()
    assert set(got) == set(expected) and all(torch.equal(got[name], expected[name]) for name in expected)
    np.testing.assert_array_equal(np.asarray(generate_one(loaded)), np.asarray(generate_one(folder)))


def test_bfl_conversion_matches_diffusers_own_at_flux1_dev_width(tiny_models):
    """At FLUX.1-dev's 3072 width diffusers' converter runs too: both give the same tensors."""
    import torch
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    from paco_core.models.flux_single_file import flux_bfl_to_diffusers

    keys = to_bfl_layout(load_pipeline(tiny_models["flux"]).pipe.transformer.state_dict(), 1, 1)
    generator = torch.Generator().manual_seed(0)

    def fake(key):  # small tensors, except the fused ones that diffusers splits at 3072
        rows = {"linear1": 7 * 3072, "qkv": 3 * 3072}.get(key.split(".")[-2], 6)
        return torch.randn((rows, 2) if key.endswith("weight") else (rows,), generator=generator)

    bfl = {key: fake(key) for key in keys}
    ours = flux_bfl_to_diffusers(dict(bfl), inner_dim=3072)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert set(ours) == set(theirs) and all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_single_file_transformer_that_does_not_fit_is_refused_with_the_counts(tiny_models, tmp_path):
    import torch
    from safetensors.torch import save_file

    state = load_pipeline(tiny_models["flux"]).pipe.transformer.state_dict()
    bfl = to_bfl_layout(state, 1, 1)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in bfl.items() if not k.startswith("single_blocks.")}, str(partial))
    num_single = sum(key.startswith("single_transformer_blocks.") for key in state)
    with pytest.raises(
        ModelLoadError, match=f"does not fit the FLUX transformer .*: {num_single} weights missing"
    ):
        load_pipeline(tiny_models["flux"], transformer_file=partial)
    unknown = tmp_path / "unknown.safetensors"
    save_file(
        {**{k: v.contiguous() for k, v in bfl.items()}, "extra_in.weight": torch.zeros(2, 2)}, str(unknown)
    )
    with pytest.raises(ModelLoadError, match=r"original layout but has 1 keys .*\(e\.g\. extra_in\.weight\)"):
        load_pipeline(tiny_models["flux"], transformer_file=unknown)


def test_single_file_transformer_in_scaled_fp8_is_upcast(tiny_models, tmp_path):
    from safetensors.torch import save_file

    from paco_core.testing.comfy_layout import to_scaled_fp8

    state = load_pipeline(tiny_models["flux"]).pipe.transformer.state_dict()
    scaled = tmp_path / "flux-fp8_scaled.safetensors"
    save_file({k: v.contiguous() for k, v in to_scaled_fp8(to_bfl_layout(state, 1, 1)).items()}, str(scaled))
    loaded = load_pipeline(tiny_models["flux"], transformer_file=scaled).pipe.transformer.state_dict()
    worst = max(
        ((loaded[k] - v).abs().max() / v.abs().max().clamp(min=1e-8)).item() for k, v in state.items()
    )
    assert 0 < worst < 0.07  # e4m3 rounding: at most 1/16 relative
