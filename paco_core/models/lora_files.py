"""Reading LoRA files in every common format, normalised to one form.

Formats: a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``,
keys ``base_model.model.<module>.lora_A.weight``), a diffusers safetensors file
(``transformer.<module>.lora_A.weight``, optional ``<module>.alpha``) and a kohya file
(``lora_unet_..._lora_down.weight``, converted by diffusers' own converters). The result
always has diffusers module names with a component prefix and the scale (alpha / rank)
folded into ``lora_B``, so strength 1.0 means "as trained" whatever the source.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paco_core.errors import LoraError
from paco_core.families import architectures, family

logger = logging.getLogger(__name__)

COMPONENT_PREFIXES = ("transformer.", "text_encoder.", "text_encoder_2.")
PEFT_PREFIX = "base_model.model."
LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")
ARCHITECTURE_METADATA_KEYS = ("paco.architecture", "paco.family")
"""Metadata keys naming the architecture in files this pack saved (``paco.family``: files saved before the rename to "architecture")."""


@dataclass
class LoraFile:
    """A LoRA read from disk, normalised.

    Attributes:
        path: where it was read from.
        format: "peft", "diffusers" or "kohya".
        state_dict: ``<component>.<module>.lora_A.weight`` / ``.lora_B.weight`` tensors,
            scale folded into lora_B.
        rank: largest LoRA rank found.
        alpha: the alpha the file declared (None when it declared none).
        architecture: the transformer architecture's name (``paco_core.families.Architecture``), or
            None when neither the keys nor the metadata tell.
    """

    path: str
    format: str
    state_dict: dict[str, Any]
    rank: int
    alpha: float | None
    architecture: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_keys(self) -> int:
        return len(self.state_dict)


def read_lora(path: str | os.PathLike) -> LoraFile:
    """Read a LoRA in peft, diffusers or kohya format (safetensors only).

    Args:
        path: a ``.safetensors`` file, or a peft adapter folder.

    Returns:
        LoraFile with a normalised state dict.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and len(_safetensors_in(path)) != 1:
            return _read_peft_folder(path)  # a peft adapter folder, or says what it lacks
        return read_lora(_the_lora_file_in(path))
    if not path.is_file():
        raise LoraError(f"LoRA {path} does not exist. Check the path (or the file name in models/loras).")
    if path.suffix != ".safetensors":
        raise LoraError(
            f"LoRA {path} is not a .safetensors file; only safetensors LoRAs are read (pickled "
            ".pt/.ckpt/.bin files can run code when opened). Convert it to safetensors first."
        )
    tensors, metadata = _load_safetensors(path)
    if any(key.startswith(PEFT_PREFIX) for key in tensors):
        sibling_config = path.parent / "adapter_config.json"
        config = (
            _read_json(sibling_config) if sibling_config.is_file() else _peft_config_from_metadata(metadata)
        )
        if not config:
            logger.warning(
                "LoRA %s has peft keys but no adapter_config.json beside it: its alpha is unknown, so scale 1.0 "
                "is used (as ComfyUI does). Keep adapter_config.json next to it for the trained scale.",
                path,
            )
        return _normalise_peft(path, tensors, config, metadata)
    if any(
        key.endswith((".lora_down.weight", ".lora_up.weight")) or key.startswith("lora_unet_")
        for key in tensors
    ):
        return _normalise_kohya(path, tensors, metadata)
    return _normalise_diffusers(path, tensors, metadata)


def _load_safetensors(path: Path) -> tuple[dict, dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise LoraError(
            f"LoRA {path} is not a readable safetensors file ({error}). It is probably truncated or "
            "corrupt: download or save it again."
        ) from error
    if not tensors:
        raise LoraError(f"LoRA {path} holds no tensors.")
    return tensors, metadata


def is_lora_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder ``read_lora`` takes: a peft adapter folder, or a downloaded
    LoRA repository holding exactly one ``.safetensors`` file (e.g. X-GenGroup/PaCo-FLUX.1-dev-Lora)."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    if (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file():
        return True
    return len(_safetensors_in(folder)) == 1


def lora_weights_file(folder: Path) -> Path | None:
    """The weights file ``read_lora`` reads for a LoRA folder (None: the folder is no LoRA)."""
    peft = folder / "adapter_model.safetensors"
    if peft.is_file():
        return peft
    found = _safetensors_in(folder)
    return found[0] if len(found) == 1 else None


def _safetensors_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())
    except OSError:
        return []


