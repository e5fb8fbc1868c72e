"""A LoRA saved by ``save_peft_transformer_lora`` works in ComfyUI's native LoRA loader.

Runs ComfyUI's own key mapping (``comfy.lora.model_lora_keys_unet``) and its own weight
patching (``comfy.lora.load_lora`` + ``calculate_weight``) and compares with diffusers'
weights plus B @ A:
- FLUX: on the tiny FLUX transformer converted to ComfyUI's fused layout;
- Qwen-Image(-Edit): on ComfyUI's own QwenImageTransformer2DModel built with the tiny
  model's sizes and loaded with the tiny diffusers weights (ComfyUI uses diffusers' names).
Needs a ComfyUI checkout: ``COMFYUI_DIR=/path/to/ComfyUI`` (and, when ComfyUI has its own
virtual environment, ``COMFYUI_PYTHON=/path/to/python``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from paco_core.rl.config import LORA_TARGETS

pytestmark = pytest.mark.comfyui

FLUX_TARGETS = [*LORA_TARGETS["flux"], "proj_mlp", "proj_out"]
"""The trainer's FLUX targets plus the single blocks' fused layers (they map onto linear1/linear2)."""
QWEN_TARGETS = [*LORA_TARGETS["qwen-image"], "img_mod.1", "txt_mod.1"]
"""The trainer's Qwen-Image targets plus the modulation layers."""

CHECK_SCRIPT = r'''
import json, logging, sys
architecture, comfyui_dir, lora_path, weights_path, config_path = sys.argv[1:6]
sys.path.insert(0, comfyui_dir)
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import torch
from safetensors.torch import load_file
import comfy.lora, comfy.model_base, comfy.utils

config = json.load(open(config_path))
weights = {k: v.float() for k, v in load_file(weights_path).items()}
unet_config = {
    "depth": config["num_layers"],
    "depth_single_blocks": config.get("num_single_layers", 0),
    "hidden_size": config["num_attention_heads"] * config["attention_head_dim"],
}


def for_mapping(model_class, comfy_state_dict):
    """Only what comfy.lora.model_lora_keys_unet reads from a model: class, config, state dict."""

    class ForMapping(model_class):
        def __init__(self):
            torch.nn.Module.__init__(self)
            self.model_config = type("ModelConfig", (), {"unet_config": unet_config})()

        def state_dict(self, *args, **kwargs):
            return comfy_state_dict

    return ForMapping()


not_loaded = []


class NotLoaded(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith("lora key not loaded"):
            not_loaded.append(message.split(": ", 1)[1])


logging.getLogger().addHandler(NotLoaded())
lora = load_file(lora_path)
to_comfy = comfy.utils.flux_to_diffusers(unet_config, output_prefix="diffusion_model.")


def flux_layout(diffusers_weights):
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


def qwen_image_layout(diffusers_weights):
    return {"diffusion_model." + name: tensor.clone() for name, tensor in diffusers_weights.items()}


weight_errors = []
if architecture == "flux":
    model, comfy_layout = for_mapping(comfy.model_base.Flux, {}), flux_layout
else:
    import comfy.ldm.qwen_image.model, comfy.ops

    unet = comfy.ldm.qwen_image.model.QwenImageTransformer2DModel(
        patch_size=config["patch_size"],
        in_channels=config["in_channels"],
        out_channels=config["out_channels"],
        num_layers=config["num_layers"],
        attention_head_dim=config["attention_head_dim"],
        num_attention_heads=config["num_attention_heads"],
        joint_attention_dim=config["joint_attention_dim"],
        axes_dims_rope=tuple(config["axes_dims_rope"]),
        operations=comfy.ops.disable_weight_init,
    )
    missing, unexpected = unet.load_state_dict(weights, strict=False)  # ComfyUI reads diffusers' names
    weight_errors = sorted(missing) + sorted(unexpected)
    comfy_state = {"diffusion_model." + k: v for k, v in unet.state_dict().items()}
    model, comfy_layout = for_mapping(comfy.model_base.QwenImage, comfy_state), qwen_image_layout
key_map = comfy.lora.model_lora_keys_unet(model, {})
patches = comfy.lora.load_lora(lora, key_map)

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
report = {"not_loaded": not_loaded, "patched": sorted(grouped), "changed": changed, "max_error": max_error}
print(json.dumps({**report, "weight_errors": weight_errors}))
'''


def run_comfyui_check(tmp_path, architecture: str, transformer, folder) -> dict:
    """Save ``transformer``'s LoRA with our helper and run the ComfyUI check script on it."""
    from paco_core.models.lora import save_peft_transformer_lora

    lora_path = save_peft_transformer_lora(transformer, tmp_path / f"paco-{architecture}.safetensors")
    weights = next(folder.glob("*.safetensors"))
    script = tmp_path / "check_comfyui_lora.py"
    script.write_text(CHECK_SCRIPT)
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    args = [python, str(script), architecture, os.environ["COMFYUI_DIR"], str(lora_path), str(weights)]
    finished = subprocess.run(
        [*args, str(folder / "config.json")], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def with_random_lora(transformer, targets):
    import torch
    from peft import LoraConfig

    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=targets))
    return transformer


needs_comfyui = pytest.mark.skipif(
    not os.environ.get("COMFYUI_DIR"),
    reason="set COMFYUI_DIR to a ComfyUI checkout to run ComfyUI's LoRA mapping",
)


@needs_comfyui
def test_every_key_of_a_saved_flux_lora_maps_in_comfyui(tiny_models, tmp_path):
    from diffusers import FluxTransformer2DModel

    folder = tiny_models["flux"] / "transformer"
    transformer = with_random_lora(FluxTransformer2DModel.from_pretrained(str(folder)), FLUX_TARGETS)
    report = run_comfyui_check(tmp_path, "flux", transformer, folder)
    assert report["not_loaded"] == []
    assert report["patched"] == report["changed"] and len(report["patched"]) >= 10
    assert report["max_error"] < 1e-5


@needs_comfyui
def test_every_key_of_a_saved_qwen_image_edit_lora_maps_in_comfyui(tiny_models, tmp_path):
    from diffusers import QwenImageTransformer2DModel

    folder = tiny_models["qwen-image-edit"] / "transformer"
    transformer = with_random_lora(QwenImageTransformer2DModel.from_pretrained(str(folder)), QWEN_TARGETS)
    report = run_comfyui_check(tmp_path, "qwen-image", transformer, folder)
    assert report["weight_errors"] == []  # ComfyUI's Qwen-Image model takes diffusers' weight names
    assert report["not_loaded"] == []
    num_layers = transformer.config.num_layers
    assert report["patched"] == report["changed"] and len(report["patched"]) == len(QWEN_TARGETS) * num_layers
    assert report["max_error"] < 1e-5
