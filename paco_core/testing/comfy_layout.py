"""The tiny models written the way ComfyUI users keep models: split files, original layouts.

From the tiny diffusers folders (built first, beside this one) this writes a ComfyUI
``models/`` tree:

```
models/diffusion_models/tiny-flux.safetensors                original BFL layout, fp32
models/diffusion_models/tiny-flux-fp8_e4m3fn.safetensors     plain fp8 (matrices only)
models/diffusion_models/tiny-flux-fp8_scaled.safetensors     ComfyUI's older scaled fp8 (scale_weight)
models/diffusion_models/tiny-flux-kontext.safetensors
models/diffusion_models/tiny-qwen-image-edit(-plus).safetensors   diffusers names, as ComfyUI's
models/text_encoders/tiny-flux-clip_l.safetensors, tiny-flux-t5xxl.safetensors,
                     tiny-flux-t5xxl-fp8_scaled.safetensors  (newer weight_scale layout) ...
models/text_encoders/tiny-qwen-image-edit-qwen_2.5_vl.safetensors (+ -fp8_scaled)
models/vae/tiny-flux-ae.safetensors (LDM layout), tiny-qwen-image-edit-qwen_image_vae.safetensors (Wan layout)
models/checkpoints/tiny-flux-aio.safetensors                 all-in-one (model.diffusion_model., text_encoders., vae.)
models/diffusion_models/tiny-flux-comfy.safetensors          128-wide heads: ComfyUI's own UNETLoader takes it
models/paco_configs/<name>/                                  the folder without weights (configs, tokenizers)
```

The tiny models are not the real sizes, so their config folders are written too; with the
real files the pack's shipped configs are used instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FP8_NAMES = ("fp8_e4m3fn", "fp8_scaled")


def _load(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    state_dict = {}
    for file in files:
        state_dict.update(load_file(str(file)))
    return state_dict


def _save(state_dict: dict, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sorted(state_dict.items())}, str(path))


def _quantizable(key: str, tensor) -> bool:
    return key.endswith(".weight") and tensor.dim() == 2 and "embed" not in key and "shared" not in key


def to_fp8(state_dict: dict) -> dict:
    """Plain fp8: every matrix cast to float8_e4m3fn, the rest kept."""
    import torch

    return {k: v.to(torch.float8_e4m3fn) if _quantizable(k, v) else v for k, v in state_dict.items()}


def to_scaled_fp8(state_dict: dict, layout: str = "scale_weight") -> dict:
    """Per-tensor scaled fp8 as ComfyUI writes it.

    layout "scale_weight": the older files (a ``scaled_fp8`` marker, ``<layer>.scale_weight``);
    layout "weight_scale": the newer ones (``<layer>.weight_scale`` and ``<layer>.comfy_quant``).
    """
    import torch

    out = {}
    for key, tensor in state_dict.items():
        if not _quantizable(key, tensor):
            out[key] = tensor
            continue
        scale = tensor.abs().max().clamp(min=1e-12).float() / 448.0
        out[key] = (tensor.float() / scale).to(torch.float8_e4m3fn)
        layer = key[: -len(".weight")]
        if layout == "scale_weight":
            out[f"{layer}.scale_weight"] = scale.reshape(())
        else:
            out[f"{layer}.weight_scale"] = scale.reshape(())
            out[f"{layer}.comfy_quant"] = torch.tensor(
                list(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8
            )
    if layout == "scale_weight":
        out["scaled_fp8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    return out


def _config_folder(source: Path, destination: Path) -> None:
    """Copy a diffusers folder without its weights: configs and tokenizers only."""
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json", "paco_*"),
    )


def write_flux_files(source: Path, models: Path, name: str, with_checkpoint: bool) -> None:
    from paco_core.models.flux_single_file import flux_diffusers_to_bfl
    from paco_core.models.vae_layouts import ldm_vae_from_diffusers

    transformer = flux_diffusers_to_bfl(_load(source / "transformer"))
    clip_l = {
        k if k.startswith("text_model.") else f"text_model.{k}": v
        for k, v in _load(source / "text_encoder").items()
    }
    t5 = _load(source / "text_encoder_2")
    vae_config = json.loads((source / "vae" / "config.json").read_text())
    vae = ldm_vae_from_diffusers(_load(source / "vae"), len(vae_config["block_out_channels"]))
    _save(transformer, models / "diffusion_models" / f"{name}.safetensors")
    _save(clip_l, models / "text_encoders" / f"{name}-clip_l.safetensors")
    _save(t5, models / "text_encoders" / f"{name}-t5xxl.safetensors")
    _save(vae, models / "vae" / f"{name}-ae.safetensors")
    if with_checkpoint:
        _save(to_fp8(transformer), models / "diffusion_models" / f"{name}-fp8_e4m3fn.safetensors")
        _save(to_scaled_fp8(transformer), models / "diffusion_models" / f"{name}-fp8_scaled.safetensors")
        _save(
            to_scaled_fp8(t5, "weight_scale"),
            models / "text_encoders" / f"{name}-t5xxl-fp8_scaled.safetensors",
        )
        everything = {f"model.diffusion_model.{k}": v for k, v in transformer.items()}
        everything.update({f"text_encoders.clip_l.transformer.{k}": v for k, v in clip_l.items()})
        everything.update({f"text_encoders.t5xxl.transformer.{k}": v for k, v in t5.items()})
        everything.update({f"vae.{k}": v for k, v in vae.items()})
        _save(everything, models / "checkpoints" / f"{name}-aio.safetensors")


def _qwen_vl_release_names(state_dict: dict) -> dict:
    """transformers' Qwen2.5-VL names in the original release names ComfyUI's files use."""
    out = {}
    for key, tensor in state_dict.items():
        if key.startswith("model.language_model."):
            key = "model." + key.removeprefix("model.language_model.")
        elif key.startswith("model.visual."):
            key = key.removeprefix("model.")
        out[key] = tensor
    return out


def write_qwen_image_files(source: Path, models: Path, name: str, with_fp8: bool) -> None:
    from paco_core.models.vae_layouts import wan_vae_from_diffusers

    transformer = _load(source / "transformer")
    text_encoder = _qwen_vl_release_names(_load(source / "text_encoder"))
    text_encoder.pop("lm_head.weight", None)  # ComfyUI's text-encoder files carry no LM head
    vae_config = json.loads((source / "vae" / "config.json").read_text())
    vae = wan_vae_from_diffusers(_load(source / "vae"), vae_config["num_res_blocks"])
    _save(transformer, models / "diffusion_models" / f"{name}.safetensors")
    _save(text_encoder, models / "text_encoders" / f"{name}-qwen_2.5_vl.safetensors")
    _save(vae, models / "vae" / f"{name}-qwen_image_vae.safetensors")
    if with_fp8:
        _save(
            to_scaled_fp8(text_encoder, "weight_scale"),
            models / "text_encoders" / f"{name}-qwen_2.5_vl-fp8_scaled.safetensors",
        )
        _save(to_scaled_fp8(transformer), models / "diffusion_models" / f"{name}-fp8_scaled.safetensors")


COMFY_SIZED_FLUX = "tiny-flux-comfy"
COMFY_SIZED_FLUX_SEED = 2003


def write_comfy_sized_flux(source: Path, models: Path) -> None:
    """A FLUX transformer ComfyUI's own loader can take: ComfyUI fixes FLUX's rope axes at
    (16, 56, 56), so its heads are 128 wide (here 1 head, 2 blocks: about 1 M parameters).
    The text encoders and VAE of the tiny FLUX fit it; its config folder is written too."""
    from diffusers import FluxTransformer2DModel

    from paco_core.models.flux_single_file import flux_diffusers_to_bfl
    from paco_core.testing.seeding import seeded

    config = json.loads((source / "transformer" / "config.json").read_text())
    sizes = {"num_attention_heads": 1, "attention_head_dim": 128, "axes_dims_rope": [16, 56, 56]}
    with seeded(COMFY_SIZED_FLUX_SEED):
        transformer = FluxTransformer2DModel.from_config({**config, **sizes})
    _save(
        flux_diffusers_to_bfl(transformer.state_dict()),
        models / "diffusion_models" / f"{COMFY_SIZED_FLUX}.safetensors",
    )
    configs = models / "paco_configs" / COMFY_SIZED_FLUX
    _config_folder(source, configs)
    (configs / "transformer" / "config.json").write_text(
        json.dumps({**config, **sizes}, indent=2, sort_keys=True)
    )


def save_tiny_comfyui_layout(folder: Path) -> None:
    """Write ``folder/models/...`` from the tiny diffusers folders in ``folder``'s parent
    (building those first when missing)."""
    from paco_core.families import all_families, load_reference
    from paco_core.testing.factory import TINY_MODEL_NAMES, build_tiny_model

    models = folder / "models"
    for item in all_families():
        if item.tiny_comfy_files is None or item.kind not in TINY_MODEL_NAMES:
            continue
        source = build_tiny_model(item.kind, folder.parent)
        name = f"tiny-{item.kind}"
        load_reference(item.tiny_comfy_files)(source, models, name)
        _config_folder(source, models / "paco_configs" / name)


def write_flux_dev_files(source: Path, models: Path, name: str) -> None:
    """FLUX.1-dev's files: split files, an all-in-one checkpoint and the ComfyUI-sized transformer."""
    write_flux_files(source, models, name, with_checkpoint=True)
    write_comfy_sized_flux(source, models)


def write_flux_kontext_files(source: Path, models: Path, name: str) -> None:
    """FLUX.1-Kontext-dev's split files."""
    write_flux_files(source, models, name, with_checkpoint=False)


def write_qwen_image_edit_files(source: Path, models: Path, name: str) -> None:
    """Qwen-Image-Edit's split files, with fp8 variants."""
    write_qwen_image_files(source, models, name, with_fp8=True)


def write_qwen_image_edit_plus_files(source: Path, models: Path, name: str) -> None:
    """Qwen-Image-Edit-Plus's split files."""
    write_qwen_image_files(source, models, name, with_fp8=False)
