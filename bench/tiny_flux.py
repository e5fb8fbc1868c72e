"""What the benches on the tiny FLUX.1-dev share: their size arguments and the loaded pipeline."""

from __future__ import annotations

import argparse

from paco_core.families import FLUX


def add_tiny_flux_arguments(parser: argparse.ArgumentParser, steps_help: str) -> None:
    """--steps (default 4), --panel (default 64) and --threads (default 1)."""
    parser.add_argument("--steps", type=int, default=4, help=steps_help)
    parser.add_argument("--panel", type=int, default=64, help="panel side in pixels (multiple of 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


def load_tiny_flux(threads: int) -> tuple[dict, object]:
    """The tiny models (built once) and the tiny FLUX.1-dev pipeline, torch on ``threads`` threads."""
    import torch

    from paco_core.models.pipelines import load_pipeline
    from paco_core.testing import ensure_tiny_models

    torch.set_num_threads(threads)
    models = ensure_tiny_models()
    return models, load_pipeline(models[FLUX.kind])
