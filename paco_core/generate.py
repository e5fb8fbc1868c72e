"""Consistent image sets (one grid image split into panels) and edit chains.

A set: theme + shared description + panel prompts + layout -> one grid prompt
(``paco_core.prompts.build_grid_prompt``) -> one FLUX image of ``rows x cols`` panels ->
``paco_core.images.split_grid`` -> panels. An edit chain: a reference image and a list of
instructions; each step edits the previous result (or the reference).

Sizes: FLUX and Qwen-Image work on a 16-pixel grid (8x VAE x 2x2 latent packing).
- A set's panel size is chosen by the user, so a size off that grid is refused with the
  nearest valid sizes (snapping would silently change what was asked for).
- An edit's input image can have any size: the model works at that size snapped to the
  16-pixel grid (or at ``max_area`` when given), and the output is resized back to the
  input's exact size, so a judge compares like with like.

Example:
    >>> request = SetRequest(theme="a red fox", panels=["running", "sleeping"], layout="1x2",
    ...                      panel_width=256, panel_height=256, steps=10)  # doctest: +SKIP
    >>> [result] = generate_sets(loaded, request)  # doctest: +SKIP
    >>> result.panels[0].size
    (256, 256)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paco_core import __version__
from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.devices import dtype_name
from paco_core.errors import InputError
from paco_core.families import EDIT, SETS, all_families, family, kinds, load_reference, titles
from paco_core.models.edit_sizes import SIZE_MULTIPLE, qwen_condition_area, working_size
from paco_core.models.pipelines import LoadedPipeline, execution_device

logger = logging.getLogger(__name__)


def default_guidance(kind: str) -> float:
    """The family's guidance when none is given (Kontext: distilled guidance; Qwen-Image-Edit: true
    CFG scale; PaCo-RL's settings)."""
    return family(kind).default_guidance


MAX_PANEL_SIDE = 2048
"""Largest panel width/height in pixels (the nodes' limit too): larger grids exhaust memory."""
MAX_STEPS = 200
"""Most denoising steps per image (the nodes' limit too)."""
MAX_AREA = 4096 * 4096
"""Largest working / condition area of an edit in pixels (the nodes' limit too)."""

QWEN_NEGATIVE_PROMPT = " "
"""Qwen-Image-Edit's true CFG needs a negative prompt; a blank one is the usual choice."""

# --------------------------------------------------------------------------- requests / results


@dataclass(frozen=True)
class SetRequest:
    """What one consistent set should show and how to sample it.

    Args:
        theme: what the whole set shows (the judge's theme).
        panels: one prompt per panel, row-major.
        layout: "RxC", e.g. "2x2".
        description: what every panel shares (style, setting, identity); may be "".
        panel_width: width of one panel in pixels (multiple of 16).
        panel_height: height of one panel in pixels (multiple of 16).
        steps: denoising steps.
        guidance: FLUX guidance scale.
        seed: seed of the first set; set k uses ``seed + k``.
        max_sequence_length: T5 prompt tokens (512 for FLUX.1-dev).
    """

    theme: str
    panels: tuple[str, ...]
    layout: str = "2x2"
    description: str = ""
    panel_width: int = 512
    panel_height: int = 512
    steps: int = 28
    guidance: float = 3.5
    seed: int = 0
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "panels", tuple(self.panels))
        _check_steps(self.steps)
        _check_positive_int("max_sequence_length", self.max_sequence_length)
        _check_seed(self.seed)
        _check_guidance(self.guidance)
        for name in ("panel_width", "panel_height"):
            _check_side(name, getattr(self, name))


@dataclass
class GeneratedSet:
    """One generated set: the grid, its panels (row-major) and how it was made."""

    grid: Any
    panels: list[Any]
    prompt: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EditOptions:
    """How to run an edit.

    Args:
        steps: denoising steps.
        guidance: Kontext guidance / Qwen-Image-Edit true-CFG scale; None = the model's
            PaCo-RL default (2.5 Kontext, 4.0 Qwen).
        seed: seed of the first edit; edit k of a chain uses ``seed + k``.
        max_area: pixel area the model works at (aspect kept, sides snapped to 16);
            None = the input's own size. 1024*1024 is what the models were trained at.
        auto_resize: Kontext only: work at the nearest of Kontext's preferred resolutions.
        condition_area: Qwen-Image-Edit only: pixel area of the condition image; None =
            the working size (diffusers alone would always use ~1024*1024).
        keep_input_size: resize the result back to the input's size (default) instead of
            returning the working size.
    """

    steps: int = 28
    guidance: float | None = None
    seed: int = 0
    max_area: int | None = None
    auto_resize: bool = False
    condition_area: int | None = None
    keep_input_size: bool = True
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        _check_steps(self.steps)
        _check_seed(self.seed)
        if self.guidance is not None:
            _check_guidance(self.guidance)
        for name in ("max_area", "condition_area"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < SIZE_MULTIPLE**2):
                raise InputError(
                    f"`{name}` should be a pixel count of at least {SIZE_MULTIPLE**2} or None, got {value!r}."
                )
            if value is not None and value > MAX_AREA:
                raise InputError(f"`{name}` should be at most {MAX_AREA} pixels (4096x4096), got {value}.")