def _the_lora_file_in(folder: Path) -> Path:
    """The one ``.safetensors`` file of a downloaded LoRA repository folder."""
    found = _safetensors_in(folder)
    if len(found) == 1:
        return found[0]
    if not found:
        raise LoraError(
            f"LoRA folder {folder} holds no .safetensors file. Download the LoRA "
            "repository into it (docs/model-files.md) or choose the .safetensors file itself."
        )
    names = ", ".join(p.name for p in found)
    raise LoraError(f"LoRA folder {folder} holds several .safetensors files ({names}): choose one of them.")


def _read_peft_folder(folder: Path) -> LoraFile:
    config_file = folder / "adapter_config.json"
    weights_file = folder / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise LoraError(
            f"{folder} is not a peft adapter folder: it needs adapter_config.json and "
            f"adapter_model.safetensors, found {found}."
        )
    config = _read_json(config_file)
    tensors, metadata = _load_safetensors(weights_file)
    return _normalise_peft(folder, tensors, config, metadata)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LoraError(f"{path} is not valid JSON ({error}).") from error


def _peft_config_from_metadata(metadata: dict[str, str]) -> dict:
    for key in ("lora_adapter_metadata", "transformer_lora_adapter_metadata"):
        if key in metadata:
            try:
                return json.loads(metadata[key])
            except json.JSONDecodeError:
                break
    return {}


def _normalise_peft(path: Path, tensors: dict, config: dict, metadata: dict[str, str]) -> LoraFile:
    """``base_model.model.<module>.lora_A.weight`` -> ``transformer.<module>...``, scale folded."""
    renamed: dict[str, Any] = {}
    for key, tensor in tensors.items():
        name = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        name = name.replace(".lora_A.default.weight", ".lora_A.weight").replace(
            ".lora_B.default.weight", ".lora_B.weight"
        )
        renamed[_with_component(name)] = tensor
    rank = int(config.get("r", 0)) or None
    alpha = config.get("lora_alpha")
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}

    def scale_of(module: str, module_rank: int) -> float:
        r = _pattern_value(rank_pattern, module, rank or module_rank)
        a = _pattern_value(alpha_pattern, module, alpha if alpha is not None else r)
        return float(a) / float(r)

    folded = _fold_scales(renamed, scale_of)
    return _finish(path, "peft", folded, alpha, metadata)


def _pattern_value(pattern: dict, module: str, default):
    bare = module.split(".", 1)[1] if module.startswith(COMPONENT_PREFIXES) else module
    for key, value in pattern.items():
        if bare == key or bare.endswith("." + key):
            return value
    return default


def _normalise_diffusers(path: Path, tensors: dict, metadata: dict[str, str]) -> LoraFile:
    alphas = {key[: -len(".alpha")]: float(value) for key, value in tensors.items() if key.endswith(".alpha")}
    weights = {}
    for key, tensor in tensors.items():
        if key.endswith(".alpha"):
            continue
        if not key.endswith(LORA_SUFFIXES):
            raise LoraError(
                f"LoRA {path}: key {key!r} is neither lora_A/lora_B (diffusers, peft) nor lora_down/lora_up "
                "(kohya); this format is not supported."
            )
        weights[_with_component(key)] = tensor
    bare_alphas = {_with_component(module): value for module, value in alphas.items()}

    def scale_of(module: str, module_rank: int) -> float:
        return bare_alphas[module] / module_rank if module in bare_alphas else 1.0

    declared = next(iter(alphas.values())) if alphas else None
    return _finish(path, "diffusers", _fold_scales(weights, scale_of), declared, metadata)


