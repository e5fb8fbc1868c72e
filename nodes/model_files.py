"""The pipeline loader over the model files ComfyUI already has (its own loaders' dropdowns).

A separate node from the diffusers-folder loader: its inputs are the same folders ComfyUI's
Load Diffusion Model, DualCLIPLoader, Load VAE and Load Checkpoint read, and none of them
means anything for a diffusers folder. Both give the same PACO_PIPELINE.
"""

from __future__ import annotations

from comfy_api.latest import io

from paco_core.models.comfy_files import FILE_KINDS

from . import comfy_bridge
from .generation import DTYPE_CHOICES, OFFLOAD_CHOICES, PacoPipeline

FROM_CHECKPOINT = "(checkpoint's)"
NO_FILE = "(none)"
SHIPPED_CONFIG = "(shipped)"


class PaCoPipelineFromFiles(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        diffusion_models = [FROM_CHECKPOINT] + comfy_bridge.model_choices("diffusion_models")
        text_encoders = [NO_FILE] + comfy_bridge.model_choices("text_encoders")
        vaes = [FROM_CHECKPOINT] + comfy_bridge.model_choices("vae")
        checkpoints = [NO_FILE] + comfy_bridge.model_choices("checkpoints")
        configs = [SHIPPED_CONFIG] + comfy_bridge.config_folder_choices()
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
                    tooltip="auto: flux for a FLUX transformer, qwen-image-edit for Qwen-Image. Kontext and "
                    "Qwen-Image-Edit-2509 (qwen-image-edit-plus) cannot be told from their weights: choose them.",
                ),
                io.Combo.Input(
                    "diffusion_model",
                    options=diffusion_models,
                    default=diffusion_models[0],
                    tooltip="From models/diffusion_models: flux1-dev, flux1-kontext-dev or qwen_image_edit "
                    "(bf16 or fp8).",
                ),
                io.Combo.Input(
                    "text_encoder_1",
                    options=text_encoders,
                    default=text_encoders[0],
                    tooltip="From models/text_encoders: clip_l for FLUX, qwen_2.5_vl_7b for Qwen-Image-Edit.",
                ),
                io.Combo.Input(
                    "text_encoder_2",
                    options=text_encoders,
                    default=text_encoders[0],
                    tooltip="From models/text_encoders: t5xxl (fp16 or fp8) for FLUX; none for Qwen-Image-Edit.",
                ),
                io.Combo.Input(
                    "vae",
                    options=vaes,
                    default=vaes[0],
                    tooltip="From models/vae: ae for FLUX, qwen_image_vae for Qwen-Image-Edit.",
                ),
                io.Combo.Input(
                    "checkpoint",
                    options=checkpoints,
                    default=checkpoints[0],
                    tooltip="An all-in-one FLUX checkpoint from models/checkpoints; the files chosen above replace "
                    "its parts.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(DTYPE_CHOICES),
                    default=next(iter(DTYPE_CHOICES)),
                    tooltip="Compute precision; fp8 files are upcast to it.",
                ),
                io.Combo.Input(
                    "offload",
                    options=list(OFFLOAD_CHOICES),
                    default=next(iter(OFFLOAD_CHOICES)),
                    tooltip="How much of the pipeline stays on the GPU (GPU only).",
                ),
                io.Boolean.Input(
                    "keep_loaded",
                    default=True,
                    tooltip="Keep the weights on the GPU between runs. Off: move them to the CPU after each "
                    "node that uses the pipeline.",
                ),
                io.Combo.Input(
                    "config",
                    options=configs,
                    default=SHIPPED_CONFIG,
                    optional=True,
                    tooltip="Model configs: the shipped ones fit the released files; models/paco_configs holds "
                    "others (files of other sizes).",
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

        def path(folder: str, name: str) -> str | None:
            return (
                None if name in (FROM_CHECKPOINT, NO_FILE) else comfy_bridge.resolve_model_path(folder, name)
            )

        device = str(comfy_bridge.comfy_device())
        if device != "cpu":
            comfy_bridge.free_comfy_memory()
        named = ", ".join(
            name for name in (checkpoint, diffusion_model) if name not in (FROM_CHECKPOINT, NO_FILE)
        )
        with comfy_bridge.loading_progress(cls.hidden.unique_id, f"pipeline {named}", LOAD_STEPS) as hooks:
            loaded = open_pipeline(
                None,
                transformer_file=path("diffusion_models", diffusion_model),
                text_encoder_files=[path("text_encoders", name) for name in (text_encoder_1, text_encoder_2)],
                vae_file=path("vae", vae),
                checkpoint_file=path("checkpoints", checkpoint),
                kind=kind,
                config_folder=None if config == SHIPPED_CONFIG else comfy_bridge.config_folder_path(config),
                comfyui_dir=comfy_bridge.comfyui_package_dir(),
                dtype=dtype,
                device=device,
                offload=offload,
                hooks=hooks,
            )
        return io.NodeOutput(replace(loaded, keep_loaded=keep_loaded))


NODES = [PaCoPipelineFromFiles]
