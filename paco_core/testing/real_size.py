"""Random-weight models with the real dimensions of FLUX.1-dev and Qwen2.5-VL-7B, for the
benchmarks in ``bench/``: the time and memory of the real architectures, without their
weights (none can be downloaded where the benchmarks run).

The large modules are built on the meta device and materialised in place on the target
device in the target dtype, so 12 B parameters take seconds on a GPU instead of minutes
of CPU initialisation and copying. Smaller depths (``num_layers``, ``text_layers`` ...)
make smoke runs possible on small machines.

Example:
    >>> transformer = random_flux_transformer("cuda", torch.bfloat16)  # doctest: +SKIP
    >>> judge = random_qwen2_5_vl_judge("cuda", torch.bfloat16)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paco_core.errors import InputError
from paco_core.families import FLUX, QWEN_IMAGE_EDIT, family

FLUX_DEV_DIMS: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": (16, 56, 56),
}
"""FLUX.1-dev's transformer (FLUX.1-Kontext-dev has the same): about 11.9 B parameters."""

QWEN2_5_VL_7B_TEXT: dict[str, Any] = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
"""Qwen2.5-VL-7B-Instruct's language model (PaCo-Reward-7B has the same)."""

QWEN2_5_VL_7B_VISION: dict[str, Any] = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "hidden_act": "silu",
}
"""Qwen2.5-VL-7B-Instruct's vision tower."""

QWEN_IMAGE_DIMS: dict[str, Any] = {
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 60,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 3584,
    "guidance_embeds": False,
    "axes_dims_rope": (16, 56, 56),
}
"""Qwen-Image's transformer (Qwen-Image-Edit has the same): about 20.4 B parameters."""

QWEN2_5_VL_MIN_PIXELS, QWEN2_5_VL_MAX_PIXELS = 56 * 56, 28 * 28 * 16384
"""The stock Qwen2.5-VL image processor's pixel bounds (a 512 px panel -> 504 px, 324 tokens)."""


def random_flux_transformer(
    device: str,
    dtype: Any,
    *,
    num_layers: int | None = None,
    num_single_layers: int | None = None,
    seed: int = 0,
):
    """A ``FluxTransformer2DModel`` with FLUX.1-dev's dimensions and random weights.

    Args:
        device: where the weights are created ("cuda", "cpu" ...).
        dtype: their torch dtype.
        num_layers / num_single_layers: fewer double / single blocks (None: FLUX.1-dev's 19 / 38).
        seed: of the weights (normal(0, 0.02); biases 0, norm scales 1).
    """
    import torch
    from diffusers import FluxTransformer2DModel

    dims = dict(FLUX_DEV_DIMS)
    if num_layers is not None:
        dims["num_layers"] = num_layers
    if num_single_layers is not None:
        dims["num_single_layers"] = num_single_layers
    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**dims).to(dtype)
    transformer = transformer.to_empty(device=device)  # materialised directly in `dtype` on the device
    _initialise(transformer, device, seed)
    check_no_meta_tensors(transformer)
    return transformer  # FluxTransformer2DModel has no buffers: to_empty + this init is complete


def random_flux_pipeline(
    tiny_flux: str | Path,
    device: str,
    dtype: Any,
    *,
    num_layers: int | None = None,
    num_single_layers: int | None = None,
    kind: str = FLUX.kind,
):
    """A FLUX.1-dev-sized random transformer with one-layer text encoders of FLUX's output
    widths (4096, 768) and the tiny VAE and tokenizers of ``tiny_flux``: at this size the
    transformer is nearly all of the time and memory.

    Args:
        kind: a family of the FLUX architecture (FLUX.1-dev's FluxPipeline, or Kontext's
            FluxKontextPipeline: FLUX.1-Kontext-dev has FLUX.1-dev's transformer).

    Returns:
        A ``LoadedPipeline`` of ``kind`` on ``device``.
    """
    import diffusers
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    from paco_core.models.pipelines import LoadedPipeline

    tiny_flux = Path(tiny_flux)
    transformer = random_flux_transformer(
        device, dtype, num_layers=num_layers, num_single_layers=num_single_layers
    )
    tokenizer = CLIPTokenizer.from_pretrained(tiny_flux / "tokenizer")
    tokenizer_2 = T5TokenizerFast.from_pretrained(tiny_flux / "tokenizer_2")
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            projection_dim=768,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer_2), d_model=4096, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    )
    if family(kind).architecture is not FLUX.architecture:
        raise InputError(f"random_flux_pipeline builds FLUX-architecture pipelines, not {kind}.")
    pipeline_class = getattr(diffusers, family(kind).pipeline_class)
    pipe = pipeline_class(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_flux / "scheduler"),
        vae=AutoencoderKL.from_pretrained(tiny_flux / "vae"),
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    pipe.to(device)
    pipe.text_encoder.to(dtype)
    pipe.text_encoder_2.to(dtype)
    pipe.vae.to(dtype)
    return LoadedPipeline(
        pipe=pipe, kind=kind, source="random FLUX.1-dev dims", dtype=dtype, device=device, offload="none"
    )


