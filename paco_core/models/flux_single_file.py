"""FLUX transformers from one safetensors file: what ComfyUI users keep in
``models/diffusion_models``.

Two layouts are read: diffusers names, and the original Black Forest Labs names
(``double_blocks.0.img_attn.qkv.weight`` ...), optionally nested under ComfyUI's
``model.diffusion_model.``; fp8 and ComfyUI's scaled fp8 are upcast (``paco_core.models.fp8``). The model's config (and so its width) always comes from the
``transformer/`` folder of a diffusers pipeline, and every weight is checked against it.
"""

from __future__ import annotations

from paco_core.errors import ModelLoadError


def load_single_file_transformer(location: str, transformer_file: str, torch_dtype):
    """A FLUX transformer from one safetensors file (diffusers or original BFL layout),
    with the config of the folder's ``transformer/``."""
    import torch
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import load_file

    try:
        config = FluxTransformer2DModel.load_config(location, subfolder="transformer")
        with torch.device("meta"):
            expected = set(FluxTransformer2DModel.from_config(config).state_dict())
        state_dict = load_file(transformer_file)
    except Exception as error:
        raise ModelLoadError(
            f"could not read the FLUX transformer {transformer_file} or the config of {location}/transformer: "
            f"{type(error).__name__}: {error}."
        ) from error
    from paco_core.models.fp8 import dequantize

    state_dict = {key.removeprefix(COMFY_MODEL_PREFIX): value for key, value in state_dict.items()}
    state_dict = dequantize(state_dict, torch_dtype, transformer_file)  # fp8 / scaled fp8 upcast
    if any(key.startswith("double_blocks.") for key in state_dict):
        inner_dim = config["num_attention_heads"] * config["attention_head_dim"]
        state_dict = flux_bfl_to_diffusers(state_dict, inner_dim, transformer_file)
    _check_transformer_keys(set(state_dict), expected, transformer_file, location)
    try:
        return FluxTransformer2DModel.from_single_file(
            state_dict, config=location, subfolder="transformer", dtype=torch_dtype
        )
    except Exception as error:
        raise ModelLoadError(
            f"could not load the FLUX transformer from {transformer_file} with the config of {location}/transformer: "
            f"{type(error).__name__}: {error}. The file must be a FLUX transformer checkpoint matching that model."
        ) from error


def _check_transformer_keys(found: set, expected: set, transformer_file: str, location: str) -> None:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"transformer file {transformer_file} does not fit the FLUX transformer of {location}: "
            f"{len(missing)} weights missing (e.g. {', '.join(missing[:3]) or '-'}), {len(unexpected)} unknown "
            f"(e.g. {', '.join(unexpected[:3]) or '-'}). Use a full FLUX transformer checkpoint (not a LoRA, "
            "not a quantized or truncated file) of the same model as the folder."
        )


COMFY_MODEL_PREFIX = "model.diffusion_model."
"""Where a full ComfyUI checkpoint nests the transformer; stripped before converting."""

