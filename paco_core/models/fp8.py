"""fp8 weights as ComfyUI stores them, upcast to a compute dtype.

Three forms are read:
- plain fp8 (``float8_e4m3fn`` / ``float8_e5m2`` tensors, no scale): the value is the weight;
- ComfyUI's older "scaled fp8" files: a ``scaled_fp8`` marker tensor and, per layer,
  ``<layer>.scale_weight`` (and ``<layer>.scale_input``, only used by fp8 matmuls);
- the newer quantized layout: ``<layer>.weight_scale`` (and ``<layer>.input_scale``,
  ``<layer>.comfy_quant`` describing the format).
A scaled weight is ``fp8 value x scale`` (per tensor or per output row). Block-scaled
formats (NVFP4, MXFP8) are refused with a message.
"""

from __future__ import annotations

from paco_core.errors import ModelLoadError

SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant", ".weight_scale_2", ".pre_quant_scale")
MARKER_KEYS = ("scaled_fp8",)


def dequantize(state_dict: dict, dtype, source: str) -> dict:
    """Every weight of ``state_dict`` in ``dtype``, fp8 ones multiplied by their scale.

    Args:
        state_dict: tensors as read from the file (scale tensors included).
        dtype: the compute dtype (e.g. torch.float32, torch.bfloat16).
        source: the file, for messages.

    Returns:
        A new dict without the scale, input-scale and marker tensors.
    """
    import torch

    scales = {key.rsplit(".", 1)[0]: key for key in state_dict if key.endswith(SCALE_SUFFIXES)}
    result = {}
    for key, tensor in state_dict.items():
        if key in MARKER_KEYS or key.endswith(SCALE_SUFFIXES) or key.endswith(DROPPED_SUFFIXES):
            continue
        layer = key[: -len(".weight")] if key.endswith(".weight") else None
        if layer is not None and layer in scales:
            scale = state_dict[scales[layer]].to(torch.float32)
            if scale.numel() not in (1, tensor.shape[0]) and scale.dim() > 0:
                raise ModelLoadError(
                    f"{source}: {key} has a block-wise scale of shape {tuple(scale.shape)} (NVFP4/MXFP8 "
                    "quantization), which this loader does not read. Use the bf16, fp16 or fp8 (e4m3fn, "
                    "per-tensor scaled) release of this model."
                )
            if scale.numel() > 1:
                scale = scale.reshape(-1, *([1] * (tensor.dim() - 1)))
            tensor = tensor.to(torch.float32) * scale
        elif "float4" in str(tensor.dtype) or tensor.dtype == torch.uint8 and key.endswith(".weight"):
            raise ModelLoadError(
                f"{source}: {key} is stored as {tensor.dtype} (4-bit or packed quantization), which this loader "
                "does not read. Use the bf16, fp16 or fp8 release of this model."
            )
        result[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return result