@dataclass
class EditedImage:
    """The result of one edit."""

    image: Any
    instruction: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class EditChainResult:
    """An edit chain: the reference and one result per instruction, in order."""

    reference: Any
    steps: list[EditedImage]
    from_reference: bool

    @property
    def images(self) -> list[Any]:
        return [step.image for step in self.steps]

    @property
    def instructions(self) -> list[str]:
        return [step.instruction for step in self.steps]


# --------------------------------------------------------------------------- checks


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"`{name}` should be a whole number >= 1, got {value!r}.")


def _check_steps(value: Any) -> None:
    _check_positive_int("steps", value)
    if value > MAX_STEPS:
        raise InputError(f"`steps` should be at most {MAX_STEPS}, got {value}.")


def check_num_sets(value: Any) -> None:
    """``num_sets`` of ``generate_sets``: a whole number >= 1."""
    _check_positive_int("num_sets", value)


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError(f"`seed` should be a whole number from 0 to 2**63-1, got {seed!r}.")


def _check_guidance(value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"`guidance` should be a number >= 0, got {value!r}.")


def _check_side(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < SIZE_MULTIPLE:
        raise InputError(f"`{name}` should be a whole number of pixels >= {SIZE_MULTIPLE}, got {value!r}.")
    if value > MAX_PANEL_SIDE:
        raise InputError(
            f"`{name}` should be at most {MAX_PANEL_SIDE} pixels, got {value}; a larger panel does not fit in "
            "memory as one grid."
        )
    if value % SIZE_MULTIPLE:
        lower = value // SIZE_MULTIPLE * SIZE_MULTIPLE
        raise InputError(
            f"`{name}` should be a multiple of {SIZE_MULTIPLE} (the model's VAE and 2x2 latent packing need it), "
            f"got {value}; use {lower} or {lower + SIZE_MULTIPLE}."
        )


def check_model_task(loaded: LoadedPipeline, allowed: Sequence[str], task: str) -> None:
    """Refuse a pipeline of the wrong kind for a task, saying which kinds fit."""
    if loaded.kind in allowed:
        return
    sets = titles(item for item in all_families() if item.task == SETS)
    edits = titles(item for item in all_families() if item.task == EDIT)
    if task == "generate a set":
        hint = f"Load a {sets} (text-to-image) model for sets; {edits} are edit models."
    else:
        hint = f"Load {edits} for edits; {sets} only makes images from text."
    raise InputError(f"cannot {task} with a {loaded.kind} pipeline ({loaded.source}). {hint}")


# --------------------------------------------------------------------------- shared helpers


def make_generator(seed: int):
    """A CPU generator: the same seed gives the same noise on every device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def step_callback(hooks: Hooks, done_before: int, total: int):
    """A ``callback_on_step_end`` that reports each step and lets the host cancel.

    The cancel check runs after every step, so a cancel stops the work within one step:
    whatever the check raises propagates out of the pipeline call.
    """

    def on_step_end(pipe, step_index: int, timestep, callback_kwargs: dict) -> dict:
        hooks.step(done_before + step_index + 1, total)
        return callback_kwargs

    return on_step_end


def base_settings(loaded: LoadedPipeline) -> dict[str, Any]:
    return {
        "model": loaded.source,
        "model_kind": loaded.kind,
        "transformer_file": loaded.transformer_file,
        "loras": [{"path": lora.path, "strength": lora.strength} for lora in loaded.loras],
        "dtype": dtype_name(loaded.dtype),
        "device": loaded.device,
        "paco_version": __version__,
    }


# --------------------------------------------------------------------------- sets


def generate_sets(
    loaded: LoadedPipeline, request: SetRequest, *, num_sets: int = 1, hooks: Hooks = NO_HOOKS
) -> list[GeneratedSet]:
    """Generate ``num_sets`` consistent sets (seeds ``request.seed + k``) for best-of-N.

    Args:
        loaded: a FLUX.1-dev pipeline view (with its LoRAs).
        request: what to generate.
        num_sets: how many sets.
        hooks: progress after every denoising step (over all sets) and cancel checks.

    Returns:
        One GeneratedSet per seed, in seed order.
    """
    from paco_core.images import split_grid
    from paco_core.models.lora import lora_scope
    from paco_core.prompts import build_grid_prompt, parse_layout

    # 1. check
    check_model_task(loaded, kinds(SETS), "generate a set")
    check_num_sets(num_sets)
    layout = parse_layout(request.layout)
    prompt = build_grid_prompt(request.theme, request.description, request.panels, layout)
    height, width = layout.rows * request.panel_height, layout.cols * request.panel_width
    total = request.steps * num_sets
    settings = {
        **base_settings(loaded),
        **{k: v for k, v in asdict(request).items() if k != "seed"},
        "panels": list(request.panels),
        "prompt": prompt,
        "width": width,
        "height": height,
    }
    results: list[GeneratedSet] = []
    with lora_scope(loaded) as pipe:
        # 2. encode the prompt once for every set (no autograd graph, as inside the pipeline)
        encode = load_reference(family(loaded.kind).encode_set_prompt)
        prompt_arguments = encode(
            pipe,
            prompt,
            device=execution_device(loaded),
            max_sequence_length=request.max_sequence_length,
            guidance=float(request.guidance),
        )
        # 3. denoise and decode one grid per seed
        for index in range(num_sets):
            seed = request.seed + index
            grid = pipe(
                **prompt_arguments,
                height=height,
                width=width,
                num_inference_steps=request.steps,
                guidance_scale=float(request.guidance),
                generator=make_generator(seed),
                callback_on_step_end=step_callback(hooks, index * request.steps, total),
                max_sequence_length=request.max_sequence_length,
            ).images[0]
            # 4. split into panels
            panels = split_grid(grid, layout)
            results.append(
                GeneratedSet(
                    grid=grid, panels=panels, prompt=prompt, seed=seed, settings={**settings, "seed": seed}
                )
            )
    return results


# --------------------------------------------------------------------------- edits


def edit_image(
    loaded: LoadedPipeline,
    image,
    instruction: str,
    options: EditOptions = EditOptions(),
    *,
    hooks: Hooks = NO_HOOKS,
) -> EditedImage:
    """Edit one image with Kontext or Qwen-Image-Edit.

    Args:
        loaded: an edit pipeline view (flux-kontext, qwen-image-edit, qwen-image-edit-plus).
        image: PIL image.
        instruction: what to change.
        options: steps, guidance, seed and the size options.
        hooks: progress after every step, cancel checks.

    Returns:
        EditedImage (by default the same size as ``image``).
    """
    return edit_images(loaded, [image], instruction, options, hooks=hooks)[0]


def edit_images(
    loaded: LoadedPipeline,
    images: Sequence,
    instruction: str,
    options: EditOptions = EditOptions(),
    *,
    hooks: Hooks = NO_HOOKS,
) -> list[EditedImage]:
    """Edit several images with the same instruction; image k uses seed ``options.seed + k``.

    Returns:
        One EditedImage per input image, in order.
    """
    from paco_core.models.lora import lora_scope

    check_model_task(loaded, kinds(EDIT), "edit an image")
    [instruction] = check_instructions([instruction])
    sources = [as_rgb(image) for image in images]
    total = options.steps * len(sources)
    with lora_scope(loaded) as pipe:
        return [
            _edit_step(pipe, loaded, source, instruction, options, options.seed + index, hooks, index, total)
            for index, source in enumerate(sources)
        ]


def edit_chain(
    loaded: LoadedPipeline,
    reference,
    instructions: Sequence[str],
    options: EditOptions = EditOptions(),
    *,
    from_reference: bool = False,
    hooks: Hooks = NO_HOOKS,
) -> EditChainResult:
    """Apply instructions one after another.

    Args:
        loaded: an edit pipeline view.
        reference: the PIL image the chain starts from.
        instructions: one instruction per step.
        options: see EditOptions; step k uses seed ``options.seed + k``.
        from_reference: every step edits the reference instead of the previous result.
        hooks: progress over all steps of all edits, cancel checks.

    Returns:
        EditChainResult with one EditedImage per instruction.
    """
    from paco_core.models.lora import lora_scope

    check_model_task(loaded, kinds(EDIT), "edit an image")
    instructions = check_instructions(instructions)
    reference = as_rgb(reference)
    total = options.steps * len(instructions)
    steps: list[EditedImage] = []
    with lora_scope(loaded) as pipe:
        for index, instruction in enumerate(instructions):
            source = reference if from_reference or not steps else steps[-1].image
            seed = options.seed + index
            steps.append(_edit_step(pipe, loaded, source, instruction, options, seed, hooks, index, total))
    for step in steps:
        step.settings["from_reference"] = from_reference
    return EditChainResult(reference=reference, steps=steps, from_reference=from_reference)


def _edit_step(
    pipe,
    loaded: LoadedPipeline,
    source,
    instruction: str,
    options: EditOptions,
    seed: int,
    hooks,
    index,
    total,
) -> EditedImage:
    """One edit: working size, model call (progress from ``index * steps``), back to the input size."""
    guidance = options.guidance if options.guidance is not None else default_guidance(loaded.kind)
    # 1. pick the working size and bring the input onto it
    work_w, work_h = working_size(*source.size, options.max_area)
    work_input = source if source.size == (work_w, work_h) else source.resize((work_w, work_h), _lanczos())
    # 2. run the model
    callback = step_callback(hooks, index * options.steps, total)
    edited = run_edit(pipe, loaded.kind, work_input, instruction, options, guidance, seed, callback)
    # 3. back to the input's size
    if options.keep_input_size and edited.size != source.size:
        edited = edited.resize(source.size, _lanczos())
    settings = {
        **base_settings(loaded),
        **asdict(options),
        "guidance": guidance,
        "seed": seed,
        "instruction": instruction,
        "working_size": [work_w, work_h],
        "input_size": list(source.size),
    }
    return EditedImage(image=edited, instruction=instruction, seed=seed, settings=settings)


def check_instructions(instructions: Sequence[str]) -> list[str]:
    """The instructions with their whitespace tidied; raises for none or an empty one."""
    if isinstance(instructions, str):
        instructions = [instructions]
    cleaned = [" ".join(str(text).split()) for text in instructions]
    if not cleaned:
        raise InputError("an edit needs at least one instruction, got none.")
    empty = [i for i, text in enumerate(cleaned, start=1) if not text]
    if empty:
        raise InputError(f"instruction(s) {empty} are empty: say what to change in each step.")
    return cleaned


def as_rgb(image):
    """The PIL image in RGB; raises for anything that is not a PIL image."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise InputError(f"the image to edit should be a PIL image, got {type(image).__name__}.")
    return image if image.mode == "RGB" else image.convert("RGB")


def _lanczos():
    from PIL import Image

    return Image.Resampling.LANCZOS


def flux_set_prompt(pipe, prompt: str, *, device, max_sequence_length: int, guidance: float) -> dict:
    """FLUX.1-dev's encoded prompt arguments (its ``Family.encode_set_prompt``)."""
    import torch

    with torch.no_grad():
        prompt_embeds, pooled_prompt_embeds, _ = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, max_sequence_length=max_sequence_length
        )
    return {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled_prompt_embeds}


