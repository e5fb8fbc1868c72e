"""Loading FLUX.1-dev, FLUX.1-Kontext-dev and Qwen-Image-Edit pipelines, with a cache.

A pipeline comes from a local diffusers folder (ComfyUI's ``models/diffusers``) or a hub id
(downloaded into the Hugging Face cache once, read from it offline). Its kind is read from ``model_index.json``. A FLUX
transformer may instead come from a single-file checkpoint (ComfyUI's
``models/diffusion_models``), the other components still from the diffusers folder.
Or the whole pipeline comes from ComfyUI's split files (``load_pipeline_from_files``, see
``paco_core.models.comfy_files``).

Example:
    >>> loaded = load_pipeline("models/diffusers/FLUX.1-dev")  # doctest: +SKIP
    >>> loaded.kind
    'flux'
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.devices import OFFLOAD_CHOICES, resolve_device, resolve_dtype
from paco_core.errors import InputError, ModelLoadError
from paco_core.families import all_families, family, family_of_pipeline_class
from paco_core.models.comfy_files import ComfyModelFiles, build_pipeline_from_files
from paco_core.models.hub import hub_snapshot
from paco_core.models.recent_cache import RecentCache
from paco_core.settings import PIPELINE_CACHE_SIZE, pipeline_cache_size

logger = logging.getLogger(__name__)


# Files that prove a component sub-folder is complete enough to load.
_COMPONENT_MARKERS = (
    "config.json",
    "scheduler_config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
)


@dataclass(frozen=True)
class AppliedLora:
    """One LoRA active on a pipeline view (see ``paco_core.models.lora``).

    Attributes:
        path: the LoRA file or peft folder.
        strength: multiplier of the LoRA's effect (1.0 = as trained).
        adapter_name: the diffusers adapter holding its weights inside the shared pipeline.
        num_keys: keys in the file that target a pipeline component.
        num_matched: keys whose module exists in the pipeline with the right shape.
        format: the file format that was read ("peft", "diffusers", "kohya").
    """

    path: str
    strength: float
    adapter_name: str
    num_keys: int
    num_matched: int
    format: str


@dataclass(frozen=True)
class LoadedPipeline:
    """A loaded diffusers pipeline and how it was loaded.

    Several views may share one ``pipe`` (one per graph branch): each carries its own
    ``loras``; ``paco_core.models.lora.lora_scope`` activates exactly those LoRAs for the
    duration of one call, under the pipe's lock.
    """

    pipe: Any
    kind: str
    source: str
    dtype: Any
    device: str
    offload: str
    transformer_file: str | None = None
    loras: tuple[AppliedLora, ...] = field(default=())
    keep_loaded: bool = True
    """False: callers (nodes, CLI) move the weights to the CPU after each run (``park_on_cpu``)."""

    @property
    def is_edit_model(self) -> bool:
        return family(self.kind).is_edit

    def with_loras(self, loras: tuple[AppliedLora, ...]) -> LoadedPipeline:
        """The same pipeline seen with another set of LoRAs (the pipe is shared)."""
        return replace(self, loras=tuple(loras))

    def describe(self) -> str:
        lora_text = ", ".join(f"{Path(lora.path).name}@{lora.strength:g}" for lora in self.loras)
        return f"{self.kind} from {self.source} ({self.dtype}, {self.device}, offload={self.offload})" + (
            f" + LoRA {lora_text}" if lora_text else ""
        )


_CACHE: RecentCache[tuple, LoadedPipeline] = RecentCache(
    "pipeline", PIPELINE_CACHE_SIZE, pipeline_cache_size, LoadedPipeline.describe
)
"""Loaded pipelines, least recently used first; at most ``settings.pipeline_cache_size()``."""
_CACHE_LOCK = threading.Lock()


def clear_pipeline_cache() -> None:
    """Forget every cached pipeline (their memory is freed once no view holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def release_pipelines() -> int:
    """Move every cached pipeline's weights off the GPU and forget them (ComfyUI's "unload
    models"); a view still held elsewhere moves back to its device on its next run.

    Returns:
        How many pipelines were cached.
    """
    with _CACHE_LOCK:
        released = _CACHE.clear()
    for loaded in released:
        park_on_cpu(loaded)
    return len(released)


def read_model_index(source: str | os.PathLike) -> tuple[Path, dict]:
    """Find and parse ``model_index.json`` of a local folder or a hub id.

    Returns:
        (folder, parsed model_index).
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        index_file = folder / "model_index.json"
        if not index_file.is_file():
            raise ModelLoadError(
                f"{folder} is not a diffusers pipeline folder: model_index.json is missing there. "
                "Point at the folder that holds model_index.json (e.g. models/diffusers/FLUX.1-dev), "
                "not at one of its sub-folders or a single weights file."
            )
    elif folder.exists():
        raise ModelLoadError(
            f"{folder} is a file, not a diffusers pipeline folder. For a single-file FLUX transformer "
            "pass it as transformer_file together with a diffusers folder for the other components."
        )
    else:
        folder = hub_snapshot(
            str(source),
            what="model",
            hint="Give the path of a diffusers folder (one that holds model_index.json).",
            allow_patterns=["model_index.json"],
        )
        index_file = folder / "model_index.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read {index_file}: {error}. Re-download the model folder.") from error
    return folder, index


def detect_pipeline_kind(source: str | os.PathLike) -> str:
    """The pipeline kind of a diffusers folder, from ``model_index.json``'s ``_class_name``.

    Args:
        source: a local diffusers folder or a hub id in the local cache.

    Returns:
        The kind of the family whose pipeline class it is (see ``paco_core.families``).
    """
    folder, index = read_model_index(source)
    class_name = index.get("_class_name")
    found = family_of_pipeline_class(class_name)
    if found is None:
        allowed = ", ".join(f"{item.pipeline_class} ({item.kind})" for item in all_families())
        raise ModelLoadError(
            f"{folder}/model_index.json names pipeline class {class_name!r}, which this pack does not "
            f"run. Supported: {allowed}."
        )
    if (folder / "model_index.json").is_file() and Path(source).expanduser().is_dir():
        check_components(folder, index)
    return found.kind


def check_components(folder: Path, index: dict) -> None:
    """Raise if a component listed in ``model_index.json`` has no loadable sub-folder."""
    missing: list[str] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/ (folder absent)")
        elif not any((sub / marker).is_file() for marker in _COMPONENT_MARKERS):
            missing.append(f"{name}/ (no config file)")
        elif name in ("transformer", "vae", "text_encoder", "text_encoder_2") and not _has_weights(sub):
            missing.append(f"{name}/ (no .safetensors weights)")
    if missing:
        raise ModelLoadError(
            f"model folder {folder} is incomplete: missing {', '.join(missing)}. "
            "The download was probably interrupted; download the whole folder again."
        )


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json"))


LOAD_STEPS = 3
"""Progress steps of ``load_pipeline``: source checked, weights read, placed on the device."""


def load_pipeline(
    source: str | os.PathLike,
    *,
    dtype: Any = None,
    device: Any = None,
    offload: str = "none",
    transformer_file: str | os.PathLike | None = None,
    hooks: Hooks = NO_HOOKS,
) -> LoadedPipeline:
    """Load (or take from the cache) a pipeline ready to run.

    Args:
        source: diffusers folder (holding model_index.json) or a hub id (downloaded once, then cached).
        dtype: "auto" / None (bf16 on GPU, fp32 on CPU), "bf16", "fp16", "fp32" or a torch dtype.
        device: "auto" / None, "cpu", "cuda", "cuda:1", ...
        offload: "none" (all on the device), "model" (one component at a time on the GPU)
            or "sequential" (layer by layer: least memory, slowest). GPU only.
        transformer_file: a single-file FLUX transformer (.safetensors) replacing the folder's.
        hooks: progress over 3 steps (source checked, weights read, placed on the device;
            a cached pipeline reports all 3 at once) and cancel checks between them.

    Returns:
        LoadedPipeline; the same object for the same arguments while it is cached.
    """
    device_name, torch_dtype = _resolve_placement(dtype, device, offload)
    kind = detect_pipeline_kind(source)
    folder, _ = read_model_index(source)
    # A local folder loads from its path; a hub id through the hub cache (offline-safe).
    location = str(folder.resolve()) if Path(source).expanduser().is_dir() else str(source)
    single_file = _check_transformer_file(transformer_file, kind)
    key = (location, str(torch_dtype), device_name, offload, single_file)
    hooks.step(1, LOAD_STEPS)
    return _load_through_cache(
        key,
        lambda: (_build_pipeline(location, kind, torch_dtype, single_file), kind),
        source=str(source),
        dtype=torch_dtype,
        device=device_name,
        offload=offload,
        transformer_file=single_file,
        hooks=hooks,
    )


def _resolve_placement(dtype: Any, device: Any, offload: str) -> tuple[str, Any]:
    """(device name, torch dtype) for a load, or InputError for an unknown offload or offload on the CPU."""
    if offload not in OFFLOAD_CHOICES:
        raise InputError(f"offload should be one of {', '.join(OFFLOAD_CHOICES)}, got {offload!r}.")
    device_name = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device_name)
    if offload != "none" and device_name == "cpu":
        raise InputError(
            f"offload={offload!r} moves components between the CPU and a GPU, but the device is cpu. "
            "Use offload='none' on the CPU."
        )
    return device_name, torch_dtype


def _load_through_cache(
    key: tuple, build, *, source, dtype, device, offload, transformer_file, hooks
) -> LoadedPipeline:
    """The cached pipeline of ``key``, else ``build()`` -> (pipe, kind), placed and remembered."""
    with _CACHE_LOCK:
        _CACHE.trim()  # the size may have been lowered since the last load
        cached = _CACHE.get(key)
        if cached is not None:
            hooks.step(LOAD_STEPS, LOAD_STEPS)
            return cached
        pipe, kind = build()
        pipe.set_progress_bar_config(disable=True)  # progress goes through paco_core.callbacks.Hooks
        hooks.step(2, LOAD_STEPS)
        _place(pipe, device, offload)
        hooks.progress(LOAD_STEPS, LOAD_STEPS)
        loaded = LoadedPipeline(
            pipe=pipe,
            kind=kind,
            source=source,
            dtype=dtype,
            device=device,
            offload=offload,
            transformer_file=transformer_file,
        )
        _CACHE.remember(key, loaded)
    logger.info("loaded %s", loaded.describe())
    return loaded


def open_pipeline(
    model: str | os.PathLike | None = None,
    *,
    transformer_file: str | os.PathLike | None = None,
    text_encoder_files=(),
    vae_file: str | os.PathLike | None = None,
    checkpoint_file: str | os.PathLike | None = None,
    kind: str = "auto",
    config_folder: str | None = None,
    comfyui_dir: str | None = None,
    dtype: Any = None,
    device: Any = None,
    offload: str = "none",
    hooks: Hooks = NO_HOOKS,
) -> LoadedPipeline:
    """The one door used by the CLI, the nodes and the trainer: a diffusers folder (``model``, optionally
    with a single-file FLUX ``transformer_file``), or ComfyUI's files without ``model``.

    Raises:
        InputError: both or neither of the two ways were given.
    """
    split_files = [str(p) for p in (*text_encoder_files, vae_file, checkpoint_file) if p]
    if model:
        if split_files:
            raise InputError(
                "text encoder, VAE and checkpoint files replace the diffusers folder: give either a model folder "
                f"or ComfyUI's files, not both (got the folder {model} and {', '.join(split_files)})."
            )
        return load_pipeline(
            model, dtype=dtype, device=device, offload=offload, transformer_file=transformer_file, hooks=hooks
        )
    if not (transformer_file or checkpoint_file):
        raise InputError(
            "no model given: name a diffusers folder (--model), or ComfyUI's files: a transformer file with its "
            "text encoder files and VAE file, or an all-in-one checkpoint file."
        )
    files = ComfyModelFiles(
        transformer=str(transformer_file) if transformer_file else None,
        text_encoders=tuple(str(p) for p in text_encoder_files if p),
        vae=str(vae_file) if vae_file else None,
        checkpoint=str(checkpoint_file) if checkpoint_file else None,
        kind=kind or "auto",
        config_folder=config_folder or None,
        comfyui_dir=comfyui_dir or None,
    )
    return load_pipeline_from_files(files, dtype=dtype, device=device, offload=offload, hooks=hooks)


def load_pipeline_from_files(
    files,
    *,
    dtype: Any = None,
    device: Any = None,
    offload: str = "none",
    hooks: Hooks = NO_HOOKS,
) -> LoadedPipeline:
    """Load (or take from the cache) a pipeline assembled from ComfyUI's split model files.

    Args:
        files: a ``paco_core.models.comfy_files.ComfyModelFiles`` (transformer, text encoders,
            VAE or an all-in-one checkpoint, the kind, config and tokenizer folders).
        dtype, device, offload, hooks: as for :func:`load_pipeline`; fp8 files are upcast to ``dtype``.

    Returns:
        LoadedPipeline whose ``source`` names the files; cached while the files are unchanged.
    """
    device_name, torch_dtype = _resolve_placement(dtype, device, offload)
    key = (files.cache_key(), str(torch_dtype), device_name, offload)
    hooks.step(1, LOAD_STEPS)
    return _load_through_cache(
        key,
        lambda: build_pipeline_from_files(files, torch_dtype),
        source=files.describe(),
        dtype=torch_dtype,
        device=device_name,
        offload=offload,
        transformer_file=str(Path(files.transformer or files.checkpoint).resolve()),
        hooks=hooks,
    )


def _check_transformer_file(transformer_file: str | os.PathLike | None, kind: str) -> str | None:
    if transformer_file is None or str(transformer_file) == "":
        return None
    path = Path(transformer_file).expanduser()
    if not family(kind).architecture.single_file_transformer:
        supported = " and ".join(
            sorted(
                {
                    item.architecture.title
                    for item in all_families()
                    if item.architecture.single_file_transformer
                }
            )
        )
        raise InputError(
            f"a single-file transformer is supported for {supported} pipelines only, but the folder holds a {kind} "
            "pipeline. Leave the transformer file empty."
        )
    if not path.is_file():
        raise ModelLoadError(f"transformer file {path} does not exist.")
    if path.suffix != ".safetensors":
        raise ModelLoadError(
            f"transformer file {path} is not a .safetensors file; only safetensors weights are loaded "
            "(pickled .ckpt/.pt files can run code when opened)."
        )
    return str(path.resolve())


def _pipeline_class(kind: str):
    import diffusers

    class_name = family(kind).pipeline_class
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise ModelLoadError(
            f"the installed diffusers {diffusers.__version__} has no {class_name}; upgrade diffusers to run "
            f"{kind} models."
        )
    return cls


def _build_pipeline(location: str, kind: str, torch_dtype, transformer_file: str | None):
    extra: dict[str, Any] = {}
    if transformer_file is not None:
        from paco_core.models.flux_single_file import load_single_file_transformer

        extra["transformer"] = load_single_file_transformer(location, transformer_file, torch_dtype)
    try:
        return _pipeline_class(kind).from_pretrained(
            location, dtype=torch_dtype, use_safetensors=True, **extra
        )
    except ModelLoadError:
        raise
    except Exception as error:  # diffusers raises many types for broken folders
        raise ModelLoadError(
            f"could not load the {kind} pipeline from {location}: {type(error).__name__}: {error}"
        ) from error


def _place(pipe, device: str, offload: str) -> None:
    if offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


def execution_device(loaded: LoadedPipeline):
    """The torch device the pipeline computes on.

    Without offload every component sits on one device (``pipe.to`` moves them together), so
    the transformer's first weight tells where: also right after ``park_on_cpu``. diffusers'
    ``pipe._execution_device`` finds the same answer by walking every module of every
    component (about 1 ms on the tiny FLUX, more on a real one), so it is asked only when
    offload hooks decide where computation happens.
    """
    if loaded.offload == "none":
        return next(loaded.pipe.transformer.parameters()).device
    return loaded.pipe._execution_device


def move_to_device(loaded: LoadedPipeline) -> None:
    """Put a parked pipeline back on its device (no-op when offload manages placement)."""
    if loaded.offload == "none":
        loaded.pipe.to(loaded.device)


def park_on_cpu(loaded: LoadedPipeline) -> None:
    """Move the pipeline's weights to the CPU to give GPU memory back (keep-loaded off)."""
    if loaded.offload == "none" and loaded.device != "cpu":
        loaded.pipe.to("cpu")
