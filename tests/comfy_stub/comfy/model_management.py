"""Test double of ``comfy.model_management``: CPU device, interrupt flag, call counters.

Tests set the interrupt with ``interrupt_current_processing()`` (what ComfyUI's Cancel
button does) and read ``CALLS`` to check that memory was freed; ``stub_reset()`` clears
both.
"""

from __future__ import annotations

import threading
from collections import Counter


class InterruptProcessingException(BaseException):
    """Raised when the user cancelled the running prompt (a BaseException, as in ComfyUI)."""


CALLS: Counter[str] = Counter()
"""How often each memory function was called, by function name."""

_interrupt_lock = threading.RLock()
interrupt_processing = False


def get_torch_device():
    import torch

    return torch.device("cpu")


def intermediate_device():
    import torch

    return torch.device("cpu")


def unload_all_models() -> None:
    CALLS["unload_all_models"] += 1


def soft_empty_cache(force: bool = False) -> None:
    CALLS["soft_empty_cache"] += 1


def free_memory(memory_required, device, keep_loaded=()) -> list:
    CALLS["free_memory"] += 1
    return []


def get_free_memory(dev=None, torch_free_too=False):
    free = 64 * 1024**3
    return (free, free) if torch_free_too else free


def interrupt_current_processing(value: bool = True) -> None:
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
    """Clear the counters and the interrupt flag (tests only)."""
    CALLS.clear()
    interrupt_current_processing(False)
