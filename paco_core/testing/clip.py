"""Tiny CLIP: the dual encoder behind CLIP-T and PickScore, and FLUX's pooled text encoder."""

from __future__ import annotations

from pathlib import Path

from paco_core.testing.seeding import seeded
from paco_core.testing.tokenizers import build_clip_tokenizer

CLIP_SEED = 3001
CLIP_HIDDEN_SIZE = 32
CLIP_IMAGE_SIZE = 32
"""The processor resizes and crops every image to 32x32 (4x4 patches of 8 px)."""


def tiny_clip_text_config(tokenizer, projection_dim: int = CLIP_HIDDEN_SIZE) -> dict:
    """Keyword arguments of a tiny ``CLIPTextConfig`` whose special ids match ``tokenizer``."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": CLIP_HIDDEN_SIZE,
        "intermediate_size": 2 * CLIP_HIDDEN_SIZE,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": tokenizer.model_max_length,
        "projection_dim": projection_dim,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def save_tiny_clip(folder: Path) -> None:
    """Write a folder loadable by ``CLIPModel`` and ``CLIPProcessor`` (also ``AutoModel`` /
    ``AutoProcessor``)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = build_clip_tokenizer()
    config = CLIPConfig(
        text_config=tiny_clip_text_config(tokenizer),
        vision_config={
            "hidden_size": CLIP_HIDDEN_SIZE,
            "intermediate_size": 2 * CLIP_HIDDEN_SIZE,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": 8,
            "projection_dim": CLIP_HIDDEN_SIZE,
        },
        projection_dim=CLIP_HIDDEN_SIZE,
    )
    with seeded(CLIP_SEED):
        model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
