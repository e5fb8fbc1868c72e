"""Tiny offline models: random-weight FLUX.1, Kontext, Qwen-Image-Edit, a Qwen2.5-VL judge
and CLIP, saved as standard diffusers / transformers folders for tests, demo and benchmarks.

Importing this package is cheap: torch, diffusers and transformers load only when a model
is built. ``paco_core.testing.real_size`` builds random-weight models with the real
FLUX.1-dev and Qwen2.5-VL-7B dimensions for the benchmarks in ``bench/``.
"""

from paco_core.testing.factory import (
    TINY_MODEL_NAMES,
    build_tiny_model,
    build_tiny_models,
    default_cache_dir,
    ensure_tiny_models,
)

__all__ = [
    "TINY_MODEL_NAMES",
    "build_tiny_model",
    "build_tiny_models",
    "default_cache_dir",
    "ensure_tiny_models",
]