# FLUX's original (Black Forest Labs) names -> diffusers names; \1 is a block number, the last
# group "weight" or "bias". The same mapping as diffusers' convert_flux_transformer_checkpoint_to_diffusers,
# which assumes FLUX.1-dev's 3072-wide blocks; here the width comes from the model's config.
_BFL_RENAMES = (
    (r"time_in\.in_layer\.(weight|bias)", r"time_text_embed.timestep_embedder.linear_1.\1"),
    (r"time_in\.out_layer\.(weight|bias)", r"time_text_embed.timestep_embedder.linear_2.\1"),
    (r"vector_in\.in_layer\.(weight|bias)", r"time_text_embed.text_embedder.linear_1.\1"),
    (r"vector_in\.out_layer\.(weight|bias)", r"time_text_embed.text_embedder.linear_2.\1"),
    (r"guidance_in\.in_layer\.(weight|bias)", r"time_text_embed.guidance_embedder.linear_1.\1"),
    (r"guidance_in\.out_layer\.(weight|bias)", r"time_text_embed.guidance_embedder.linear_2.\1"),
    (r"txt_in\.(weight|bias)", r"context_embedder.\1"),
    (r"img_in\.(weight|bias)", r"x_embedder.\1"),
    (r"final_layer\.linear\.(weight|bias)", r"proj_out.\1"),
    (r"double_blocks\.(\d+)\.img_mod\.lin\.(weight|bias)", r"transformer_blocks.\1.norm1.linear.\2"),
    (r"double_blocks\.(\d+)\.txt_mod\.lin\.(weight|bias)", r"transformer_blocks.\1.norm1_context.linear.\2"),
    (r"double_blocks\.(\d+)\.img_attn\.proj\.(weight|bias)", r"transformer_blocks.\1.attn.to_out.0.\2"),
    (r"double_blocks\.(\d+)\.txt_attn\.proj\.(weight|bias)", r"transformer_blocks.\1.attn.to_add_out.\2"),
    (r"double_blocks\.(\d+)\.img_mlp\.0\.(weight|bias)", r"transformer_blocks.\1.ff.net.0.proj.\2"),
    (r"double_blocks\.(\d+)\.img_mlp\.2\.(weight|bias)", r"transformer_blocks.\1.ff.net.2.\2"),
    (r"double_blocks\.(\d+)\.txt_mlp\.0\.(weight|bias)", r"transformer_blocks.\1.ff_context.net.0.proj.\2"),
    (r"double_blocks\.(\d+)\.txt_mlp\.2\.(weight|bias)", r"transformer_blocks.\1.ff_context.net.2.\2"),
    (r"double_blocks\.(\d+)\.img_attn\.norm\.query_norm\.scale", r"transformer_blocks.\1.attn.norm_q.weight"),
    (r"double_blocks\.(\d+)\.img_attn\.norm\.key_norm\.scale", r"transformer_blocks.\1.attn.norm_k.weight"),
    (
        r"double_blocks\.(\d+)\.txt_attn\.norm\.query_norm\.scale",
        r"transformer_blocks.\1.attn.norm_added_q.weight",
    ),
    (
        r"double_blocks\.(\d+)\.txt_attn\.norm\.key_norm\.scale",
        r"transformer_blocks.\1.attn.norm_added_k.weight",
    ),
    (r"single_blocks\.(\d+)\.modulation\.lin\.(weight|bias)", r"single_transformer_blocks.\1.norm.linear.\2"),
    (r"single_blocks\.(\d+)\.linear2\.(weight|bias)", r"single_transformer_blocks.\1.proj_out.\2"),
    (r"single_blocks\.(\d+)\.norm\.query_norm\.scale", r"single_transformer_blocks.\1.attn.norm_q.weight"),
    (r"single_blocks\.(\d+)\.norm\.key_norm\.scale", r"single_transformer_blocks.\1.attn.norm_k.weight"),
)
# Fused BFL tensors, split along dim 0 into blocks of the inner width (the last takes the rest).
_BFL_FUSED = (
    (
        r"double_blocks\.(\d+)\.img_attn\.qkv\.(weight|bias)",
        ("attn.to_q", "attn.to_k", "attn.to_v"),
        "transformer_blocks",
    ),
    (
        r"double_blocks\.(\d+)\.txt_attn\.qkv\.(weight|bias)",
        ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
        "transformer_blocks",
    ),
    (
        r"single_blocks\.(\d+)\.linear1\.(weight|bias)",
        ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
        "single_transformer_blocks",
    ),
)
_BFL_FINAL_MODULATION = r"final_layer\.adaLN_modulation\.1\.(weight|bias)"