def run_edit(
    pipe, kind: str, image, instruction: str, options: EditOptions, guidance: float, seed: int, callback
):
    """One edit model call at the size of ``image`` (a list of images for a family taking several
    references; the output has the first one's size), through the family's ``edit_call``. Returns the
    PIL result."""
    edit_call = load_reference(family(kind).edit_call or "")
    return edit_call(pipe, kind, image, instruction, options, guidance, seed, callback)


def _edit_arguments(image, instruction: str, options: EditOptions, seed: int, callback) -> dict[str, Any]:
    """The pipeline arguments every edit family takes."""
    width, height = (image[0] if isinstance(image, list) else image).size
    return {
        "image": image,
        "prompt": instruction,
        "height": height,
        "width": width,
        "num_inference_steps": options.steps,
        "generator": make_generator(seed),
        "callback_on_step_end": callback,
        "max_sequence_length": options.max_sequence_length,
    }


def kontext_edit_call(pipe, kind: str, image, instruction, options: EditOptions, guidance, seed, callback):
    """FLUX.1-Kontext-dev's edit call: distilled guidance, at the working size already chosen."""
    common = _edit_arguments(image, instruction, options, seed, callback)
    return pipe(
        **common,
        guidance_scale=float(guidance),
        max_area=common["width"] * common["height"],  # the working size is already chosen: no further rescale
        _auto_resize=options.auto_resize,
    ).images[0]


def qwen_edit_call(pipe, kind: str, image, instruction, options: EditOptions, guidance, seed, callback):
    """Qwen-Image-Edit's (and Edit-Plus's) edit call: true CFG, the condition sized to ``condition_area``."""
    common = _edit_arguments(image, instruction, options, seed, callback)
    condition_area = options.condition_area or common["width"] * common["height"]
    with qwen_condition_area(kind, condition_area):
        return pipe(
            **common,
            true_cfg_scale=float(guidance),
            negative_prompt=QWEN_NEGATIVE_PROMPT if guidance > 1 else None,
        ).images[0]
