"""VAE weights in the original layouts ComfyUI keeps in ``models/vae``, and diffusers names.

- FLUX's ``ae.safetensors`` is in the latent-diffusion (LDM) layout
  (``encoder.down.0.block.0.norm1.weight``, ``decoder.up.3.upsample.conv.weight``, 1x1-conv
  attention). Reading uses diffusers' own ``convert_ldm_vae_checkpoint``; writing (used by
  the tiny-model factory) is :func:`ldm_vae_from_diffusers`, checked against it by the tests.
- Qwen-Image's ``qwen_image_vae.safetensors`` is in the Wan 2.1 VAE layout
  (``encoder.downsamples.0.residual.0.gamma``, ``decoder.upsamples.3.resample.1.weight``,
  ``conv1``/``conv2`` for the quant convs). diffusers' Wan converter assumes two residual
  blocks per level, so both directions here take the count from the config.
"""

from __future__ import annotations

import re

from paco_core.errors import ModelLoadError

# ---- FLUX ae (LDM layout) -------------------------------------------------------------

_LDM_RESNET = {"conv_shortcut": "nin_shortcut"}
_LDM_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def ldm_vae_from_diffusers(state_dict: dict, num_levels: int) -> dict:
    """A diffusers AutoencoderKL state dict in FLUX's original ``ae`` layout."""
    out = {}
    for key, tensor in state_dict.items():
        new = _ldm_key(key, num_levels)
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", new) and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]
        out[new] = tensor.contiguous()
    return out


def _ldm_key(key: str, num_levels: int) -> str:
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return key  # quant_conv / post_quant_conv keep their names
    for old, new in (("conv_norm_out", "norm_out"),):
        rest = rest.replace(old, new)
    if match := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
        rest = f"down.{match[1]}.block.{match[2]}.{_LDM_RESNET.get(match[3].rsplit('.', 1)[0], match[3].rsplit('.', 1)[0])}.{match[3].rsplit('.', 1)[1]}"
    elif match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", rest):
        rest = f"down.{match[1]}.downsample.conv.{match[2]}"
    elif match := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
        layer, leaf = match[3].rsplit(".", 1)
        rest = f"up.{num_levels - 1 - int(match[1])}.block.{match[2]}.{_LDM_RESNET.get(layer, layer)}.{leaf}"
    elif match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", rest):
        rest = f"up.{num_levels - 1 - int(match[1])}.upsample.conv.{match[2]}"
    elif match := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
        layer, leaf = match[2].rsplit(".", 1)
        rest = f"mid.block_{int(match[1]) + 1}.{_LDM_RESNET.get(layer, layer)}.{leaf}"
    elif match := re.match(r"mid_block\.attentions\.0\.(.*)\.(weight|bias)", rest):
        rest = f"mid.attn_1.{_LDM_ATTENTION[match[1]]}.{match[2]}"
    return f"{part}.{rest}"


def ldm_vae_to_diffusers(state_dict: dict, config: dict, source: str) -> dict:
    """FLUX's original ``ae`` weights in diffusers AutoencoderKL names (diffusers' converter)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    if not any(key.startswith("encoder.down.") for key in state_dict):
        raise ModelLoadError(
            f"{source} is not a VAE in FLUX's original layout (no encoder.down.* weights). For FLUX choose "
            "ae.safetensors (models/vae); for Qwen-Image choose qwen_image_vae.safetensors."
        )
    return convert_ldm_vae_checkpoint(dict(state_dict), dict(config))


# ---- Qwen-Image VAE (Wan 2.1 layout) --------------------------------------------------

_WAN_RESIDUAL = {
    "norm1.gamma": "residual.0.gamma",
    "conv1": "residual.2",
    "norm2.gamma": "residual.3.gamma",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}


def _wan_leaf(rest: str) -> str:
    """``norm1.gamma`` -> ``residual.0.gamma``, ``conv1.weight`` -> ``residual.2.weight`` ..."""
    if rest in _WAN_RESIDUAL:
        return _WAN_RESIDUAL[rest]
    layer, _, leaf = rest.rpartition(".")
    if layer in _WAN_RESIDUAL:
        return f"{_WAN_RESIDUAL[layer]}.{leaf}"
    return rest


def wan_vae_key_pairs(diffusers_keys, num_res_blocks: int) -> dict:
    """diffusers AutoencoderKLQwenImage key -> Wan original key, for the keys given."""
    pairs = {}
    per_level = num_res_blocks + 2  # resnets of a decoder level, then its upsampler
    for key in diffusers_keys:
        new = key
        if key.startswith("quant_conv."):
            new = "conv1." + key.removeprefix("quant_conv.")
        elif key.startswith("post_quant_conv."):
            new = "conv2." + key.removeprefix("post_quant_conv.")
        elif match := re.fullmatch(r"(encoder|decoder)\.conv_in\.(.*)", key):
            new = f"{match[1]}.conv1.{match[2]}"
        elif match := re.fullmatch(r"(encoder|decoder)\.norm_out\.gamma", key):
            new = f"{match[1]}.head.0.gamma"
        elif match := re.fullmatch(r"(encoder|decoder)\.conv_out\.(.*)", key):
            new = f"{match[1]}.head.2.{match[2]}"
        elif match := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)", key):
            new = f"{match[1]}.middle.{2 * int(match[2])}.{_wan_leaf(match[3])}"
        elif match := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            new = f"{match[1]}.middle.1.{match[2]}"
        elif match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
            new = f"encoder.downsamples.{match[1]}.{_wan_leaf(match[2])}"
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.upsamples.{int(match[1]) * per_level + int(match[2])}.{_wan_leaf(match[3])}"
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.upsamples.{int(match[1]) * per_level + num_res_blocks + 1}.{match[2]}"
        pairs[key] = new
    return pairs


def wan_vae_from_diffusers(state_dict: dict, num_res_blocks: int) -> dict:
    pairs = wan_vae_key_pairs(state_dict, num_res_blocks)
    return {pairs[key]: tensor.contiguous() for key, tensor in state_dict.items()}


def wan_vae_to_diffusers(state_dict: dict, expected_keys, num_res_blocks: int, source: str) -> dict:
    """Qwen-Image VAE weights (Wan layout) in diffusers names; ``expected_keys`` are the model's."""
    if not any(key.startswith("encoder.downsamples.") for key in state_dict):
        raise ModelLoadError(
            f"{source} is not a Qwen-Image VAE in the Wan layout (no encoder.downsamples.* weights). For "
            "Qwen-Image-Edit choose qwen_image_vae.safetensors (models/vae); ae.safetensors is FLUX's VAE."
        )
    to_original = wan_vae_key_pairs(expected_keys, num_res_blocks)
    to_diffusers = {original: key for key, original in to_original.items()}
    return {to_diffusers.get(key, key): tensor for key, tensor in state_dict.items()}
