"""Loading the weights of the PaCo-Reward judge: a merged judge folder, or a Qwen2.5-VL base
plus a peft LoRA adapter, from a local folder or a hub id (downloaded once into the Hugging
Face cache). The judge that scores (``LocalJudge``) is built on top of these weights by
``paco_core.reward.open_judge``; this module knows nothing of scoring.

Example:
    >>> weights = load_judge_model("X-GenGroup/PaCo-Reward-7B", dtype="bf16")  # doctest: +SKIP
    >>> weights = load_judge_model("Qwen/Qwen2.5-VL-7B-Instruct", lora="X-GenGroup/PaCo-Reward-7B-Lora")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paco_core.devices import resolve_device, resolve_dtype
from paco_core.errors import LoraError, ModelLoadError
from paco_core.models.hub import hub_snapshot
from paco_core.models.recent_cache import RecentCache
from paco_core.settings import JUDGE_CACHE_SIZE, judge_cache_size

logger = logging.getLogger(__name__)

JUDGE_MODEL_TYPE = "qwen2_5_vl"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class JudgeModel:
    """A loaded Qwen2.5-VL judge: the model (eval mode, no grad), its processor and a label.

    Attributes:
        model: ``Qwen2_5_VLForConditionalGeneration`` (LoRA merged, or a ``PeftModel``).
        processor: its ``AutoProcessor`` (tokenizer, image processor, chat template).
        name: the source, and `` + <lora>`` when an adapter was put on it.
    """

    model: Any
    processor: Any
    name: str


@dataclass(frozen=True)
class JudgeKey:
    """What makes two loaded judges the same: where from, which adapter, dtype, device, merge."""

    source: str
    lora: str | None
    dtype: str
    device: str
    merge_lora: bool


_LOADED: RecentCache[JudgeKey, JudgeModel] = RecentCache(
    "judge", JUDGE_CACHE_SIZE, judge_cache_size, lambda judge: judge.name
)
"""Cached judges, least recently used first; at most ``settings.judge_cache_size()``."""
_LOADED_LOCK = threading.Lock()


def load_judge_model(
    source: str | os.PathLike,
    *,
    lora: str | os.PathLike | None = None,
    dtype: str | None = None,
    device: str | None = None,
    merge_lora: bool = True,
) -> JudgeModel:
    """Load a Qwen2.5-VL judge (PaCo-Reward-7B or base + PaCo-Reward-7B-Lora).

    Args:
        source: a local model folder (config.json + safetensors + processor files) or a hub
            id (downloaded once into the Hugging Face cache).
        lora: a peft adapter folder (or hub id) trained on ``source``; None for a merged judge.
        dtype: "auto" / None (bf16 on a GPU, fp32 on the CPU), "bf16", "fp16" or "fp32".
        device: "cuda", "cuda:N", "cpu", "mps" or "auto" / None (the GPU when there is one).
        merge_lora: fold the adapter into the weights (faster scoring, same scores).

    Returns:
        The model, its processor and a label.
    """
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    folder = resolve_model_folder(source, what="judge")
    check_judge_config(folder)
    device_name = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device_name)
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(
            f"judge folder {folder}: cannot load its processor ({error}). The folder needs the tokenizer, "
            "chat template and preprocessor files of a Qwen2.5-VL model."
        ) from error
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            folder, dtype=torch_dtype, use_safetensors=True, device_map={"": device_name}
        )
    except Exception as error:  # transformers and safetensors raise many types for broken files
        raise ModelLoadError(
            f"judge folder {folder}: cannot load Qwen2.5-VL weights ({type(error).__name__}: {_first_line(error)}). "
            "Only .safetensors weights are read; a truncated or missing file means an interrupted download: "
            "download the folder again."
        ) from error
    if lora is not None:
        model = apply_judge_lora(model, lora, merge=merge_lora)
    model.eval().requires_grad_(False)
    name = str(source) if lora is None else f"{source} + {lora}"
    logger.info("loaded judge %s (%s, %s)", name, torch_dtype, device_name)
    return JudgeModel(model=model, processor=processor, name=name)


def cached_judge_model(
    source: str | os.PathLike,
    *,
    lora: str | os.PathLike | None = None,
    dtype: str | None = None,
    device: str | None = None,
    merge_lora: bool = True,
    keep_loaded: bool = True,
) -> JudgeModel:
    """``load_judge_model`` with a process-wide cache keyed by (source, lora, dtype, device, merge).

    Args:
        keep_loaded: keep the weights in the cache for the next call. False loads them fresh
            (or takes the cached ones) and removes them from the cache, so their memory is
            freed as soon as the caller drops them.
        Other arguments: as ``load_judge_model``.
    """
    device_name = resolve_device(device)
    key = JudgeKey(
        source=str(source),
        lora=None if lora is None else str(lora),
        dtype=str(resolve_dtype(dtype, device_name)).replace("torch.", ""),
        device=device_name,
        merge_lora=merge_lora,
    )
    with _LOADED_LOCK:
        _LOADED.trim()  # the size may have been lowered since the last load
        loaded = _LOADED.pop(key) if not keep_loaded else _LOADED.get(key)
        if loaded is None:
            loaded = load_judge_model(
                source, lora=lora, dtype=dtype, device=device_name, merge_lora=merge_lora
            )
        if keep_loaded:
            _LOADED.remember(key, loaded)
    return loaded


def release_judges() -> int:
    """Forget every cached judge; returns how many there were."""
    with _LOADED_LOCK:
        return len(_LOADED.clear())


def resolve_model_folder(source: str | os.PathLike, *, what: str) -> Path:
    """A local folder for ``source``: the folder itself, or the hub cache snapshot of a hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = str(source)
    if path.exists():
        raise ModelLoadError(f"{what} {text!r} is a file; give the model folder that holds config.json.")
    return hub_snapshot(text, what=what)


