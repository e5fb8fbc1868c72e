"""A LoRA saved by ``save_peft_transformer_lora`` works in ComfyUI's native LoRA loader.

Runs ComfyUI's own key mapping (``comfy.lora.model_lora_keys_unet`` for a Flux model) and
its own weight patching (``comfy.lora.load_lora`` + ``calculate_weight``) on the tiny FLUX
transformer converted to ComfyUI's fused layout, and compares with diffusers' weights plus
B @ A. Needs a ComfyUI checkout: ``COMFYUI_DIR=/path/to/ComfyUI`` (and, when ComfyUI has
its own virtual environment, ``COMFYUI_PYTHON=/path/to/python``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.comfyui

PACO_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
    "proj_out",
]

CHECK_SCRIPT = r'''
import json, logging, sys
comfyui_dir, lora_path, weights_path, config_path = sys.argv[1:5]
sys.path.insert(0, comfyui_dir)
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import torch
from safetensors.torch import load_file
import comfy.lora, comfy.model_base, comfy.utils

config = json.load(open(config_path))
unet_config = {
    "depth": config["num_layers"],
    "depth_single_blocks": config["num_single_layers"],
    "hidden_size": config["num_attention_heads"] * config["attention_head_dim"],
}


class FluxForMapping(comfy.model_base.Flux):
    """Only what comfy.lora.model_lora_keys_unet reads from a Flux model."""

    def __init__(self):
        torch.nn.Module.__init__(self)
        self.model_config = type("ModelConfig", (), {"unet_config": unet_config})()

    def state_dict(self, *args, **kwargs):
        return {}


not_loaded = []


class NotLoaded(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith("lora key not loaded"):
            not_loaded.append(message.split(": ", 1)[1])


logging.getLogger().addHandler(NotLoaded())
lora = load_file(lora_path)
key_map = comfy.lora.model_lora_keys_unet(FluxForMapping(), {})
patches = comfy.lora.load_lora(lora, key_map)

to_comfy = comfy.utils.flux_to_diffusers(unet_config, output_prefix="diffusion_model.")


def comfy_layout(diffusers_weights):
    pieces = {}
    for name, tensor in diffusers_weights.items():
        target = to_comfy.get(name)
        if target is None or (isinstance(target, tuple) and len(target) > 2):
            continue  # not mapped, or stored transformed (scale/shift swap): no LoRA targets it here
        key, offset = target if isinstance(target, tuple) else (target, None)
        pieces.setdefault(key, []).append((offset, tensor))
    fused = {}
    for key, parts in pieces.items():
        if parts[0][0] is None:
            fused[key] = parts[0][1].clone()
            continue
        dim = parts[0][0][0]
        shape = list(parts[0][1].shape)
        shape[dim] = max(offset[1] + offset[2] for offset, _ in parts)
        fused[key] = torch.zeros(shape)
        for (dim, start, size), tensor in parts:
            fused[key].narrow(dim, start, size).copy_(tensor)
    return fused


weights = {k: v.float() for k, v in load_file(weights_path).items()}
expected = dict(weights)
for name in lora:
    if name.endswith(".lora_A.weight"):
        module = name[len("transformer."):-len(".lora_A.weight")]
        up = lora[name.replace(".lora_A.", ".lora_B.")].float()
        expected[module + ".weight"] = weights[module + ".weight"] + up @ lora[name].float()
base, wanted = comfy_layout(weights), comfy_layout(expected)

grouped = {}
for target, adapter in patches.items():
    key, offset = target if isinstance(target, tuple) else (target, None)
    grouped.setdefault(key, []).append((1.0, adapter, 1.0, offset, None))
max_error = 0.0
for key, key_patches in grouped.items():
    patched = comfy.lora.calculate_weight(key_patches, base[key].clone(), key)
    max_error = max(max_error, float((patched - wanted[key]).abs().max()))
changed = sorted(k for k in wanted if not torch.equal(wanted[k], base[k]))
print(json.dumps({"not_loaded": not_loaded, "patched": sorted(grouped), "changed": changed, "max_error": max_error}))
'''


def test_every_key_of_a_saved_flux_lora_maps_in_comfyui(tiny_models, tmp_path):
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout to run ComfyUI's LoRA mapping")
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from paco_core.models.lora import save_peft_transformer_lora

    folder = tiny_models["flux"] / "transformer"
    transformer = FluxTransformer2DModel.from_pretrained(str(folder))
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=PACO_TARGETS)
    transformer.add_adapter(config)
    lora_path = save_peft_transformer_lora(transformer, tmp_path / "paco.safetensors")
    weights = next(folder.glob("*.safetensors"))
    script = tmp_path / "check_comfyui_lora.py"
    script.write_text(CHECK_SCRIPT)
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    args = [python, str(script), comfyui_dir, str(lora_path), str(weights), str(folder / "config.json")]
    finished = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["not_loaded"] == []
    assert report["patched"] == report["changed"] and len(report["patched"]) >= 10
    assert report["max_error"] < 1e-5