def _normalise_kohya(path: Path, tensors: dict, metadata: dict[str, str]) -> LoraFile:
    """Convert with diffusers' own kohya converters (they fold alpha in)."""
    from diffusers.loaders.lora_pipeline import FluxLoraLoaderMixin, QwenImageLoraLoaderMixin

    is_flux = any("double_blocks" in key or "single_blocks" in key for key in tensors)
    mixin = FluxLoraLoaderMixin if is_flux else QwenImageLoraLoaderMixin
    alpha_values = [float(value) for key, value in tensors.items() if key.endswith(".alpha")]
    try:
        converted = mixin.lora_state_dict(dict(tensors))
    except Exception as error:
        raise LoraError(f"LoRA {path} looks like a kohya file but could not be converted: {error}") from error
    state_dict = converted[0] if isinstance(converted, tuple) else converted
    state_dict = {
        _with_component(key): value for key, value in state_dict.items() if not key.endswith(".alpha")
    }
    return _finish(path, "kohya", state_dict, alpha_values[0] if alpha_values else None, metadata)


COMFY_TRANSFORMER_PREFIX = "diffusion_model."
"""The transformer prefix of LoRAs written for ComfyUI by other trainers (diffusers names below it)."""


def _with_component(key: str) -> str:
    if key.startswith(COMPONENT_PREFIXES):
        return key
    return "transformer." + key.removeprefix(COMFY_TRANSFORMER_PREFIX)


def _fold_scales(weights: dict, scale_of) -> dict:
    """Multiply each lora_B by its module's scale (so scale 1 is right everywhere)."""
    folded = dict(weights)
    for key, tensor in weights.items():
        if not key.endswith(".lora_B.weight"):
            continue
        module = key[: -len(".lora_B.weight")]
        down = weights.get(module + ".lora_A.weight")
        if down is None:
            raise LoraError(f"LoRA key {key} has no matching {module}.lora_A.weight; the file is incomplete.")
        scale = scale_of(module, int(down.shape[0]))
        if scale != 1.0:
            folded[key] = (tensor.float() * scale).to(tensor.dtype)
    return folded


def _finish(path: Path, fmt: str, state_dict: dict, alpha, metadata: dict[str, str]) -> LoraFile:
    if not state_dict:
        raise LoraError(f"LoRA {path} holds no LoRA weights.")
    check_finite(path, state_dict)
    ranks = [int(t.shape[0]) for k, t in state_dict.items() if k.endswith(".lora_A.weight")]
    return LoraFile(
        path=str(path),
        format=fmt,
        state_dict=state_dict,
        rank=max(ranks) if ranks else 0,
        alpha=float(alpha) if alpha is not None else None,
        architecture=detect_architecture(state_dict.keys()) or _architecture_in_metadata(metadata),
        metadata=metadata,
    )


def check_finite(path: Path | str, state_dict: dict) -> None:
    """Refuse a LoRA holding NaN or infinite values: applied, it turns every image to noise
    (or black), whatever the strength."""
    import torch

    bad = [key for key, tensor in state_dict.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise LoraError(
            f"LoRA {path} holds non-finite values (NaN or infinity) in {bad[0]}"
            + (f" and {len(bad) - 1} more tensors" if len(bad) > 1 else "")
            + ". The file is broken (often a diverged training run): use an earlier checkpoint."
        )


def architecture_title(name: str) -> str:
    """The display name of an architecture ("FLUX")."""
    return next((item.title for item in architectures() if item.name == name), name)


def detect_architecture(keys) -> str | None:
    """The architecture whose LoRA markers a LoRA's module names hold (FLUX: ``ff.net``, Qwen-Image:
    ``img_mlp``), else None (none, or several)."""
    keys = list(keys)
    found = [item.name for item in architectures() if any(m in k for k in keys for m in item.lora_markers)]
    return found[0] if len(found) == 1 else None


def _architecture_in_metadata(metadata: dict[str, str]) -> str | None:
    """The architecture a file saved by this pack declares (new or old metadata key), else None."""
    for key in ARCHITECTURE_METADATA_KEYS:
        if metadata.get(key) in {item.name for item in architectures()}:
            return metadata[key]
    return None


def architecture_of_kind(kind: str) -> str:
    """The name of a pipeline kind's transformer architecture (FLUX.1-dev and Kontext share one)."""
    return family(kind).architecture.name
