"""Devices and dtypes by name: the one place that turns "auto", "bf16", "cuda:1" ... into
what torch needs. torch is imported inside the functions, so importing this module is free.

The dtype spelling is the same in configs, the CLI and the nodes: ``auto``, ``bf16``,
``fp16``, ``fp32``.

Example:
    >>> resolve_dtype("auto", resolve_device("cpu"))  # doctest: +SKIP
    torch.float32
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from paco_core.errors import InputError

Dtype = Literal["auto", "bf16", "fp16", "fp32"]
"""The dtype spellings every door offers: ``model.dtype``, the CLI's --dtype, the nodes' dtype dropdowns."""
DTYPE_CHOICES: tuple[str, ...] = get_args(Dtype)
DTYPE_NAMES = dict(zip(DTYPE_CHOICES, (None, "bfloat16", "float16", "float32"), strict=True))
"""dtype spelling -> torch dtype name; auto = bf16 on a GPU, fp32 on the CPU."""
Offload = Literal["none", "model", "sequential"]
"""How much of a pipeline leaves the GPU between uses: none, model (whole models), sequential (layer by
layer: least memory, slowest). The CLI's --offload and the loader nodes' offload dropdown."""
OFFLOAD_CHOICES: tuple[str, ...] = get_args(Offload)


def resolve_dtype(dtype: Any, device: str):
    """A torch dtype from a name ("auto"/None, "bf16", "fp16", "fp32") or a torch dtype.

    "auto" gives bfloat16 on a GPU and float32 on the CPU (CPU bf16 matmuls are slow)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    key = "auto" if dtype is None else str(dtype).lower()
    if key not in DTYPE_NAMES:
        raise InputError(f"dtype should be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}.")
    name = DTYPE_NAMES[key]
    if name is None:
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, name)


def resolve_device(device: Any) -> str:
    """The device name: for None/"auto" cuda when a GPU is visible, else mps, else cpu."""
    import torch

    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    text = str(device)
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps", "xpu") or (index and not index.isdigit()):
        raise InputError(f"device should be auto, cpu, cuda, cuda:N, mps or xpu, got {device!r}.")
    check_device_available(kind, int(index) if index else None, text)
    return text


def check_device_available(kind: str, index: int | None, text: str) -> None:
    """Raise InputError when the asked device is not there (before any weights load)."""
    import torch

    if kind == "cpu":
        return
    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        count = 1 if backend is not None and backend.is_available() else 0
    else:
        module = getattr(torch, kind, None)
        count = module.device_count() if module is not None and module.is_available() else 0
    if count == 0:
        raise InputError(
            f"device {text!r} was asked for, but this machine has no {kind} device torch can use "
            f"(torch {torch.__version__}). Use --device cpu (or auto), or install a torch build for it."
        )
    if index is not None and index >= count:
        raise InputError(
            f"device {text!r} was asked for, but {kind} devices are numbered 0 to {count - 1} here."
        )


def dtype_name(dtype: Any) -> str:
    """The spelling of a torch dtype ("bf16", "fp16", "fp32"; others as torch names them)."""
    text = str(dtype).replace("torch.", "")
    return next((short for short, name in DTYPE_NAMES.items() if name == text), text)
