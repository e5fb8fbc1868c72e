"""FLUX.1-dev (kind "flux"): consistent multi-image sets as one grid image; the FLUX architecture.

The PaCo paper's text-to-image-set model: the released ``t2is`` PaCo-GRPO runs train it.
FLUX.1-Kontext-dev (``flux_kontext``) shares its architecture.
"""

from __future__ import annotations

from paco_core.families.record import SETS, Architecture, Family, FileRole

KIND = "flux"

DUAL_STREAM_ATTENTION_TARGETS: tuple[str, ...] = (
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
)  # fmt: skip
"""The attention projections of a dual-stream block (FLUX and Qwen-Image use the same names)."""

CLIP_L = FileRole(
    name="clip_l",
    title="CLIP-L",
    component="text_encoder",
    help="clip_l.safetensors (models/text_encoders)",
    layout="clip-l",
    key_markers=(("text_model.encoder.layers.0.mlp.fc1.weight",), ("encoder.layers.0.mlp.fc1.weight",)),
    checkpoint_prefix="text_encoders.clip_l.",
)
T5XXL = FileRole(
    name="t5xxl",
    title="T5-XXL",
    component="text_encoder_2",
    help="t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn(_scaled).safetensors (models/text_encoders)",
    layout="t5",
    key_markers=(("encoder.block.0.layer.0.SelfAttention.q.weight",),),
    checkpoint_prefix="text_encoders.t5xxl.",
)
AE = FileRole(
    name="ae",
    title="FLUX's ae",
    component="vae",
    help="ae.safetensors (models/vae)",
    layout="ldm",
    key_prefixes=("encoder.down.",),
)

FLUX_ARCHITECTURE = Architecture(
    name="flux",
    title="FLUX",
    transformer_class="FluxTransformer2DModel",
    transformer_markers=(
        ("double_blocks.0.img_attn.qkv.weight",),  # Black Forest Labs' original names
        ("single_transformer_blocks.0.attn.to_q.weight", "x_embedder.weight"),  # diffusers names
    ),
    single_file_transformer=True,
    text_encoders=(CLIP_L.name, T5XXL.name),
    vae=AE.name,
    lora_markers=(
        "single_transformer_blocks.",
        ".ff.net.",
        ".ff_context.net.",
        ".norm1_context.",
        "x_embedder",
    ),
    attention_targets=DUAL_STREAM_ATTENTION_TARGETS,
    lora_targets=(
        *DUAL_STREAM_ATTENTION_TARGETS,
        "ff.net.0.proj",
        "ff.net.2",
        "ff_context.net.0.proj",
        "ff_context.net.2",
    ),
    file_roles=(CLIP_L, T5XXL, AE),
    comfy_clip_type="flux",
)

_T2IS: dict = {
    "lora": {"target_modules": list(FLUX_ARCHITECTURE.lora_targets)},
    "sampling": {"num_steps": 10, "noise_steps": [1], "noise_level": 0.7, "guidance_scale": 3.5,
                 "train_resolution": 512, "eval_resolution": 1024, "reference_resolution": 1024},
    "advantages": {"global_std": True},
    "rewards": {"rewards": [{"name": "consistency", "weight": 0.2}, {"name": "clip_t", "weight": 1.0},
                            {"name": "pickscore", "weight": 1.0}], "aggregation": "weighted_sum"},
    "checkpoint_every": 10, "eval_every": 10,
}  # fmt: skip
"""The released T2IS run (PaCo-GRPO/config/grpo.py, see paco_core.rl.presets)."""

FAMILY = Family(
    kind=KIND,
    title="FLUX.1-dev",
    task=SETS,
    pipeline_class="FluxPipeline",
    diffusers_module="diffusers.pipelines.flux.pipeline_flux",
    inpaint_pipeline_class="FluxInpaintPipeline",
    architecture=FLUX_ARCHITECTURE,
    hub_id="black-forest-labs/FLUX.1-dev",
    config_folder=KIND,
    default_for_architecture=True,
    default_steps=28,
    default_guidance=3.5,
    encode_set_prompt="paco_core.generate:flux_set_prompt",
    rollout_adapter="paco_core.rl.rollout_adapters:FluxAdapter",
    presets={
        "t2is-flux": _T2IS,
        "t2is-flux-paper": {
            **_T2IS,
            "rewards": {
                **_T2IS["rewards"],
                "aggregation": "log_tamed",
                "log_tame_threshold": 0.2,
                "log_tame_rewards": ["consistency", "clip_t"],
            },
        },
    },
    tiny_model="paco_core.testing.flux:save_tiny_flux",
    tiny_comfy_files="paco_core.testing.comfy_layout:write_flux_dev_files",
)
