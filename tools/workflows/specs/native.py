"""ComfyUI's own model graphs (FLUX.1-dev, FLUX.1-Kontext-dev, Qwen-Image-Edit) with PaCo LoRAs
and the judge."""

from __future__ import annotations

from paco_core.families import FLUX, QWEN_IMAGE_EDIT
from tools.workflows.builder import GROUP_COLORS, PlacedNode, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    DARK_NOTE,
    EXAMPLE_INPUT_IMAGE,
    FOX_DESCRIPTION,
    FOX_PANELS,
    FOX_THEME,
    judge_loader,
)

NATIVE_MODEL_NOTE = """\
ComfyUI's own model files (ComfyUI/models/...); then press R to refresh:
diffusion_models/flux1-dev.safetensors  FLUX.1-dev (23.8 GB bf16;
    fp8: flux1-dev-fp8_e4m3fn, weight_dtype default)
diffusion_models/flux1-kontext-dev.safetensors  FLUX.1-Kontext-dev
diffusion_models/qwen_image_edit_fp8_e4m3fn.safetensors  Qwen-Image-Edit
    (2509: qwen_image_edit_2509_fp8_e4m3fn.safetensors)
text_encoders/clip_l.safetensors + t5xxl_fp16.safetensors (FLUX)
text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors (Qwen-Image-Edit)
vae/ae.safetensors (FLUX), vae/qwen_image_vae.safetensors (Qwen)
loras/paco_t2is.safetensors, paco_kontext_edit.safetensors,
    paco_qwen_image_edit.safetensors  the PaCo LoRAs (the files of
    X-GenGroup/PaCo-FLUX.1-dev-Lora, -Kontext-, -Qwen-Image-Edit-Lora)
text_encoders/PaCo-Reward-7B/  the judge X-GenGroup/PaCo-Reward-7B
The same files load in PaCo's own nodes: PaCo Pipeline Loader
(ComfyUI files). Sizes and fp8 variants: docs/model-files.md."""
"""Shown in the native-node workflows; the tests place models under exactly these names."""

