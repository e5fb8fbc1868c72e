"""The native-node workflows and ComfyUI's own model loaders in a real ComfyUI (skipped unless
COMFYUI_DIR names a checkout; COMFYUI_PYTHON its interpreter).

- Every native workflow passes the server's prompt validation with the file names its note
  documents present in ComfyUI's model folders.
- ComfyUI's own UNETLoader takes the original-layout tiny FLUX file and
  LoraLoaderModelOnly applies a PaCo LoRA (saved by our helper) with no "lora key not
  loaded"; the model ComfyUI saves equals the base weights plus the LoRA, in FLUX's layout.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image
from test_comfyui_integration import (
    comfyui_server,
    http_json,
    pack_linked_into,
    wait_for_history,
)

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]


def place_native_files(base: Path) -> Path:
    """The files the native workflows' note names (empty files: enough for validation)."""
    from tools.workflows.specs.native import NATIVE_MODEL_NAMES

    models = base / "models"
    for folder, names in NATIVE_MODEL_NAMES.items():
        (models / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (models / folder / name).write_bytes(b"")
    judge = models / "text_encoders" / "PaCo-Reward-7B"
    judge.mkdir()
    (judge / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (judge / "model.safetensors").write_bytes(b"")
    return models


def test_native_workflows_pass_comfyuis_prompt_validation(tmp_path):
    from tools.workflows.api_prompt import to_api_prompt
    from tools.workflows.node_layouts import node_layouts
    from tools.workflows.specs import NATIVE_WORKFLOWS, WORKFLOWS_DIR
    from tools.workflows.specs.common import EXAMPLE_INPUT_IMAGE

    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    models = place_native_files(tmp_path / "base")
    layouts = node_layouts()
    prompts = {
        name: to_api_prompt(json.loads((WORKFLOWS_DIR / f"{name}.json").read_text()), layouts)
        for name in NATIVE_WORKFLOWS
    }
    with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path, models) as (url, _log):
        Image.new("RGB", (64, 48), (120, 160, 200)).save(tmp_path / "input" / EXAMPLE_INPUT_IMAGE)
        http_json(f"{url}/queue", {"clear": True})
        answers = {}
        for name, prompt in prompts.items():
            answers[name] = http_json(f"{url}/prompt", {"prompt": prompt, "client_id": "paco-native"})
            http_json(f"{url}/interrupt", {})  # the files are empty: validation only, no run
        # Without one of the files the same prompt is refused, naming the input.
        broken = json.loads(json.dumps(prompts["paco-native-flux-set"]))
        for node in broken.values():
            if node["class_type"] == "UNETLoader":
                node["inputs"]["unet_name"] = "flux1-schnell.safetensors"
        try:
            http_json(f"{url}/prompt", {"prompt": broken, "client_id": "paco-native"})
            refused = None
        except Exception as error:  # urllib's HTTPError carries the server's JSON answer
            refused = json.loads(error.read())
    for name, answer in answers.items():
        assert answer.get("node_errors") == {} and answer.get("prompt_id"), (name, answer)
    assert refused is not None and "unet_name" in json.dumps(refused["node_errors"]), refused


def save_lora_for(layout: Path, lora_path: Path) -> dict:
    """A random PaCo LoRA for the ComfyUI-sized tiny FLUX; returns the merged diffusers weights."""
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig
    from safetensors.torch import load_file

    from paco_core.models.lora import save_peft_transformer_lora
    from paco_core.rl.config import ATTENTION_TARGETS

    config = json.loads(
        (layout / "paco_configs" / "tiny-flux-comfy" / "transformer" / "config.json").read_text()
    )
    transformer = FluxTransformer2DModel.from_config(config)
    transformer.load_state_dict(load_base(layout))
    base = {k: v.clone() for k, v in transformer.state_dict().items()}
    torch.manual_seed(0)
    targets = [*ATTENTION_TARGETS, "proj_mlp", "proj_out"]  # + the single blocks' fused layers
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=targets))
    save_peft_transformer_lora(transformer, lora_path)
    merged = dict(base)
    lora = load_file(str(lora_path))
    for key in lora:
        if key.endswith(".lora_A.weight"):
            module = key[len("transformer.") : -len(".lora_A.weight")]
            up = lora[key.replace(".lora_A.", ".lora_B.")]
            merged[module + ".weight"] = base[module + ".weight"] + up @ lora[key]
    return merged


def test_comfyuis_own_loaders_take_the_tiny_flux_file_and_a_paco_lora(tmp_path, tiny_models):
    from test_comfyui_integration import comfyui_version

    if comfyui_version(Path(os.environ["COMFYUI_DIR"]).resolve()) < (0, 33, 0):
        pytest.skip(
            "ComfyUI 0.3.6x builds FLUX with the released widths whatever the file holds: the tiny file "
            "cannot load in its UNETLoader (real files do)"
        )
    import torch
    from safetensors.torch import load_file

    from paco_core.models.flux_single_file import flux_diffusers_to_bfl

    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    layout = tiny_models["comfyui"] / "models"
    models = tmp_path / "models"
    (models / "diffusion_models").mkdir(parents=True)
    (models / "loras").mkdir()
    (models / "diffusion_models" / "tiny-flux-comfy.safetensors").symlink_to(
        layout / "diffusion_models" / "tiny-flux-comfy.safetensors"
    )
    merged = save_lora_for(layout, models / "loras" / "paco_tiny.safetensors")
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny-flux-comfy.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "paco_tiny.safetensors", "strength_model": 1.0}},
        "3": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "diffusion_models/paco_check"}},
    }  # fmt: skip
    with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path, models) as (url, log_path):
        answer = http_json(f"{url}/prompt", {"prompt": prompt, "client_id": "paco-native"})
        result = wait_for_history(url, answer["prompt_id"])
        time.sleep(0.5)
        log = log_path.read_text()
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[-3000:]
    assert "lora key not loaded" not in log, log[-3000:]
    (saved_file,) = (tmp_path / "output" / "diffusion_models").glob("paco_check*.safetensors")
    saved = {  # ComfyUI names the q/k norms' weight ".weight" where the BFL release says ".scale"
        k.removeprefix("model.diffusion_model.").replace("_norm.weight", "_norm.scale"): v.float()
        for k, v in load_file(str(saved_file)).items()
    }
    expected = flux_diffusers_to_bfl(merged)
    assert set(expected) <= set(saved)
    base = flux_diffusers_to_bfl(load_base(layout))
    changed = [k for k in expected if not torch.equal(expected[k], base[k])]
    assert sorted(changed) == [  # every targeted layer, in ComfyUI's fused FLUX layout
        "double_blocks.0.img_attn.proj.weight",
        "double_blocks.0.img_attn.qkv.weight",
        "double_blocks.0.txt_attn.proj.weight",
        "double_blocks.0.txt_attn.qkv.weight",
        "final_layer.linear.weight",
        "single_blocks.0.linear1.weight",
        "single_blocks.0.linear2.weight",
    ]
    worst = max((saved[k] - expected[k]).abs().max().item() for k in expected)
    assert worst < 1e-5


def load_base(layout: Path) -> dict:
    from safetensors.torch import load_file

    from paco_core.models.flux_single_file import flux_bfl_to_diffusers

    return flux_bfl_to_diffusers(
        load_file(str(layout / "diffusion_models" / "tiny-flux-comfy.safetensors")), 128
    )
