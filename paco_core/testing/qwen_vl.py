"""A tiny Qwen2.5-VL (model + processor), shared by the judge and Qwen-Image-Edit's text encoder."""

from __future__ import annotations

from paco_core.testing.seeding import seeded

TEXT_HIDDEN_SIZE = 64
VISION_HIDDEN_SIZE = 32
PATCH_SIZE = 14
SPATIAL_MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
PIXEL_FACTOR = PATCH_SIZE * SPATIAL_MERGE_SIZE
"""Image sides are rounded to multiples of this (28 px = one merged vision token)."""

MIN_PIXELS = PIXEL_FACTOR * PIXEL_FACTOR
MAX_PIXELS = 4 * PIXEL_FACTOR * 4 * PIXEL_FACTOR
"""Images are resized to at most 112x112 px (16 vision tokens), so a 64x64 panel gives 4."""

INIT_STD = 0.1
"""Weight init std: larger than the usual 0.02 so that different images give visibly
different logits from random weights."""


def tiny_qwen2_5_vl_config(tokenizer, text_hidden_size: int = TEXT_HIDDEN_SIZE):
    """A Qwen2_5_VLConfig about 0.1% of a real one, with token ids taken from ``tokenizer``.

    Args:
        tokenizer: the tiny Qwen2 tokenizer (carries the Qwen-VL special tokens).
        text_hidden_size: hidden size of the language model; the vision tower projects to it.

    Returns:
        A ``Qwen2_5_VLConfig``.
    """
    from transformers import Qwen2_5_VLConfig

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    num_heads = 4
    head_dim = text_hidden_size // num_heads
    # mrope splits head_dim / 2 rotary frequencies over (time, height, width).
    half = head_dim // 2
    mrope_section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    vocab_size = (len(tokenizer) + 63) // 64 * 64
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": text_hidden_size,
            "intermediate_size": 2 * text_hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": num_heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": mrope_section,
            },
            "initializer_range": INIT_STD,
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": VISION_HIDDEN_SIZE,
            "intermediate_size": 2 * VISION_HIDDEN_SIZE,
            "num_heads": 2,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": SPATIAL_MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE,
            "window_size": 2 * PIXEL_FACTOR,
            "fullatt_block_indexes": [1],
            "out_hidden_size": text_hidden_size,
            "initializer_range": INIT_STD,
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        bos_token_id=token_id("<|endoftext|>"),
        eos_token_id=token_id("<|im_end|>"),
        pad_token_id=token_id("<|endoftext|>"),
        tie_word_embeddings=False,
    )


def build_qwen2_5_vl_model(tokenizer, seed: int, text_hidden_size: int = TEXT_HIDDEN_SIZE):
    """A randomly initialised ``Qwen2_5_VLForConditionalGeneration`` (float32, eval mode)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = tiny_qwen2_5_vl_config(tokenizer, text_hidden_size)
    with seeded(seed):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.do_sample = False
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval()


def build_qwen2_vl_processor(tokenizer, processor_class_name: str = "Qwen2_5_VLProcessor"):
    """The stock Qwen-VL processor around ``tokenizer``, resizing images to at most 112x112.

    Args:
        tokenizer: the tiny Qwen2 tokenizer (its chat template becomes the processor's).
        processor_class_name: ``Qwen2_5_VLProcessor`` (judge) or ``Qwen2VLProcessor``
            (what Qwen-Image-Edit's pipeline declares).

    Returns:
        A transformers processor instance.
    """
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    pixels = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    image_processor = Qwen2VLImageProcessor(
        patch_size=PATCH_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        merge_size=SPATIAL_MERGE_SIZE,
        **pixels,
    )
    video_processor = Qwen2VLVideoProcessor(
        patch_size=PATCH_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        merge_size=SPATIAL_MERGE_SIZE,
        **pixels,
    )
    processor_class = getattr(transformers, processor_class_name)
    return processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )
