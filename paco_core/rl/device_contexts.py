"""Settings that depend on the device: bf16 autocast, TF32 matmuls, and the attention kernels for training."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

AutocastFactory = Callable[[], contextlib.AbstractContextManager]


def autocast_factory(device: Any, mixed_precision: str) -> AutocastFactory:
    """A factory of bf16 autocast contexts on CUDA (``mixed_precision`` auto/bf16); no-ops on the CPU."""
    if torch.device(device).type == "cuda" and mixed_precision in ("auto", "bf16"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def apply_tf32(device: Any, allow: bool) -> bool:
    """On CUDA, let fp32 matmuls use TF32 when ``allow`` (``optim.allow_tf32``); returns whether it is on.

    The released trainers set ``torch.backends.cuda.matmul.allow_tf32 = True`` (``config.allow_tf32``);
    a process-wide switch, set once by the trainer. The CPU has no TF32: nothing changes there.
    """
    if torch.device(device).type != "cuda":
        return False
    torch.backends.cuda.matmul.allow_tf32 = bool(allow)
    return bool(allow)


def training_attention(device: Any) -> contextlib.AbstractContextManager:
    """On CUDA, attention by the flash / memory-efficient / math kernels only.

    PyTorch 2.11's cuDNN attention fails in the backward pass of the FLUX transformer
    (``mha_graph.execute(...) is_good()``, seen on an H200); forward and backward
    (including checkpoint recomputation) run inside this context.
    """
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
