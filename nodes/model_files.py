"""The pipeline loader over the model files ComfyUI already has (its own loaders' dropdowns).

A separate node from the diffusers-folder loader: its inputs are the same folders ComfyUI's
Load Diffusion Model, DualCLIPLoader, Load VAE and Load Checkpoint read, and none of them
means anything for a diffusers folder. Both give the same PACO_PIPELINE.

The dropdowns (``file_choices``, ``file_inputs``) and the name resolution (``chosen_files``:
each name contained in its ComfyUI models folder) are shared with PaCo Train LoRA, which
trains on the same files.
"""

from __future__ import annotations

import os
import re

from comfy_api.latest import io

from paco_core.models.comfy_files import FILE_KINDS

from . import comfy_bridge
from .inputs import dtype_input, offload_input
from .sockets import PacoPipeline

FROM_CHECKPOINT = "(checkpoint's)"
NO_FILE = "(none)"
SHIPPED_CONFIG = "(shipped)"
FILE_FIELDS = {
    "diffusion_model": "diffusion_models",
    "text_encoder_1": "text_encoders",
    "text_encoder_2": "text_encoders",
    "vae": "vae",
    "checkpoint": "checkpoints",
}
"""The file dropdowns (also PaCo Train LoRA's) and the ComfyUI models folder each lists."""
FILE_PLACEHOLDERS = {
    "diffusion_model": FROM_CHECKPOINT,
    "text_encoder_1": NO_FILE,
    "text_encoder_2": NO_FILE,
    "vae": FROM_CHECKPOINT,
    "checkpoint": NO_FILE,
}
"""Each file dropdown's first choice (and default): no file."""
NOT_A_FILE = (FROM_CHECKPOINT, NO_FILE)
TOOLTIPS = {
    "kind": "auto: flux for a FLUX transformer, qwen-image-edit for Qwen-Image. Kontext and "
    "Qwen-Image-Edit-2509 (qwen-image-edit-plus) cannot be told from their weights: choose them.",
    "diffusion_model": "From models/diffusion_models: flux1-dev, flux1-kontext-dev or qwen_image_edit (bf16 or fp8).",
    "text_encoder_1": "From models/text_encoders: clip_l for FLUX, qwen_2.5_vl_7b for Qwen-Image-Edit.",
    "text_encoder_2": "From models/text_encoders: t5xxl (fp16 or fp8) for FLUX; none for Qwen-Image-Edit.",
    "vae": "From models/vae: ae for FLUX, qwen_image_vae for Qwen-Image-Edit.",
    "checkpoint": "An all-in-one FLUX checkpoint from models/checkpoints; the files chosen above replace its parts.",
    "config": "Model configs: the shipped ones fit the released files; models/paco_configs holds others "
    "(files of other sizes).",
}


def file_choices() -> dict[str, list[str]]:
    """Each file dropdown's options (``FILE_FIELDS``), and ``config``'s: ComfyUI's folders, as its loaders list them."""
    choices = {
        name: [FILE_PLACEHOLDERS[name]] + comfy_bridge.model_choices(folder)
        for name, folder in FILE_FIELDS.items()
    }
    choices["config"] = [SHIPPED_CONFIG] + comfy_bridge.config_folder_choices()
    return choices


def file_inputs(choices: dict[str, list[str]], *, optional: bool = False) -> list:
    """The five file dropdowns (``FILE_FIELDS``, in that order), from ``file_choices()``."""
    return [
        io.Combo.Input(
            name, options=choices[name], default=choices[name][0], optional=optional, tooltip=TOOLTIPS[name]
        )
        for name in FILE_FIELDS
    ]


def chosen_files(**chosen: str) -> dict[str, str]:
    """Full paths of the chosen files by field (``FILE_FIELDS``; placeholders left out), each contained
    in its ComfyUI models folder.

    Raises:
        InputError: a name leaves the models folders (the message names the field).
        ModelLoadError: a name is in none of them.
    """
    return {
        field: comfy_bridge.resolve_model_path(FILE_FIELDS[field], name, what=field)
        for field, name in chosen.items()
        if name not in NOT_A_FILE
    }


