"""Qwen-Image-Edit (kind "qwen-image-edit") and Qwen-Image-Edit-2509 (kind "qwen-image-edit-plus").

Both edit with true classifier-free guidance on the Qwen-Image transformer and a Qwen2.5-VL
text encoder. The released ``edit-qwen`` PaCo-GRPO run trains Qwen-Image-Edit; Edit-Plus
(2509) takes several reference images and is not trained here.
"""

from __future__ import annotations

from paco_core.families.flux import DUAL_STREAM_ATTENTION_TARGETS
from paco_core.families.record import EDIT, Architecture, Family, FileRole, edit_preset

KIND = "qwen-image-edit"
PLUS_KIND = "qwen-image-edit-plus"

QWEN25VL = FileRole(
    name="qwen_2.5_vl_7b",
    title="Qwen2.5-VL",
    component="text_encoder",
    help="qwen_2.5_vl_7b.safetensors or qwen_2.5_vl_7b_fp8_scaled.safetensors (models/text_encoders)",
    layout="qwen2.5-vl",
    key_markers=(
        ("model.layers.0.self_attn.q_proj.weight",),  # the original release's names
        ("model.language_model.layers.0.self_attn.q_proj.weight",),  # transformers' current names
    ),
)
QWEN_IMAGE_VAE = FileRole(
    name="qwen_image_vae",
    title="Qwen-Image's VAE",
    component="vae",
    help="qwen_image_vae.safetensors (models/vae)",
    layout="wan",
    key_prefixes=("encoder.downsamples.",),
)

QWEN_IMAGE_ARCHITECTURE = Architecture(
    name="qwen-image",
    title="Qwen-Image",
    transformer_class="QwenImageTransformer2DModel",
    transformer_markers=(("transformer_blocks.0.img_mod.1.weight", "txt_norm.weight"),),
    single_file_transformer=False,
    text_encoders=(QWEN25VL.name,),
    vae=QWEN_IMAGE_VAE.name,
    lora_markers=(".img_mlp.", ".txt_mlp.", ".img_mod.", ".txt_mod.", "img_in", "txt_in"),
    attention_targets=DUAL_STREAM_ATTENTION_TARGETS,
    lora_targets=(
        *DUAL_STREAM_ATTENTION_TARGETS,
        "img_mlp.net.0.proj",
        "img_mlp.net.2",
        "txt_mlp.net.0.proj",
        "txt_mlp.net.2",
    ),
    file_roles=(QWEN25VL, QWEN_IMAGE_VAE),
    comfy_clip_type="qwen_image",
)
"""Qwen-Image names its feed-forward layers img_mlp / txt_mlp."""

FAMILY = Family(
    kind=KIND,
    title="Qwen-Image-Edit",
    task=EDIT,
    pipeline_class="QwenImageEditPipeline",
    diffusers_module="diffusers.pipelines.qwenimage.pipeline_qwenimage_edit",
    architecture=QWEN_IMAGE_ARCHITECTURE,
    hub_id="Qwen/Qwen-Image-Edit",
    config_folder=KIND,
    default_for_architecture=True,
    default_steps=28,
    default_guidance=4.0,
    num_references=1,
    edit_call="paco_core.generate:qwen_edit_call",
    rollout_adapter="paco_core.rl.rollout_adapters:QwenImageEditAdapter",
    presets={
        "edit-qwen": edit_preset(
            QWEN_IMAGE_ARCHITECTURE.attention_targets,
            {
                "num_steps": 10,
                "noise_steps": [1, 2, 3, 4],
                "trained_steps": [1],
                "noise_level": 1.0,
                "guidance_scale": 4.0,
                "true_cfg": False,
            },
        ),
    },
    tiny_model="paco_core.testing.qwen_image:save_tiny_qwen_image_edit",
    tiny_comfy_files="paco_core.testing.comfy_layout:write_qwen_image_edit_files",
)

PLUS_FAMILY = Family(
    kind=PLUS_KIND,
    title="Qwen-Image-Edit-Plus",
    task=EDIT,
    pipeline_class="QwenImageEditPlusPipeline",
    diffusers_module="diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus",
    architecture=QWEN_IMAGE_ARCHITECTURE,
    hub_id="Qwen/Qwen-Image-Edit-2509",
    config_folder=PLUS_KIND,
    default_steps=28,
    default_guidance=4.0,
    num_references=2,
    edit_call="paco_core.generate:qwen_edit_call",
    tiny_model="paco_core.testing.qwen_image:save_tiny_qwen_image_edit_plus",
    tiny_comfy_files="paco_core.testing.comfy_layout:write_qwen_image_edit_plus_files",
)
