"""A tiny Z-Image pipeline (about 370k parameters) and its files in ComfyUI's layout.

The real classes at tiny sizes: ``ZImageTransformer2DModel`` (2 blocks and 1 refiner block
per stream, 2 heads of 16 with rope axes 4 + 6 + 6 = 16), a tiny ``Qwen3Model`` text encoder
whose hidden size is the transformer's ``cap_feat_dim``, FLUX.1's 16-channel autoencoder
(Z-Image's VAE is FLUX.1's design) and the flow-matching scheduler with Z-Image's fixed shift 3.
The tokenizer is the tiny byte-level Qwen2 one with Z-Image's chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

from paco_core.families.z_image import CHAT_TEMPLATE, diffusers_to_comfy, text_encoder_to_comfy
from paco_core.testing.flux import LATENT_CHANNELS, build_flux_vae
from paco_core.testing.seeding import seeded
from paco_core.testing.tokenizers import build_qwen2_tokenizer

Z_IMAGE_SEED = 5001
TEXT_HIDDEN_SIZE = 32


def build_z_image_transformer():
    from diffusers import ZImageTransformer2DModel

    return ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=LATENT_CHANNELS,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=TEXT_HIDDEN_SIZE,
        axes_dims=[4, 6, 6],
        axes_lens=[512, 64, 64],
    )


def build_z_image_scheduler():
    """Z-Image's scheduler: flow-matching Euler with a fixed shift of 3 (no resolution shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)


def build_z_image_tokenizer():
    tokenizer = build_qwen2_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_qwen3_text_encoder(tokenizer):
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN_SIZE,
        intermediate_size=2 * TEXT_HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=True,
    )
    return Qwen3Model(config).eval()


def save_tiny_z_image(folder: Path) -> None:
    """Write a diffusers folder loadable by ``ZImagePipeline.from_pretrained``."""
    from diffusers import ZImagePipeline

    tokenizer = build_z_image_tokenizer()
    with seeded(Z_IMAGE_SEED):
        components = {
            "transformer": build_z_image_transformer(),
            "vae": build_flux_vae(),
            "text_encoder": build_qwen3_text_encoder(tokenizer),
        }
    pipeline = ZImagePipeline(scheduler=build_z_image_scheduler(), tokenizer=tokenizer, **components)
    pipeline.save_pretrained(folder, safe_serialization=True)


def write_z_image_files(source: Path, models: Path, name: str) -> None:
    """The tiny Z-Image as ComfyUI keeps it: the transformer in the original layout, the
    Qwen3 text encoder in release names without an LM head, the VAE in FLUX.1's LDM layout."""
    from paco_core.models.vae_layouts import ldm_vae_from_diffusers
    from paco_core.testing.comfy_layout import _load, _save

    config = json.loads((source / "transformer" / "config.json").read_text())
    vae_config = json.loads((source / "vae" / "config.json").read_text())
    _save(
        diffusers_to_comfy(_load(source / "transformer"), config),
        models / "diffusion_models" / f"{name}.safetensors",
    )
    _save(
        text_encoder_to_comfy(_load(source / "text_encoder")),
        models / "text_encoders" / f"{name}-qwen_3_4b.safetensors",
    )
    _save(
        ldm_vae_from_diffusers(_load(source / "vae"), len(vae_config["block_out_channels"])),
        models / "vae" / f"{name}-ae.safetensors",
    )
