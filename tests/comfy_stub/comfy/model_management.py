"""Test double of ``comfy.model_management``: CPU device, interrupt flag, memory calls.

ComfyUI frees memory through two functions, also on the frontend's "unload models" /
``POST /free`` path (the prompt worker calls ``unload_all_models()`` and then
``soft_empty_cache()``); this double counts the calls in ``CALLS``. Tests set the
interrupt with ``interrupt_current_processing()`` (what the Cancel button does);
``stub_reset()`` clears both.
"""

from __future__ import annotations

import threading
from collections import Counter

CALLS: Counter[str] = Counter()
"""How often each memory function was called, by function name (tests only)."""

_interrupt_lock = threading.RLock()
interrupt_processing = False


class InterruptProcessingException(BaseException):
    """Raised when the user cancelled the running prompt (a BaseException, as in ComfyUI)."""


def get_torch_device():
    import torch

    return torch.device("cpu")


def unload_all_models() -> None:
    CALLS["unload_all_models"] += 1


def soft_empty_cache(force=False) -> None:
    CALLS["soft_empty_cache"] += 1


def interrupt_current_processing(value=True) -> None:
    global interrupt_processing
    with _interrupt_lock:
        interrupt_processing = value


def processing_interrupted() -> bool:
    with _interrupt_lock:
        return interrupt_processing


def throw_exception_if_processing_interrupted() -> None:
    global interrupt_processing
    with _interrupt_lock:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()


def stub_reset() -> None:
    """Clear the counters and the interrupt flag."""
    CALLS.clear()
    interrupt_current_processing(False)


__all__ = [
    "InterruptProcessingException",
    "interrupt_processing",
    "get_torch_device",
    "unload_all_models",
    "soft_empty_cache",
    "interrupt_current_processing",
    "processing_interrupted",
    "throw_exception_if_processing_interrupted",
]