def random_qwen_image_transformer(
    device: str,
    dtype: Any,
    *,
    joint_attention_dim: int | None = None,
    num_layers: int | None = None,
    seed: int = 0,
):
    """A ``QwenImageTransformer2DModel`` with Qwen-Image's dimensions and random weights.

    Args:
        device / dtype: where and in which torch dtype the weights are created.
        joint_attention_dim: the text encoder's width (None: Qwen2.5-VL-7B's 3584); a
            narrower one changes only the text input projection, not the cost of the blocks.
        num_layers: fewer blocks (None: 60).
        seed: of the weights (normal(0, 0.02); biases 0, norm scales 1).
    """
    import torch
    from diffusers import QwenImageTransformer2DModel

    dims = dict(QWEN_IMAGE_DIMS)
    if joint_attention_dim is not None:
        dims["joint_attention_dim"] = joint_attention_dim
    if num_layers is not None:
        dims["num_layers"] = num_layers
    with torch.device("meta"):
        transformer = QwenImageTransformer2DModel(**dims).to(dtype)
    transformer = transformer.to_empty(device=device)
    # the rotary embedding keeps its frequency tables as plain tensors (neither parameters nor
    # buffers): to_empty leaves them on the meta device, so that module is built again for real
    rope = transformer.pos_embed
    transformer.pos_embed = type(rope)(theta=rope.theta, axes_dim=rope.axes_dim, scale_rope=rope.scale_rope)
    _initialise(transformer, device, seed)
    check_no_meta_tensors(transformer)
    return transformer


def random_qwen_image_edit_pipeline(
    tiny_qwen_image_edit: str | Path, device: str, dtype: Any, *, num_layers: int | None = None
):
    """A Qwen-Image-sized random transformer with the tiny Qwen-Image-Edit's text encoder,
    VAE, tokenizer and processor (``tiny_qwen_image_edit``): the transformer is nearly all of
    the time and memory. Its text input projection takes the tiny encoder's width.

    Returns:
        A ``LoadedPipeline`` (Qwen-Image-Edit's kind) on ``device``.
    """
    from paco_core.models.pipelines import LoadedPipeline, clear_pipeline_cache, load_pipeline

    tiny = load_pipeline(tiny_qwen_image_edit, dtype=dtype, device=device)
    clear_pipeline_cache()  # the pipe below is the caller's alone
    components = dict(tiny.pipe.components)
    components["transformer"] = random_qwen_image_transformer(
        device,
        dtype,
        joint_attention_dim=components["text_encoder"].config.text_config.hidden_size,
        num_layers=num_layers,
    )
    pipe = type(tiny.pipe)(**components)
    return LoadedPipeline(
        pipe=pipe,
        kind=QWEN_IMAGE_EDIT.kind,
        source="random Qwen-Image dims",
        dtype=dtype,
        device=device,
        offload="none",
    )


def _initialise(module, device: str, seed: int) -> None:
    """normal(0, 0.02) weights, zero biases, unit norm scales, from a seeded generator on ``device``."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
            elif parameter.dim() == 1:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)


def check_no_meta_tensors(module) -> None:
    """Raise when a parameter, buffer or plain tensor attribute of ``module`` is still on the meta device."""
    import torch

    for name, submodule in module.named_modules():
        tensors = [*submodule.named_parameters(recurse=False), *submodule.named_buffers(recurse=False)]
        tensors += [(key, value) for key, value in vars(submodule).items() if isinstance(value, torch.Tensor)]
        for key, tensor in tensors:
            if tensor.is_meta:
                raise RuntimeError(f"{name or 'the model'}.{key} is still on the meta device")


def random_qwen2_5_vl_judge(
    device: str, dtype: Any, *, text_layers: int | None = None, vision_depth: int | None = None, seed: int = 0
):
    """A Qwen2.5-VL with the 7B dimensions and random weights, with the stock processor.

    Args:
        device / dtype: where and in which torch dtype the weights are created.
        text_layers: fewer language-model layers (None: 28).
        vision_depth: fewer vision blocks (None: 32); the last one keeps full attention.
        seed: torch's global seed for the initialisation.

    Returns:
        A ``JudgeModel`` (model in eval mode, processor, name) for ``LocalJudge``.
    """
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from paco_core.models.judge import JudgeModel
    from paco_core.testing.tokenizers import build_qwen2_tokenizer

    tokenizer = build_qwen2_tokenizer()

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    text_config = dict(
        QWEN2_5_VL_7B_TEXT, bos_token_id=token_id("<|endoftext|>"), eos_token_id=token_id("<|im_end|>")
    )
    vision_config = dict(QWEN2_5_VL_7B_VISION)
    if text_layers:
        text_config["num_hidden_layers"] = text_layers
    if vision_depth:
        vision_config["depth"] = vision_depth
        vision_config["fullatt_block_indexes"] = [vision_depth - 1]
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.eval().requires_grad_(False)
    sizes = {"min_pixels": QWEN2_5_VL_MIN_PIXELS, "max_pixels": QWEN2_5_VL_MAX_PIXELS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=14, temporal_patch_size=2, merge_size=2, **sizes),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(patch_size=14, temporal_patch_size=2, merge_size=2, **sizes),
        chat_template=tokenizer.chat_template,
    )
    return JudgeModel(model=model, processor=processor, name="random Qwen2.5-VL-7B dims")