def flux_bfl_to_diffusers(state_dict: dict, inner_dim: int, source: str = "the checkpoint") -> dict:
    """A FLUX transformer state dict in the original Black Forest Labs layout, in diffusers names.

    Args:
        state_dict: BFL keys (``double_blocks.0.img_attn.qkv.weight``, ``img_in.weight`` ...).
        inner_dim: heads x head dim of the model (3072 for FLUX.1-dev).
        source: where the weights came from, for messages.

    Returns:
        The diffusers state dict (the fused q/k/v(/mlp) tensors split, and the final
        modulation's (shift, scale) halves swapped to diffusers' (scale, shift)).
    """
    import re

    import torch

    converted: dict = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        if match := re.fullmatch(_BFL_FINAL_MODULATION, key):
            shift, scale = tensor.chunk(2, dim=0)
            converted[f"norm_out.linear.{match[1]}"] = torch.cat([scale, shift])
            continue
        for pattern, target in _BFL_RENAMES:
            if match := re.fullmatch(pattern, key):
                converted[match.expand(target)] = tensor
                break
        else:
            for pattern, names, blocks in _BFL_FUSED:
                if match := re.fullmatch(pattern, key):
                    sizes = [inner_dim] * (len(names) - 1) + [tensor.shape[0] - inner_dim * (len(names) - 1)]
                    for name, part in zip(names, torch.split(tensor, sizes, dim=0), strict=True):
                        converted[f"{blocks}.{match[1]}.{name}.{match[2]}"] = part
                    break
            else:
                unknown.append(key)
    if unknown:
        raise ModelLoadError(
            f"{source} is in FLUX's original layout but has {len(unknown)} keys this loader does not know "
            f"(e.g. {', '.join(unknown[:3])}). It is not a FLUX.1 transformer (or a quantization this loader does "
            "not read): use a bf16, fp16 or fp8 FLUX.1 transformer file."
        )
    return converted


def flux_diffusers_to_bfl(state_dict: dict) -> dict:
    """The inverse of :func:`flux_bfl_to_diffusers`: a diffusers FLUX transformer state dict in
    the original Black Forest Labs names (what ComfyUI keeps in ``models/diffusion_models``).

    Built from the same rename tables: every BFL key that the model's blocks imply is mapped
    forward, and its diffusers tensors are gathered (fused ones concatenated).
    """
    import re

    import torch

    def count(prefix: str) -> int:
        return len({key.split(".")[1] for key in state_dict if key.startswith(prefix + ".")})

    doubles, singles = count("transformer_blocks"), count("single_transformer_blocks")
    bfl_keys = []
    for pattern, _ in _BFL_RENAMES:
        bfl_keys += _instances(
            pattern, doubles if "double" in pattern else singles if "single" in pattern else 1
        )
    out: dict = {}
    for key in bfl_keys:
        for pattern, target in _BFL_RENAMES:
            if match := re.fullmatch(pattern, key):
                if match.expand(target) in state_dict:
                    out[key] = state_dict[match.expand(target)]
                break
    for pattern, names, blocks in _BFL_FUSED:
        for key in _instances(pattern, doubles if blocks == "transformer_blocks" else singles):
            match = re.fullmatch(pattern, key)
            out[key] = torch.cat([state_dict[f"{blocks}.{match[1]}.{name}.{match[2]}"] for name in names])
    for leaf in ("weight", "bias"):
        scale, shift = state_dict[f"norm_out.linear.{leaf}"].chunk(2, dim=0)
        out[f"final_layer.adaLN_modulation.1.{leaf}"] = torch.cat([shift, scale])
    return {key: tensor.contiguous() for key, tensor in out.items()}


def _instances(pattern: str, blocks: int) -> list[str]:
    """Concrete keys of one rename pattern: block numbers 0..blocks-1, weight and bias / scale."""
    template = pattern.replace("\\.", ".")
    leaves = ["weight", "bias"] if "(weight|bias)" in template else [None]
    numbers = range(blocks) if "(\\d+)" in template else [None]
    keys = []
    for number in numbers:
        for leaf in leaves:
            key = template if number is None else template.replace("(\\d+)", str(number), 1)
            keys.append(key if leaf is None else key.replace("(weight|bias)", leaf))
    return keys
