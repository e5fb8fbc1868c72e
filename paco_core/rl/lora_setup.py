"""Freeze the transformer and add the trainable PaCo LoRA to it (peft, through diffusers)."""

from __future__ import annotations

from typing import Any

import torch

from paco_core.errors import ConfigError
from paco_core.rl.config import LoraConfig


def add_trainable_lora(
    transformer: Any, lora: LoraConfig, *, kind: str, gradient_checkpointing: bool = False
) -> list[tuple[str, torch.nn.Parameter]]:
    """Freeze ``transformer``, add the adapter, keep its weights in float32.

    The base weights are frozen BEFORE the adapter is added, so only the LoRA trains and
    the base stays bit-identical.

    Args:
        transformer: a diffusers transformer (FLUX or Qwen-Image).
        lora: rank, alpha, init and target module names.
        kind: the pipeline kind (for the error message).
        gradient_checkpointing: recompute activations in the backward pass.

    Returns:
        ``(name, parameter)`` of the trainable LoRA weights.

    Raises:
        ConfigError: the target modules match no layer of the transformer.
    """
    from peft import LoraConfig as PeftLoraConfig

    transformer.requires_grad_(False)
    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        init_lora_weights="gaussian" if lora.init == "gaussian" else True,
        target_modules=list(lora.target_modules),
    )
    try:
        transformer.add_adapter(peft_config)
    except ValueError as error:
        raise ConfigError(
            f"`lora.target_modules` {list(lora.target_modules)} match no layer of the {kind} transformer: {error}"
        ) from error
    for param in transformer.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.to(torch.float32)
    if gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return [(name, param) for name, param in transformer.named_parameters() if param.requires_grad]