def check_judge_config(folder: Path) -> dict:
    """Raise ModelLoadError unless ``folder`` holds a Qwen2.5-VL model config; returns it."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = (
            " It holds model_index.json: that is a diffusers pipeline."
            if (folder / "model_index.json").is_file()
            else ""
        )
        if (folder / ADAPTER_CONFIG).is_file():
            hint = " It holds adapter_config.json: give it as the LoRA and its base model as the judge."
        raise ModelLoadError(f"{folder} is not a Qwen2.5-VL judge folder: it has no config.json.{hint}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read {config_file}: {error}.") from error
    model_type = config.get("model_type")
    if model_type != JUDGE_MODEL_TYPE:
        raise ModelLoadError(
            f"{folder} is not a Qwen2.5-VL judge: config.json has model_type {model_type!r}, expected "
            f"{JUDGE_MODEL_TYPE!r} (X-GenGroup/PaCo-Reward-7B or Qwen/Qwen2.5-VL-7B-Instruct)."
        )
    return config


def apply_judge_lora(model: Any, lora: str | os.PathLike, *, merge: bool = True) -> Any:
    """Put a peft LoRA adapter on the judge; every LoRA weight of the model must load.

    Args:
        model: the base ``Qwen2_5_VLForConditionalGeneration``.
        lora: the adapter folder (adapter_config.json + adapter_model.safetensors) or hub id.
        merge: merge the adapter into the base weights and return the plain model.

    Returns:
        The merged model, or the ``PeftModel`` when ``merge`` is False.
    """
    from peft import PeftConfig, PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = resolve_model_folder(lora, what="judge LoRA")
    if not (folder / ADAPTER_CONFIG).is_file():
        raise LoraError(f"{folder} is not a peft adapter folder: it has no {ADAPTER_CONFIG}.")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise LoraError(
            f"{folder} has no {ADAPTER_WEIGHTS}; only safetensors adapters are read (never pickled .bin files)."
        )
    config = _read_adapter_config(folder, PeftConfig)
    trained_on = config.base_model_name_or_path or "an unnamed base"
    try:
        state = current_judge_keys(load_file(folder / ADAPTER_WEIGHTS))
    except Exception as error:  # safetensors raises its own SafetensorError for a broken header
        raise LoraError(
            f"{folder / ADAPTER_WEIGHTS} is not a readable safetensors file ({_first_line(error)}). It is "
            "probably truncated or corrupt: download or save the adapter again."
        ) from error
    try:
        peft_model = PeftModel(model, config)
        result = set_peft_model_state_dict(peft_model, state, adapter_name="default")
    except (ValueError, RuntimeError, KeyError) as error:
        raise LoraError(
            f"LoRA {folder} does not fit this judge (it was trained on {trained_on}): {_first_line(error)}"
        ) from error
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing:
        expected = sum(1 for name, _ in peft_model.named_parameters() if "lora_" in name)
        raise LoraError(
            f"LoRA {folder} does not fit this judge (it was trained on {trained_on}): {len(missing)} of "
            f"{expected} LoRA weights of the model have no tensor in the file (e.g. {missing[0]}). Use the "
            "base model the adapter was trained on (Qwen/Qwen2.5-VL-7B-Instruct for PaCo-Reward-7B-Lora)."
        )
    return peft_model.merge_and_unload() if merge else peft_model


def _read_adapter_config(folder: Path, config_class):
    """The adapter's peft config, or LoraError naming a truncated or invalid adapter_config.json."""
    config_file = folder / ADAPTER_CONFIG
    try:
        json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LoraError(
            f"{config_file} is not valid JSON ({error}). It is probably truncated: download or save the adapter "
            "again."
        ) from error
    try:
        return config_class.from_pretrained(folder)
    except (ValueError, TypeError, KeyError) as error:
        raise LoraError(f"{config_file} is not a peft adapter config: {_first_line(error)}") from error


def current_judge_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Adapter keys in the current transformers layout of Qwen2.5-VL.

    Adapters saved with transformers 4.x (as the released PaCo-Reward-7B-Lora) name the
    text layers ``model.layers.N`` and the vision tower ``visual.``; transformers 5 names
    them ``model.language_model.layers.N`` and ``model.visual.``.
    """
    renamed = {}
    for key, tensor in state.items():
        key = _LEGACY_TEXT_KEY.sub("base_model.model.model.language_model.", key)
        key = _LEGACY_VISION_KEY.sub("base_model.model.model.visual.", key)
        renamed[key] = tensor
    return renamed


_LEGACY_TEXT_KEY = re.compile(r"^base_model\.model\.model\.(?!language_model\.|visual\.)")
_LEGACY_VISION_KEY = re.compile(r"^base_model\.model\.visual\.")


def _first_line(error: BaseException) -> str:
    """The telling line of a loading error (a size mismatch beats a generic header), shortened."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    telling = [line for line in lines if "size mismatch" in line or "not found" in line]
    chosen = (telling or lines or [type(error).__name__])[0]
    return chosen[:500]
