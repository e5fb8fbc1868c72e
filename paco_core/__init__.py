"""PaCo-RL core: consistent image sets, the PaCo-Reward judge and PaCo-GRPO training.

This package never imports ComfyUI. Heavy libraries (torch, diffusers, transformers,
peft) are imported inside the modules that need them, never here.
"""

__version__ = "0.1.0"
