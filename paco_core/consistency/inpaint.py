"""Masked denoising of a grid with the pipeline already loaded (no second copy of the weights).

diffusers' ``FluxInpaintPipeline`` is built from the loaded ``FluxPipeline`` with
``from_pipe``: the same transformer, VAE, text encoders and scheduler objects (and with them
the LoRAs active on the shared transformer). At every step it re-imposes the kept cells'
latents, noised to the next step's level (the last step: the clean latents), so the
generated cells are denoised in context of the kept ones. Decoding does not give back the
kept pixels exactly, so ``inpaint_cells`` pastes only the generated cells into the input
grid: every other pixel stays identical.

Cells are multiples of 16 pixels (the panel size rule), so a cell's mask covers whole
packed latent tokens: no token is half kept.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from paco_core.callbacks import Hooks
from paco_core.consistency.cells import cell_mask, paste_cells
from paco_core.prompts import Layout

_INPAINT_PIPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Loaded pipeline -> its inpaint pipeline (built once; freed with the pipeline)."""


def inpaint_pipeline(pipe):
    """The ``FluxInpaintPipeline`` sharing every component of a loaded FLUX pipeline."""
    cached = _INPAINT_PIPES.get(pipe)
    if cached is None:
        from diffusers import FluxInpaintPipeline

        cached = FluxInpaintPipeline.from_pipe(pipe)
        cached.set_progress_bar_config(disable=True)
        _INPAINT_PIPES[pipe] = cached
    return cached


@dataclass(frozen=True)
class PromptEmbeddings:
    """A grid prompt encoded once (T5 and CLIP), reused for every try."""

    prompt_embeds: Any
    pooled_prompt_embeds: Any


def encode_grid_prompt(pipe, prompt: str, device, max_sequence_length: int) -> PromptEmbeddings:
    import torch

    with torch.no_grad():
        prompt_embeds, pooled, _ = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, max_sequence_length=max_sequence_length
        )
    return PromptEmbeddings(prompt_embeds, pooled)


def denoising_steps(steps: int, strength: float) -> int:
    """How many steps the inpaint pipeline runs for ``steps`` at ``strength`` (as diffusers counts)."""
    return min(int(steps * strength), steps)


def inpaint_cells(
    pipe,
    grid,
    layout: Layout,
    cells: tuple[int, ...],
    embeddings: PromptEmbeddings,
    *,
    steps: int,
    guidance: float,
    seed: int,
    strength: float = 1.0,
    max_sequence_length: int = 512,
    hooks: Hooks,
    done_before: int = 0,
    total: int = 1,
):
    """Regenerate ``cells`` of ``grid`` in context of the others, which stay pixel-identical.

    Args:
        pipe: the loaded FLUX pipeline (inside ``lora_scope``).
        grid: the PIL grid; the kept cells are what the model sees.
        layout: the grid's layout.
        cells: 0-based cells to generate.
        embeddings: the grid prompt, encoded.
        steps, guidance, seed: sampling; ``strength`` 1.0 starts the cells from pure noise.
        hooks, done_before, total: progress after every step, cancel checks.

    Returns:
        A new PIL grid: ``grid`` with ``cells`` replaced.
    """
    from paco_core.generate import make_generator, step_callback

    panel_w, panel_h = grid.width // layout.cols, grid.height // layout.rows
    generated = inpaint_pipeline(pipe)(
        image=grid,
        mask_image=cell_mask(layout, panel_w, panel_h, cells),
        prompt_embeds=embeddings.prompt_embeds,
        pooled_prompt_embeds=embeddings.pooled_prompt_embeds,
        height=grid.height,
        width=grid.width,
        strength=float(strength),
        num_inference_steps=steps,
        guidance_scale=float(guidance),
        generator=make_generator(seed),
        callback_on_step_end=step_callback(hooks, done_before, total),
        max_sequence_length=max_sequence_length,
    ).images[0]
    return paste_cells(grid, generated, layout, cells)
