"""Nodes for consistent generation: pipeline loader, LoRA, image sets, edits, edit chains.

Each node validates, calls ``paco_core`` and converts; heavy modules (torch, diffusers,
peft) are imported inside ``execute``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from comfy_api.latest import io

from paco_core.callbacks import Hooks
from paco_core.prompts import DEFAULT_JUDGE_THEME_SOURCE, prompt_lines

from . import comfy_bridge
from .grid import judge_theme_source_input, layout_input
from .inputs import dtype_input, guidance_inputs, offload_input, panel_side_input, seed_input, steps_input
from .sockets import PacoPipeline

# Short choices, so that a freshly added node shows its widget names; the tooltips explain them.
TYPED_PATH_CHOICE = "(model_path)"
FOLDER_TRANSFORMER_CHOICE = "(folder's own)"
NO_LORA = "(none)"
"""PaCo LoRA's first choice: no LoRA, so a workflow runs on the base model too."""


# --------------------------------------------------------------------------- shared helpers


@contextmanager
def pipeline_run(loaded, node_id: str | None, total_steps: int) -> Iterator[Hooks]:
    """One node run on a pipeline: ComfyUI's own models leave the GPU, the pipeline takes
    it; afterwards (keep-loaded off) the weights go back to the CPU and the memory to
    ComfyUI, also when the run fails or is cancelled.

    Yields:
        Progress/cancel hooks over ``total_steps`` steps, for the ``paco_core`` call.
    """
    from paco_core.models.pipelines import move_to_device, park_on_cpu

    hooks = comfy_bridge.hooks_for(node_id, total_steps)
    if loaded.device != "cpu":
        comfy_bridge.free_comfy_memory()
    move_to_device(loaded)
    try:
        yield hooks
    finally:
        if not loaded.keep_loaded:
            park_on_cpu(loaded)
            comfy_bridge.soft_empty_cache()


def images_from_batch(image) -> list:
    from paco_core.images import tensor_to_pil

    return tensor_to_pil(image)


def one_image_from_batch(image, node: str, role: str):
    """The single image of a batch of one (the start of an edit chain); more is a one-line error."""
    from paco_core.errors import InputError

    images = images_from_batch(image)
    if len(images) != 1:
        raise InputError(
            f"{node} takes one {role} image, got a batch of {len(images)}; pick one first "
            "(e.g. with ImageFromBatch)."
        )
    return images[0]


def edit_node_schema(
    node_id: str,
    display_name: str,
    description: str,
    image_tooltip: str,
    inputs: list,
    output,
    extra_outputs: tuple = (),
) -> io.Schema:
    """The schema of an edit node: pipeline, image, the node's own ``inputs``, the edit options."""
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category="PaCo/Generation",
        description=description,
        inputs=[
            PacoPipeline.Input("pipeline", tooltip="A Kontext or Qwen-Image-Edit pipeline."),
            io.Image.Input("image", tooltip=image_tooltip),
            *inputs,
            *edit_option_inputs(),
        ],
        outputs=[output, *extra_outputs],
        hidden=[io.Hidden.unique_id],
    )


def edit_option_inputs() -> list:
    """Inputs shared by PaCo Edit and PaCo Edit Chain."""
    return [
        steps_input("Denoising steps per edit."),
        *guidance_inputs(
            2.5,
            "model default: each model's PaCo-RL guidance (Kontext 2.5, Qwen-Image-Edit true CFG "
            "4.0), whatever the guidance widget says. use guidance: the guidance value below.",
            "Used when model_guidance is off: Kontext guidance / Qwen-Image-Edit true-CFG scale. "
            "For Qwen, 1.0 turns true CFG off (twice as fast).",
        ),
        seed_input("Seed of the first edit."),
        io.Int.Input(
            "max_area",
            default=0,
            min=0,
            max=4096 * 4096,
            step=1024,
            tooltip="Pixel area the model works at (aspect kept, sides snapped to 16). 0 = the input's own "
            "size. 1048576 (1024x1024) is what Kontext and Qwen-Image-Edit were trained at. The output "
            "keeps the input's size either way.",
        ),
        io.Int.Input(
            "condition_area",
            default=0,
            min=0,
            max=4096 * 4096,
            step=1024,
            tooltip="Qwen-Image-Edit only: pixel area of the condition image. 0 = the working size.",
        ),
        io.Boolean.Input(
            "auto_resize",
            default=False,
            tooltip="Kontext only: work at the nearest of Kontext's preferred resolutions (~1 MP).",
        ),
    ]


