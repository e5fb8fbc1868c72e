"""The tiny models inside a ComfyUI installation, under the names the shipped workflows'
tiny runs use, so a new user can run every PaCo workflow on a CPU in seconds:

    models/diffusers/tiny-flux, tiny-flux-kontext, tiny-qwen-image-edit   (diffusers folders)
    models/text_encoders/tiny-judge                                        (the judge)
    models/loras/paco_tiny.safetensors                                     (a random LoRA on tiny-flux)

The models are built once into ``models/.paco-tiny`` and linked from there (copied where
links are not allowed); nothing already there is overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from paco_core.errors import InputError
from paco_core.families import FLUX, trainable_kinds

TINY_PIPELINE_NAMES = {kind: f"tiny-{kind}" for kind in trainable_kinds()}
"""Kind -> the tiny diffusers folder placed in ``models/diffusers`` (the families training supports)."""
TINY_JUDGE_NAME = "tiny-judge"
TINY_LORA_NAME = "paco_tiny.safetensors"
BUILD_FOLDER = ".paco-tiny"


def comfyui_models_dir(comfyui_dir: str | os.PathLike) -> Path:
    """``<ComfyUI>/models`` of a ComfyUI checkout (the folder holding ``main.py``)."""
    root = Path(comfyui_dir).expanduser()
    if not (root / "main.py").is_file() or not (root / "comfy").is_dir():
        raise InputError(
            f"--comfyui {root}: no ComfyUI here (main.py and comfy/ are missing). Give the ComfyUI folder "
            "itself, the one holding main.py and models/."
        )
    return root / "models"


def install_tiny_models(models_dir: str | os.PathLike) -> dict[str, Path]:
    """Put the tiny models into a ComfyUI models folder; returns ``{name: path}`` of each entry."""
    from paco_core.testing import build_tiny_model

    models = Path(models_dir)
    built = models / BUILD_FOLDER
    placed: dict[str, Path] = {}
    for kind, name in TINY_PIPELINE_NAMES.items():
        placed[name] = _place(build_tiny_model(kind, built), models / "diffusers" / name)
    placed[TINY_JUDGE_NAME] = _place(
        build_tiny_model("judge", built), models / "text_encoders" / TINY_JUDGE_NAME
    )
    lora = models / "loras" / TINY_LORA_NAME
    if not lora.exists():
        lora.parent.mkdir(parents=True, exist_ok=True)
        save_tiny_flux_lora(models / "diffusers" / TINY_PIPELINE_NAMES[FLUX.kind], lora)
    placed[TINY_LORA_NAME] = lora
    return placed


def _place(source: Path, target: Path) -> Path:
    if target.exists() or target.is_symlink():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source.resolve(), target_is_directory=True)
    except OSError:  # no symlinks here (e.g. Windows without developer mode)
        shutil.copytree(source, target)
    return target


def save_tiny_flux_lora(flux_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """A random rank-2 LoRA on the tiny FLUX transformer (seed 0), saved as PaCo saves LoRAs."""
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from paco_core.models.lora import save_peft_transformer_lora

    transformer = FluxTransformer2DModel.from_pretrained(str(flux_dir), subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(
        LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q", "to_v"])
    )
    return save_peft_transformer_lora(transformer, Path(path))
