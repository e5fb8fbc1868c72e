"""Pipeline loading: kind detection, folder checks, cache, single-file transformer, errors."""

from __future__ import annotations

import json
import shutil

import pytest

from paco_core.errors import InputError, ModelLoadError
from paco_core.models.pipelines import (
    clear_pipeline_cache,
    detect_pipeline_kind,
    load_pipeline,
    resolve_dtype,
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
        ModelLoadError, match="'nobody/not-a-model': no local folder .*huggingface-cli download"
    ):
        detect_pipeline_kind("nobody/not-a-model")