NATIVE_MODEL_NAMES = {
    "diffusion_models": (
        "flux1-dev.safetensors",
        "flux1-kontext-dev.safetensors",
        "qwen_image_edit_fp8_e4m3fn.safetensors",
    ),
    "text_encoders": (
        "clip_l.safetensors",
        "t5xxl_fp16.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    ),
    "vae": ("ae.safetensors", "qwen_image_vae.safetensors"),
    "loras": ("paco_t2is.safetensors", "paco_kontext_edit.safetensors", "paco_qwen_image_edit.safetensors"),
}
EDIT_INSTRUCTION = "Change the season to winter and cover the ground with fresh snow."


def _native_note(builder: WorkflowBuilder, column: int) -> PlacedNode:
    return builder.add("Note", column, title="Read me: model files", color=DARK_NOTE, text=NATIVE_MODEL_NOTE)


def _judge_reference_and_instruction(builder: WorkflowBuilder) -> tuple[PlacedNode, PlacedNode, PlacedNode]:
    """The judge (column 0), the model files note, the reference picture and the edit instruction."""
    judge = judge_loader(builder, 0)
    _native_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Reference", image=EXAMPLE_INPUT_IMAGE)
    instruction = builder.add("PrimitiveStringMultiline", 1, title="Instruction", value=EDIT_INSTRUCTION)
    return judge, reference, instruction


def _edit_sampler_and_outputs(
    builder: WorkflowBuilder, *, steps: int, cfg: float, filename_prefix: str
) -> tuple[PlacedNode, ...]:
    """KSampler -> VAE Decode (column 2), the saved edit, PaCo Edit Score and its report (column 3)."""
    sampler = builder.add(
        "KSampler", 2, seed=42, steps=steps, cfg=cfg, sampler_name="euler", scheduler="simple", denoise=1.0
    )
    decode = builder.add("VAEDecode", 2)
    save = builder.add("SaveImage", 3, title="Edited", filename_prefix=filename_prefix)
    score = builder.add("PaCoEditScore", 3)
    report = builder.add("PreviewAny", 3, title="Edit scores")
    return sampler, decode, save, score, report


def _decode_save_and_score(
    builder: WorkflowBuilder, edit: tuple[PlacedNode, ...], vae, judge, original, instruction
) -> None:
    """Wires ``_edit_sampler_and_outputs``' nodes: the edit is decoded, saved and scored against
    the ``original`` and the ``instruction``."""
    sampler, decode, save, score, report = edit
    builder.connect(sampler, "LATENT", decode, "samples")
    builder.connect(vae, "VAE", decode, "vae")
    builder.connect(decode, "IMAGE", save, "images")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(original, "IMAGE", score, "original")
    builder.connect(decode, "IMAGE", score, "edited")
    builder.connect(instruction, "STRING", score, "instruction")
    builder.connect(score, "report", report, "source")


def _native_flux_models(builder: WorkflowBuilder, transformer: str, lora: str) -> tuple[PlacedNode, ...]:
    unet = builder.add("UNETLoader", 0, title="Load Diffusion Model", unet_name=transformer)
    clip = builder.add(
        "DualCLIPLoader",
        0,
        clip_name1="clip_l.safetensors",
        clip_name2="t5xxl_fp16.safetensors",
        type=FLUX.architecture.comfy_clip_type,
    )
    vae = builder.add("VAELoader", 0, title="Load VAE", vae_name="ae.safetensors")
    with_lora = builder.add("LoraLoaderModelOnly", 0, title="PaCo LoRA", lora_name=lora, strength_model=1.0)
    builder.connect(unet, "MODEL", with_lora, "model")
    return unet, clip, vae, with_lora


def native_flux_set_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own FLUX.1-dev graph (Load Diffusion Model -> PaCo LoRA -> KSampler) drawing one
    2x2 grid from PaCo Grid Prompt's prompt; PaCo Split Grid cuts the panels, the judge scores them."""
    builder = WorkflowBuilder(layouts)
    unet, clip, vae, with_lora = _native_flux_models(
        builder, "flux1-dev.safetensors", "paco_t2is.safetensors"
    )
    judge = judge_loader(builder, 0)
    _native_note(builder, 1)
    grid_prompt = builder.add(
        "PaCoGridPrompt",
        1,
        theme=FOX_THEME,
        shared_description=FOX_DESCRIPTION,
        panel_prompts=FOX_PANELS,
        layout="2x2",
    )
    encode = builder.add("CLIPTextEncode", 2, title="CLIP Text Encode (grid prompt)")
    guidance = builder.add("FluxGuidance", 2, guidance=3.5)
    negative = builder.add("ConditioningZeroOut", 2)
    latent = builder.add("EmptySD3LatentImage", 2, title="Empty latent: the grid size", width=1024)
    sampler = builder.add(
        "KSampler", 2, seed=42, steps=28, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0
    )
    decode = builder.add("VAEDecode", 2)
    save_grid = builder.add("SaveImage", 3, title="Grid", filename_prefix="PaCo/native_set")
    split = builder.add("PaCoSplitGrid", 3)
    score = builder.add("PaCoSetConsistency", 3, layout="batch", both_orders=False)
    report = builder.add("PreviewAny", 3, title="Judge report")

    builder.connect(clip, "CLIP", encode, "clip")
    builder.connect(grid_prompt, "prompt", encode, "text")
    builder.connect(encode, "CONDITIONING", guidance, "conditioning")
    builder.connect(encode, "CONDITIONING", negative, "conditioning")
    builder.connect(with_lora, "MODEL", sampler, "model")
    builder.connect(guidance, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(latent, "LATENT", sampler, "latent_image")
    builder.connect(sampler, "LATENT", decode, "samples")
    builder.connect(vae, "VAE", decode, "vae")
    builder.connect(decode, "IMAGE", save_grid, "images")
    builder.connect(decode, "IMAGE", split, "image")
    builder.connect(grid_prompt, "layout", split, "layout")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(split, "panels", score, "images")
    builder.connect(grid_prompt, "judge_theme", score, "theme")
    builder.connect(score, "report", report, "source")

    builder.group(
        "1. ComfyUI's FLUX.1-dev + the PaCo LoRA", [unet, clip, vae, with_lora, judge], GROUP_COLORS["models"]
    )
    builder.group("2. One prompt for the whole set", [grid_prompt], GROUP_COLORS["generate"])
    builder.group(
        "3. Sample the grid", [encode, guidance, negative, latent, sampler, decode], GROUP_COLORS["generate"]
    )
    builder.group("4. Save, cut into panels, judge", [save_grid, split, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-flux-set")


def native_kontext_edit_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own FLUX.1-Kontext-dev edit graph with the PaCo Kontext LoRA; the judge scores the edit."""
    builder = WorkflowBuilder(layouts)
    unet, clip, vae, with_lora = _native_flux_models(
        builder, "flux1-kontext-dev.safetensors", "paco_kontext_edit.safetensors"
    )
    judge, reference, instruction = _judge_reference_and_instruction(builder)
    scale = builder.add("FluxKontextImageScale", 1)
    encode_image = builder.add("VAEEncode", 1)
    encode = builder.add("CLIPTextEncode", 2, title="CLIP Text Encode (instruction)")
    reference_latent = builder.add("ReferenceLatent", 2)
    guidance = builder.add("FluxGuidance", 2, guidance=2.5)
    negative = builder.add("ConditioningZeroOut", 2)
    edit = _edit_sampler_and_outputs(builder, steps=28, cfg=1.0, filename_prefix="PaCo/native_kontext_edit")
    sampler, decode, save, score, report = edit

    builder.connect(reference, "IMAGE", scale, "image")
    builder.connect(scale, "IMAGE", encode_image, "pixels")
    builder.connect(vae, "VAE", encode_image, "vae")
    builder.connect(clip, "CLIP", encode, "clip")
    builder.connect(instruction, "STRING", encode, "text")
    builder.connect(encode, "CONDITIONING", reference_latent, "conditioning")
    builder.connect(encode_image, "LATENT", reference_latent, "latent")
    builder.connect(reference_latent, "CONDITIONING", guidance, "conditioning")
    builder.connect(encode, "CONDITIONING", negative, "conditioning")
    builder.connect(with_lora, "MODEL", sampler, "model")
    builder.connect(guidance, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(encode_image, "LATENT", sampler, "latent_image")
    _decode_save_and_score(builder, edit, vae, judge, scale, instruction)

    builder.group(
        "1. ComfyUI's Kontext + the PaCo LoRA", [unet, clip, vae, with_lora, judge], GROUP_COLORS["models"]
    )
    builder.group(
        "2. Reference and instruction", [reference, instruction, scale, encode_image], GROUP_COLORS["output"]
    )
    builder.group(
        "3. Sample the edit",
        [encode, reference_latent, guidance, negative, sampler, decode],
        GROUP_COLORS["generate"],
    )
    builder.group("4. Save and score the edit", [save, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-kontext-edit")


def native_qwen_edit_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own Qwen-Image-Edit graph with the PaCo LoRA; the judge scores the edit."""
    builder = WorkflowBuilder(layouts)
    unet = builder.add(
        "UNETLoader", 0, title="Load Diffusion Model", unet_name="qwen_image_edit_fp8_e4m3fn.safetensors"
    )
    clip = builder.add(
        "CLIPLoader",
        0,
        clip_name="qwen_2.5_vl_7b_fp8_scaled.safetensors",
        type=QWEN_IMAGE_EDIT.architecture.comfy_clip_type,
    )
    vae = builder.add("VAELoader", 0, title="Load VAE", vae_name="qwen_image_vae.safetensors")
    with_lora = builder.add(
        "LoraLoaderModelOnly",
        0,
        title="PaCo LoRA",
        lora_name="paco_qwen_image_edit.safetensors",
        strength_model=1.0,
    )
    shift = builder.add("ModelSamplingAuraFlow", 2, shift=3.1)
    judge, reference, instruction = _judge_reference_and_instruction(builder)
    scale = builder.add("ImageScaleToTotalPixels", 1, upscale_method="lanczos", megapixels=1.0)
    encode_image = builder.add("VAEEncode", 2)
    positive = builder.add("TextEncodeQwenImageEdit", 2, title="Instruction + image")
    negative = builder.add("TextEncodeQwenImageEdit", 2, title="Negative (empty)", prompt="")
    edit = _edit_sampler_and_outputs(builder, steps=20, cfg=4.0, filename_prefix="PaCo/native_qwen_edit")
    sampler, decode, save, score, report = edit

    builder.connect(unet, "MODEL", with_lora, "model")
    builder.connect(with_lora, "MODEL", shift, "model")
    builder.connect(reference, "IMAGE", scale, "image")
    builder.connect(scale, "IMAGE", encode_image, "pixels")
    builder.connect(vae, "VAE", encode_image, "vae")
    for encoder in (positive, negative):
        builder.connect(clip, "CLIP", encoder, "clip")
        builder.connect(vae, "VAE", encoder, "vae")
    builder.connect(scale, "IMAGE", positive, "image")
    builder.connect(instruction, "STRING", positive, "prompt")
    builder.connect(shift, "MODEL", sampler, "model")
    builder.connect(positive, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(encode_image, "LATENT", sampler, "latent_image")
    _decode_save_and_score(builder, edit, vae, judge, scale, instruction)

    models = [unet, clip, vae, with_lora, judge]
    builder.group("1. ComfyUI's Qwen-Image-Edit + the PaCo LoRA", models, GROUP_COLORS["models"])
    builder.group("2. Reference and instruction", [reference, instruction, scale], GROUP_COLORS["output"])
    builder.group(
        "3. Sample the edit",
        [encode_image, positive, negative, shift, sampler, decode],
        GROUP_COLORS["generate"],
    )
    builder.group("4. Save and score the edit", [save, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-qwen-edit")


WORKFLOWS = {
    "paco-native-flux-set": native_flux_set_workflow,
    "paco-native-kontext-edit": native_kontext_edit_workflow,
    "paco-native-qwen-edit": native_qwen_edit_workflow,
}
NATIVE_WORKFLOWS = tuple(WORKFLOWS)
"""Workflows of ComfyUI's own model nodes with PaCo LoRAs (their note: ``NATIVE_MODEL_NOTE``)."""
