"""Tiny FLUX.1 (text-to-image) and FLUX.1 Kontext (editing) pipelines, about 200k parameters.

Both share FLUX.1's architecture: a dual-stream transformer over 2x2-packed 16-channel
latents, CLIP (pooled) and T5 (sequence) text encoders, and a KL autoencoder that
downsamples by 8. The configs keep FLUX's constraints: transformer in_channels = 4 x
latent channels, sum(axes_dims_rope) = attention_head_dim, pooled_projection_dim = CLIP
hidden size, joint_attention_dim = T5 d_model.
"""

from __future__ import annotations

from pathlib import Path

from paco_core.testing.clip import CLIP_HIDDEN_SIZE, tiny_clip_text_config
from paco_core.testing.seeding import seeded
from paco_core.testing.tokenizers import build_clip_tokenizer, build_t5_tokenizer

FLUX_SEED = 2001
FLUX_KONTEXT_SEED = 2002
LATENT_CHANNELS = 16
T5_D_MODEL = 32


def build_flux_vae():
    """A 4-level AutoencoderKL with 16 latent channels (8x downsampling), like FLUX's."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=True,
    )


def build_flux_transformer():
    """A one-double-block, one-single-block FluxTransformer2DModel with guidance embedding."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_D_MODEL,
        pooled_projection_dim=CLIP_HIDDEN_SIZE,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )


def build_flow_match_scheduler():
    """FLUX's flow-matching Euler scheduler with resolution-dependent (dynamic) shifting."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build_flux_text_encoders() -> dict:
    """CLIP text encoder + tokenizer and T5 encoder + tokenizer, keyed by pipeline component."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer = build_clip_tokenizer()
    t5_tokenizer = build_t5_tokenizer()
    t5_config = T5Config(
        vocab_size=len(t5_tokenizer),
        d_model=T5_D_MODEL,
        d_kv=8,
        d_ff=2 * T5_D_MODEL,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=t5_tokenizer.pad_token_id,
        eos_token_id=t5_tokenizer.eos_token_id,
        decoder_start_token_id=t5_tokenizer.pad_token_id,
    )
    return {
        "text_encoder": CLIPTextModel(CLIPTextConfig(**tiny_clip_text_config(clip_tokenizer))).eval(),
        "tokenizer": clip_tokenizer,
        "text_encoder_2": T5EncoderModel(t5_config).eval(),
        "tokenizer_2": t5_tokenizer,
    }


def _save_flux_pipeline(folder: Path, pipeline_class_name: str, seed: int) -> None:
    import diffusers

    with seeded(seed):
        components = {
            "transformer": build_flux_transformer(),
            "vae": build_flux_vae(),
            **build_flux_text_encoders(),
            "scheduler": build_flow_match_scheduler(),
        }
    pipeline = getattr(diffusers, pipeline_class_name)(**components)
    pipeline.save_pretrained(folder, safe_serialization=True)


def save_tiny_flux(folder: Path) -> None:
    """Write a diffusers folder loadable by ``FluxPipeline.from_pretrained``."""
    _save_flux_pipeline(folder, "FluxPipeline", FLUX_SEED)


def save_tiny_flux_kontext(folder: Path) -> None:
    """Write a diffusers folder loadable by ``FluxKontextPipeline.from_pretrained``."""
    _save_flux_pipeline(folder, "FluxKontextPipeline", FLUX_KONTEXT_SEED)
