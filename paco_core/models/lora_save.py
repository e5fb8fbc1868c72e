"""Saving LoRAs that have the same effect in diffusers and in ComfyUI's native loader.

Keys are diffusers module names with the ``transformer.`` prefix
(``transformer.transformer_blocks.0.attn.to_q.lora_A.weight``), which ComfyUI maps onto
its fused FLUX weights and onto Qwen-Image. The scale alpha / rank is folded into
``lora_B`` and no ``.alpha`` tensors are written: without them diffusers uses scale 1
(lora_alpha = r) and ComfyUI uses scale 1 too, so one file means the same in both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, LoraError
from paco_core.families import architectures
from paco_core.io import atomic_save_safetensors
from paco_core.models.lora_files import (
    LORA_SUFFIXES,
    PEFT_PREFIX,
    architecture_of_kind,
    architecture_title,
    detect_architecture,
)


def save_peft_transformer_lora(
    transformer,
    path: str | os.PathLike,
    adapter_name: str = "default",
    metadata: dict[str, str] | None = None,
    weights: dict[str, Any] | None = None,
) -> Path:
    """Save the LoRA of a peft-wrapped diffusion transformer, loadable by diffusers and ComfyUI.

    Args:
        transformer: a diffusers transformer with a peft adapter injected (``add_adapter``
            or ``inject_adapter_in_model``), or a ``PeftModel`` around one.
        path: the ``.safetensors`` file to write (atomically).
        adapter_name: which peft adapter to save.
        metadata: extra string metadata (e.g. training step).
        weights: the LoRA weights by parameter name (``<module>.lora_A.<adapter>.weight``),
            used instead of the modules' own (the full tensors gathered from FSDP2 shards).

    Returns:
        The written path.
    """
    from peft.tuners.lora import LoraLayer

    state_dict: dict[str, Any] = {}
    ranks: set[int] = set()
    for name, module in transformer.named_modules():
        if not isinstance(module, LoraLayer) or adapter_name not in module.lora_A:
            continue
        module_name = name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name
        down = module.lora_A[adapter_name].weight.detach()
        up = module.lora_B[adapter_name].weight.detach()
        if weights is not None:
            down = weights[f"{name}.lora_A.{adapter_name}.weight"]
            up = weights[f"{name}.lora_B.{adapter_name}.weight"]
        scale = float(module.scaling[adapter_name])
        state_dict[f"transformer.{module_name}.lora_A.weight"] = down.clone()
        state_dict[f"transformer.{module_name}.lora_B.weight"] = (up.float() * scale).to(up.dtype)
        ranks.add(int(down.shape[0]))
    if not state_dict:
        raise LoraError(f"the transformer has no peft LoRA adapter named {adapter_name!r}; nothing to save.")
    architecture = detect_architecture(state_dict) or _architecture_of_transformer(transformer)
    return _write(path, state_dict, architecture, max(ranks), metadata)


def save_lora(
    path: str | os.PathLike,
    state_dict_or_peft_model,
    *,
    alpha: float,
    rank: int,
    kind: str,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save LoRA weights given as a peft model or a state dict (scale alpha/rank folded in).

    Args:
        path: the ``.safetensors`` file to write (atomically).
        state_dict_or_peft_model: a module holding a peft adapter, or a state dict with
            ``[base_model.model.|transformer.]<module>.lora_A.weight`` / ``.lora_B.weight`` keys
            holding *unscaled* weights (as peft stores them).
        alpha: the LoRA alpha used in training.
        rank: the LoRA rank used in training.
        kind: the pipeline kind the LoRA is for (a family's kind, see ``paco_core.families``).
        metadata: extra string metadata.

    Returns:
        The written path.
    """
    if rank <= 0 or alpha <= 0:
        raise InputError(f"LoRA rank and alpha should be positive, got rank={rank}, alpha={alpha}.")
    if hasattr(state_dict_or_peft_model, "named_modules"):
        from peft import get_peft_model_state_dict

        raw = get_peft_model_state_dict(state_dict_or_peft_model)
    else:
        raw = dict(state_dict_or_peft_model)
    state_dict: dict[str, Any] = {}
    for key, tensor in raw.items():
        name = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        name = name[len("transformer.") :] if name.startswith("transformer.") else name
        if not name.endswith(LORA_SUFFIXES):
            raise LoraError(f"save_lora: key {key!r} is not a lora_A/lora_B weight.")
        if name.endswith(".lora_B.weight"):
            tensor = (tensor.float() * (alpha / rank)).to(tensor.dtype)
        state_dict["transformer." + name] = tensor
    if not state_dict:
        raise LoraError("save_lora: no LoRA weights to save.")
    architecture = detect_architecture(state_dict)
    if architecture is not None and architecture != architecture_of_kind(kind):
        raise LoraError(
            f"save_lora: the weights are {architecture_title(architecture)} module names but kind is {kind!r}."
        )
    return _write(
        path, state_dict, architecture_of_kind(kind), rank, {"paco.alpha": str(alpha), **(metadata or {})}
    )


def _architecture_of_transformer(transformer) -> str:
    name = type(getattr(transformer, "base_model", transformer)).__name__
    for architecture in architectures():
        if architecture.transformer_class == name:
            return architecture.name
    known = ", ".join(item.transformer_class for item in architectures())
    raise LoraError(
        f"save_lora: a {name} transformer is none of the architectures this pack knows ({known})."
    )


def _write(path, state_dict: dict, architecture: str, rank: int, metadata: dict[str, str] | None) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"LoRA files are saved as .safetensors, got {path.name!r}.")
    info = {
        "format": "pt",
        "paco.architecture": architecture,
        "paco.rank": str(rank),
        "paco.scale": "folded into lora_B (no alpha tensors: scale 1 in diffusers and ComfyUI)",
    }
    info.update({str(k): str(v) for k, v in (metadata or {}).items()})
    return atomic_save_safetensors(path, state_dict, metadata=info)
