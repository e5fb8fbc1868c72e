"""A panel made as an edit of reference images, with the edit pipeline already loaded.

FLUX.1-Kontext-dev and Qwen-Image-Edit take one input image; Qwen-Image-Edit-Plus takes
several (the references in order). The model works at the first reference's size, which
is the panel size (references are fitted to a panel first), so the output is a panel.
"""

from __future__ import annotations

from collections.abc import Sequence

from paco_core.callbacks import Hooks
from paco_core.errors import InputError
from paco_core.families import all_families, family, titles


def check_reference_count(kind: str, count: int, what: str = "references") -> None:
    """Refuse more references than the edit model takes (one, except families taking several)."""
    if count > 1 and not family(kind).takes_several_references:
        several = titles(item for item in all_families() if item.takes_several_references)
        sets = titles(item for item in all_families() if not item.is_edit)
        raise InputError(
            f"`{what}`: a {kind} edit takes one input image, got {count}; give one, or load "
            f"{several} (several references) or {sets} (references as grid cells)."
        )


def edit_from_references(
    pipe,
    kind: str,
    references: Sequence,
    instruction: str,
    *,
    steps: int,
    guidance: float | None,
    seed: int,
    hooks: Hooks,
    done_before: int = 0,
    total: int = 1,
    max_sequence_length: int = 512,
):
    """One edit of ``references`` (PIL, the first one's size is the output's) by ``instruction``.

    Args:
        pipe: the loaded edit pipeline (inside ``lora_scope``).
        kind: its kind (flux-kontext, qwen-image-edit, qwen-image-edit-plus).
        references: the input images; Edit-Plus takes them all, the others only the first.
        instruction: what the new panel shows.
        steps, guidance (None: the model's PaCo-RL default), seed: sampling.
        hooks, done_before, total: progress after every step, cancel checks.

    Returns:
        The PIL panel, the size of ``references[0]``.
    """
    from paco_core.generate import EditOptions, default_guidance, run_edit, step_callback

    options = EditOptions(steps=steps, guidance=guidance, seed=seed, max_sequence_length=max_sequence_length)
    used = (
        list(references) if family(kind).takes_several_references and len(references) > 1 else references[0]
    )
    callback = step_callback(hooks, done_before, total)
    scale = guidance if guidance is not None else default_guidance(kind)
    edited = run_edit(pipe, kind, used, instruction, options, scale, seed, callback)
    size = references[0].size
    return edited if edited.size == size else edited.resize(size)
