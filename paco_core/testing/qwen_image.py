"""Tiny Qwen-Image-Edit (and Edit-Plus) pipelines.

The text encoder is a tiny Qwen2.5-VL built by the same code as the judge, with hidden size
32 = the transformer's joint_attention_dim. The pipeline drops the first 64 tokens of its
prompt template; the byte-level tokenizer turns that system prompt into far more than 64
tokens, so the dropped part is template, as with the real model.
"""

from __future__ import annotations

from pathlib import Path

from paco_core.testing.flux import build_flow_match_scheduler
from paco_core.testing.qwen_vl import build_qwen2_5_vl_model, build_qwen2_vl_processor
from paco_core.testing.seeding import seeded
from paco_core.testing.tokenizers import build_qwen2_tokenizer

QWEN_IMAGE_EDIT_SEED = 4001
QWEN_IMAGE_EDIT_PLUS_SEED = 4002
TEXT_HIDDEN_SIZE = 32
LATENT_CHANNELS = 16


def build_qwen_image_vae():
    """A narrow AutoencoderKLQwenImage (base_dim 8, 16 latent channels, 8x downsampling)."""
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(base_dim=8, z_dim=LATENT_CHANNELS, dim_mult=[1, 1, 1, 1], num_res_blocks=1)


def build_qwen_image_transformer():
    """A two-block QwenImageTransformer2DModel over 2x2-packed latents."""
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=4 * LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN_SIZE,
        axes_dims_rope=(8, 4, 4),
    )


def _save_qwen_image_pipeline(folder: Path, pipeline_class_name: str, seed: int) -> None:
    import diffusers

    tokenizer = build_qwen2_tokenizer()
    with seeded(seed):
        transformer = build_qwen_image_transformer()
        vae = build_qwen_image_vae()
    text_encoder = build_qwen2_5_vl_model(tokenizer, seed=seed + 1, text_hidden_size=TEXT_HIDDEN_SIZE)
    pipeline = getattr(diffusers, pipeline_class_name)(
        scheduler=build_flow_match_scheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=build_qwen2_vl_processor(tokenizer, "Qwen2VLProcessor"),
        transformer=transformer,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)


def save_tiny_qwen_image_edit(folder: Path) -> None:
    """Write a diffusers folder loadable by ``QwenImageEditPipeline.from_pretrained``."""
    _save_qwen_image_pipeline(folder, "QwenImageEditPipeline", QWEN_IMAGE_EDIT_SEED)


def save_tiny_qwen_image_edit_plus(folder: Path) -> None:
    """Write a diffusers folder loadable by ``QwenImageEditPlusPipeline.from_pretrained``."""
    _save_qwen_image_pipeline(folder, "QwenImageEditPlusPipeline", QWEN_IMAGE_EDIT_PLUS_SEED)