def edit_options(
    steps: int,
    model_guidance: bool,
    guidance: float,
    seed: int,
    max_area: int,
    condition_area: int,
    auto_resize: bool,
):
    """The edit options from the values of ``edit_option_inputs`` (the nodes pass them on as keywords)."""
    from paco_core.generate import EditOptions

    return EditOptions(
        steps=steps,
        guidance=None if model_guidance else guidance,
        seed=seed,
        max_area=max_area or None,
        condition_area=condition_area or None,
        auto_resize=auto_resize,
    )


# --------------------------------------------------------------------------- nodes


class PaCoPipelineLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        models = comfy_bridge.model_choices("diffusers") + [TYPED_PATH_CHOICE]
        transformers = [FOLDER_TRANSFORMER_CHOICE] + comfy_bridge.model_choices("diffusion_models")
        return io.Schema(
            node_id="PaCoPipelineLoader",
            display_name="PaCo Pipeline Loader",
            category="PaCo/Generation",
            description="Load a FLUX.1-dev, FLUX.1-Kontext-dev or Qwen-Image-Edit diffusers pipeline "
            "(kind read from model_index.json). Cached: re-running a workflow does not reload it.",
            inputs=[
                io.Combo.Input(
                    "model",
                    options=models,
                    default=models[0],
                    tooltip="A diffusers folder from models/diffusers (one holding model_index.json); "
                    f"{TYPED_PATH_CHOICE}: the model_path typed below.",
                ),
                io.String.Input(
                    "model_path",
                    default="",
                    optional=True,
                    tooltip="A local diffusers folder or a hub id (e.g. black-forest-labs/FLUX.1-dev, downloaded "
                    "once into the Hugging Face cache); used when the dropdown says to type one.",
                ),
                dtype_input(
                    "Weight precision. auto: bf16 on a GPU, fp32 on the CPU. bf16 halves memory on GPUs; "
                    "fp32 is the CPU's."
                ),
                offload_input(
                    "How much of the pipeline stays on the GPU (GPU only). none: all of it (fastest). "
                    "model: one component at a time. sequential: layer by layer (least VRAM, slowest)."
                ),
                io.Combo.Input(
                    "transformer_file",
                    options=transformers,
                    default=FOLDER_TRANSFORMER_CHOICE,
                    tooltip="FLUX only: a single-file transformer from models/diffusion_models (.safetensors) "
                    f"used instead of the folder's transformer; {FOLDER_TRANSFORMER_CHOICE}: the folder's.",
                ),
                io.Boolean.Input(
                    "keep_loaded",
                    default=True,
                    tooltip="Keep the weights on the GPU between runs (fast re-runs). Off: move them to the "
                    "CPU after each node that uses the pipeline.",
                ),
            ],
            outputs=[
                PacoPipeline.Output(
                    "pipeline", tooltip="The loaded pipeline, for PaCo LoRA / Generate / Edit."
                )
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, dtype, offload, transformer_file, keep_loaded, model_path="") -> io.NodeOutput:
        from dataclasses import replace

        from paco_core.errors import InputError
        from paco_core.models.pipelines import LOAD_STEPS, load_pipeline

        if model_path.strip():
            source = comfy_bridge.resolve_model_path("diffusers", model_path, what="model", hub=True)
        elif model == TYPED_PATH_CHOICE:
            raise InputError("the model dropdown says to type a path, but model_path is empty: type one.")
        else:
            source = comfy_bridge.resolve_model_path("diffusers", model, what="model")
        single_file = None
        if transformer_file != FOLDER_TRANSFORMER_CHOICE:
            single_file = comfy_bridge.resolve_model_path(
                "diffusion_models", transformer_file, what="transformer file"
            )
        device = str(comfy_bridge.comfy_device())
        if device != "cpu":
            comfy_bridge.free_comfy_memory()
        with comfy_bridge.loading_progress(
            cls.hidden.unique_id, f"pipeline {comfy_bridge.model_label(source)}", LOAD_STEPS
        ) as hooks:
            loaded = load_pipeline(
                source,
                dtype=dtype,
                device=device,
                offload=offload,
                transformer_file=single_file,
                hooks=hooks,
            )
        return io.NodeOutput(replace(loaded, keep_loaded=keep_loaded))


class PaCoLora(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PaCoLora",
            display_name="PaCo LoRA",
            category="PaCo/Generation",
            description="Add a LoRA (peft, diffusers or kohya .safetensors) to a PaCo pipeline. Stackable; other "
            "branches using the same input pipeline are not affected.",
            inputs=[
                PacoPipeline.Input("pipeline", tooltip="The pipeline to add the LoRA to."),
                io.Combo.Input(
                    "lora_name",
                    options=[NO_LORA, *comfy_bridge.lora_choices()],
                    tooltip="A LoRA from models/loras: a .safetensors file or a downloaded LoRA folder (e.g. "
                    "X-GenGroup/PaCo-FLUX.1-dev-Lora, see docs/model-files.md). "
                    f"{NO_LORA} passes the pipeline on unchanged, to compare with the base model.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-4.0,
                    max=4.0,
                    step=0.05,
                    tooltip="How strongly the LoRA acts (1.0 = as trained; 0 = off).",
                ),
            ],
            outputs=[
                PacoPipeline.Output(
                    "pipeline_out",
                    display_name="pipeline",
                    tooltip="The pipeline with this LoRA stacked on its LoRAs.",
                ),
                io.String.Output(
                    "lora_info", tooltip="Format and how many of the file's keys matched the model."
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, lora_name, **_):
        """The LoRA file's version (path, size, mtime): a file rewritten on disk runs the node
        again instead of reusing the cached output with the old weights. ComfyUI passes only
        the widget values (no linked pipeline) here."""
        from paco_core.errors import PaCoError
        from paco_core.models.lora import adapter_name_for

        if not isinstance(lora_name, str) or lora_name == NO_LORA:
            return None  # linked from another node (ComfyUI passes None here), or no LoRA
        try:
            return adapter_name_for(comfy_bridge.resolve_model_path("loras", lora_name, what="LoRA"))
        except (PaCoError, OSError):
            return None  # execute reports the problem

    @classmethod
    def execute(cls, pipeline, lora_name, strength) -> io.NodeOutput:
        from paco_core.models.lora import LoraSpec, adapter_name_for, apply_loras

        if lora_name == NO_LORA:
            return io.NodeOutput(pipeline, f"{NO_LORA}: the pipeline is passed on without this LoRA")
        path = comfy_bridge.resolve_model_path("loras", lora_name, what="LoRA")
        view = apply_loras(pipeline, [LoraSpec(path, strength)])
        added = next(lora for lora in view.loras if lora.adapter_name == adapter_name_for(path))
        info = (
            f"{lora_name}: {added.format} format, {added.num_matched} of {added.num_keys} keys matched, "
            f"strength {added.strength:g}"
        )
        return io.NodeOutput(view, info)


class PaCoGenerateSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PaCoGenerateSet",
            display_name="PaCo Generate Set",
            category="PaCo/Generation",
            description="Generate a consistent set: one grid image of layout x panel size from a grid prompt, "
            "split into panels. Several sets (seed, seed+1, ...) for best-of-N.",
            inputs=[
                PacoPipeline.Input(
                    "pipeline", tooltip="A FLUX.1-dev pipeline (with a PaCo LoRA for best consistency)."
                ),
                io.String.Input(
                    "theme",
                    multiline=True,
                    default="",
                    tooltip="What the whole set shows, one sentence (e.g. 'a red fox in four seasons.').",
                ),
                io.String.Input(
                    "description",
                    multiline=True,
                    default="",
                    tooltip="What every panel shares: style, setting, identity. May be empty.",
                ),
                io.String.Input(
                    "panels",
                    multiline=True,
                    default="",
                    tooltip="One prompt per line, one line per panel, row-major (2x2: TL, TR, BL, BR).",
                ),
                layout_input("Rows x columns of panels."),
                panel_side_input("panel_width", "Width of one panel (multiple of 16)."),
                panel_side_input("panel_height", "Height of one panel (multiple of 16)."),
                steps_input("Denoising steps."),
                io.Float.Input(
                    "guidance", default=3.5, min=0.0, max=30.0, step=0.1, tooltip="FLUX guidance scale."
                ),
                seed_input("Seed of the first set."),
                io.Int.Input(
                    "num_sets", default=1, min=1, max=64, tooltip="How many sets (seeds seed, seed+1, ...)."
                ),
                judge_theme_source_input(),
            ],
            outputs=[
                io.Image.Output(
                    "panels_out",
                    display_name="panels",
                    tooltip="All panels: set 1's (row-major), then set 2's, ...",
                ),
                io.Image.Output("grids", tooltip="One grid image per set."),
                io.String.Output("prompt", tooltip="The grid prompt the model saw."),
                io.String.Output(
                    "judge_theme",
                    tooltip="The set's theme as the judge sees it (judge_theme_source), for the theme input of "
                    "PaCo Set Consistency / Rank Sets.",
                ),
                io.Int.Output(
                    "first_seed", tooltip="The seed of set 1 (set k has seed + k - 1), for PaCo Rank Sets."
                ),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        pipeline,
        theme,
        description,
        panels,
        layout,
        panel_width,
        panel_height,
        steps,
        guidance,
        seed,
        num_sets,
        judge_theme_source=DEFAULT_JUDGE_THEME_SOURCE,
    ) -> io.NodeOutput:
        from paco_core.generate import SetRequest, generate_sets
        from paco_core.images import pil_to_tensor
        from paco_core.prompts import judge_theme

        request = SetRequest(
            theme=theme,
            panels=tuple(prompt_lines(panels)),
            layout=layout,
            description=description,
            panel_width=panel_width,
            panel_height=panel_height,
            steps=steps,
            guidance=guidance,
            seed=seed,
        )
        with pipeline_run(pipeline, cls.hidden.unique_id, steps * num_sets) as hooks:
            sets = generate_sets(pipeline, request, num_sets=num_sets, hooks=hooks)
        panel_images = [panel for result in sets for panel in result.panels]
        prompt = sets[0].prompt
        return io.NodeOutput(
            pil_to_tensor(panel_images),
            pil_to_tensor([result.grid for result in sets]),
            prompt,
            judge_theme(prompt, source=judge_theme_source, theme=theme),
            seed,
        )


class PaCoEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return edit_node_schema(
            "PaCoEdit",
            "PaCo Edit",
            "Edit image(s) with one instruction (FLUX.1-Kontext-dev or Qwen-Image-Edit). The output keeps "
            "each input's size.",
            image_tooltip="The image(s) to edit; image k of a batch uses seed + k.",
            inputs=[io.String.Input("instruction", multiline=True, default="", tooltip="What to change.")],
            output=io.Image.Output(
                "image_out", display_name="image", tooltip="The edited image(s), same size as the input."
            ),
        )

    @classmethod
    def execute(cls, pipeline, image, instruction, **edit_settings) -> io.NodeOutput:
        from paco_core.generate import edit_images
        from paco_core.images import pil_to_tensor

        options = edit_options(**edit_settings)
        sources = images_from_batch(image)
        with pipeline_run(pipeline, cls.hidden.unique_id, options.steps * len(sources)) as hooks:
            edited = edit_images(pipeline, sources, instruction, options, hooks=hooks)
        return io.NodeOutput(pil_to_tensor([result.image for result in edited]))


class PaCoEditChain(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return edit_node_schema(
            "PaCoEditChain",
            "PaCo Edit Chain",
            "Apply instructions one after another: each step edits the previous result (or, by option, the "
            "reference). Returns the sequence of images.",
            image_tooltip="The reference image (a batch of one).",
            inputs=[
                io.String.Input(
                    "instructions", multiline=True, default="", tooltip="One instruction per line, in order."
                ),
                io.Boolean.Input(
                    "from_reference",
                    default=False,
                    tooltip="Every step edits the reference instead of the previous step's result.",
                ),
                io.Boolean.Input(
                    "include_reference",
                    default=True,
                    tooltip="Put the reference first in the output sequence (ready for PaCo judge nodes).",
                ),
            ],
            output=io.Image.Output(
                "images", tooltip="[reference,] step 1, step 2, ... all at the reference's size."
            ),
            extra_outputs=[
                io.String.Output(
                    "instructions_out",
                    display_name="instructions",
                    tooltip="The instructions applied, one per line in order (for PaCo Edit Score on a batch).",
                ),
                io.String.Output(
                    "first_instruction", tooltip="Step 1's instruction (for PaCo Edit Score on edit 1)."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, pipeline, image, instructions, from_reference, include_reference, **edit_settings
    ) -> io.NodeOutput:
        from paco_core.generate import edit_chain
        from paco_core.images import pil_to_tensor

        reference = one_image_from_batch(image, "PaCo Edit Chain", "reference")
        lines = prompt_lines(instructions)
        options = edit_options(**edit_settings)
        with pipeline_run(pipeline, cls.hidden.unique_id, options.steps * max(len(lines), 1)) as hooks:
            chain = edit_chain(
                pipeline, reference, lines, options, from_reference=from_reference, hooks=hooks
            )
        images = ([chain.reference] if include_reference else []) + chain.images
        return io.NodeOutput(pil_to_tensor(images), "\n".join(lines), lines[0] if lines else "")


NODES = [PaCoPipelineLoader, PaCoLora, PaCoGenerateSet, PaCoEdit, PaCoEditChain]