def fields_named(message: str, chosen: dict[str, str]) -> list[str]:
    """The file fields a files error is about: those whose chosen file it names (before any
    "(given: ...)" aside), else the empty text encoder and VAE fields (a missing file)."""
    head = message.split("(given:")[0]
    named = [
        field
        for field, name in chosen.items()
        if name not in NOT_A_FILE
        and re.search(rf"(?<![\w.-]){re.escape(os.path.basename(name))}(?![\w-])", head)
    ]
    return named or [
        f for f in ("text_encoder_1", "text_encoder_2", "vae") if chosen.get(f, NO_FILE) in NOT_A_FILE
    ]


def chosen_config_folder(config: str) -> str | None:
    """The ``config`` dropdown's folder (None: the shipped one)."""
    return None if config == SHIPPED_CONFIG else comfy_bridge.config_folder_path(config)


class PaCoPipelineFromFiles(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = file_choices()
        return io.Schema(
            node_id="PaCoPipelineFromFiles",
            display_name="PaCo Pipeline Loader (ComfyUI files)",
            category="PaCo/Generation",
            description="Build a FLUX.1-dev, FLUX.1-Kontext-dev or Qwen-Image-Edit pipeline from the files ComfyUI "
            "already has (diffusion model, text encoders, VAE, or an all-in-one checkpoint; bf16, fp16 or fp8), "
            "no diffusers copy needed. Cached while the files are unchanged.",
            inputs=[
                io.Combo.Input(
                    "kind",
                    options=list(FILE_KINDS),
                    default="auto",
                    tooltip=TOOLTIPS["kind"],
                ),
                *file_inputs(choices),
                dtype_input("Compute precision; fp8 files are upcast to it."),
                offload_input("How much of the pipeline stays on the GPU (GPU only)."),
                io.Boolean.Input(
                    "keep_loaded",
                    default=True,
                    tooltip="Keep the weights on the GPU between runs. Off: move them to the CPU after each "
                    "node that uses the pipeline.",
                ),
                io.Combo.Input(
                    "config",
                    options=choices["config"],
                    default=SHIPPED_CONFIG,
                    optional=True,
                    tooltip=TOOLTIPS["config"],
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
    def execute(
        cls,
        kind,
        diffusion_model,
        text_encoder_1,
        text_encoder_2,
        vae,
        checkpoint,
        dtype,
        offload,
        keep_loaded,
        config=SHIPPED_CONFIG,
    ) -> io.NodeOutput:
        from dataclasses import replace

        from paco_core.models.pipelines import LOAD_STEPS, open_pipeline

        files = chosen_files(
            diffusion_model=diffusion_model,
            text_encoder_1=text_encoder_1,
            text_encoder_2=text_encoder_2,
            vae=vae,
            checkpoint=checkpoint,
        )
        device = str(comfy_bridge.comfy_device())
        if device != "cpu":
            comfy_bridge.free_comfy_memory()
        named = ", ".join(name for name in (checkpoint, diffusion_model) if name not in NOT_A_FILE)
        with comfy_bridge.loading_progress(cls.hidden.unique_id, f"pipeline {named}", LOAD_STEPS) as hooks:
            loaded = open_pipeline(
                None,
                transformer_file=files.get("diffusion_model"),
                text_encoder_files=[
                    files[name] for name in ("text_encoder_1", "text_encoder_2") if name in files
                ],
                vae_file=files.get("vae"),
                checkpoint_file=files.get("checkpoint"),
                kind=kind,
                config_folder=chosen_config_folder(config),
                comfyui_dir=comfy_bridge.comfyui_package_dir(),
                dtype=dtype,
                device=device,
                offload=offload,
                hooks=hooks,
            )
        return io.NodeOutput(replace(loaded, keep_loaded=keep_loaded))


NODES = [PaCoPipelineFromFiles]
