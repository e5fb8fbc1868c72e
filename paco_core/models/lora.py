"""PaCo LoRAs on diffusers pipelines: read any common format, apply per branch, save.

Reading (``lora_files``): peft folders, diffusers and kohya safetensors, normalised to
diffusers names with the scale folded into ``lora_B`` (strength 1.0 = as trained).

Applying: each LoRA file is loaded once into the shared pipeline as a named diffusers
adapter. A pipeline *view* (``LoadedPipeline.loras``) lists which adapters a graph branch
uses and at what strength; ``lora_scope(view)`` takes the pipe's lock, activates exactly
those adapters for one call and disables them afterwards. So two branches on one base
pipeline never see each other's LoRAs, and changing a strength costs no reload.

Saving (``lora_save``): files with the same effect in diffusers and in ComfyUI's native
LoraLoader, for the trainer.

Example:
    >>> view = apply_loras(loaded, [LoraSpec("paco_t2is.safetensors", 0.8)])  # doctest: +SKIP
    >>> with lora_scope(view) as pipe:  # doctest: +SKIP
    ...     image = pipe(prompt="...").images[0]
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, LoraError
from paco_core.models.lora_files import (
    LoraFile,
    architecture_of_kind,
    architecture_title,
    lora_weights_file,
    read_lora,
)
from paco_core.models.lora_save import save_lora, save_peft_transformer_lora
from paco_core.models.pipelines import AppliedLora, LoadedPipeline

__all__ = [
    "LoraFile",
    "LoraMatch",
    "LoraSpec",
    "apply_loras",
    "lora_scope",
    "read_lora",
    "remove_loras",
    "save_lora",
    "save_peft_transformer_lora",
    "unload_all_loras",
]

logger = logging.getLogger(__name__)

MAX_LORA_STRENGTH = 4.0
"""Largest |strength| of one LoRA (the PaCo LoRA node's range); beyond it images are noise."""


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to apply: file or peft folder, and its strength (1.0 = as trained)."""

    path: str
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.strength, (int, float)) or not math.isfinite(self.strength):
            raise InputError(f"LoRA strength should be a finite number, got {self.strength!r}.")
        if abs(self.strength) > MAX_LORA_STRENGTH:
            raise InputError(
                f"LoRA strength should be between -{MAX_LORA_STRENGTH:g} and {MAX_LORA_STRENGTH:g} (the nodes' "
                f"range), got {self.strength:g} for {self.path}."
            )
        object.__setattr__(self, "path", str(self.path))

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """``FILE`` or ``FILE:STRENGTH`` (the CLI's ``--lora`` value)."""
        head, sep, tail = text.rpartition(":")
        if sep and head and not tail.startswith(("/", "\\")):
            try:
                strength = float(tail)
            except ValueError:
                strength = None  # a colon that is part of the path (e.g. C:\...)
            if strength is not None:
                return cls(head, strength)  # an out-of-range strength is an error, not part of the path
        return cls(text, 1.0)


@dataclass(frozen=True)
class LoraMatch:
    """How a LoRA's keys fit a pipeline: counts, and a few unmatched keys for messages."""

    num_keys: int
    num_matched: int
    unmatched: tuple[str, ...]


_PIPE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PIPE_ADAPTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def pipe_lock(pipe) -> threading.RLock:
    """The lock serialising calls (and adapter switches) on one shared pipeline."""
    with _REGISTRY_LOCK:
        lock = _PIPE_LOCKS.get(pipe)
        if lock is None:
            lock = _PIPE_LOCKS[pipe] = threading.RLock()
        return lock


def _adapters_of(pipe) -> dict[str, AppliedLora]:
    with _REGISTRY_LOCK:
        return _PIPE_ADAPTERS.setdefault(pipe, {})


def adapter_name_for(path: str | os.PathLike) -> str:
    """A stable adapter name for one version of a LoRA file (path, size, mtime)."""
    path = Path(path).expanduser().resolve()
    target = lora_weights_file(path) if path.is_dir() else path
    if target is None or not target.is_file():
        read_lora(path)  # raises the LoraError that says what the folder or file lacks
    stat = target.stat()
    digest = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"paco_{digest}"


def match_keys(pipe, state_dict: dict) -> LoraMatch:
    """Count keys whose module exists in the pipeline with matching in/out features."""
    modules_by_component: dict[str, dict] = {}
    matched = 0
    unmatched: list[str] = []
    for key, tensor in state_dict.items():
        component, _, rest = key.partition(".")
        module_name = (
            rest[: -len(".lora_A.weight")]
            if key.endswith(".lora_A.weight")
            else rest[: -len(".lora_B.weight")]
        )
        if component not in modules_by_component:
            model = getattr(pipe, component, None)
            modules_by_component[component] = dict(model.named_modules()) if model is not None else {}
        module = modules_by_component[component].get(module_name)
        if module is not None and _shape_fits(module, key, tensor):
            matched += 1
        else:
            unmatched.append(key)
    return LoraMatch(num_keys=len(state_dict), num_matched=matched, unmatched=tuple(unmatched))


def _shape_fits(module, key: str, tensor) -> bool:
    weight = getattr(getattr(module, "base_layer", module), "weight", None)
    if weight is None or weight.dim() != 2:
        return False
    out_features, in_features = weight.shape
    if key.endswith(".lora_A.weight"):
        return tensor.dim() == 2 and tensor.shape[1] == in_features
    return tensor.dim() == 2 and tensor.shape[0] == out_features


def apply_loras(loaded: LoadedPipeline, specs: Sequence[LoraSpec]) -> LoadedPipeline:
    """A view of ``loaded`` with ``specs`` stacked on top of its LoRAs.

    The input view is not changed: other branches holding it keep their LoRAs. Each file
    is loaded into the shared pipeline once; applying it again (another strength, another
    branch) only records the strength. The same file stacked twice adds its strengths.

    Returns:
        The new view; ``view.loras`` reports per LoRA the matched/total key counts.
    """
    loras = list(loaded.loras)
    for spec in specs:
        applied = _load_adapter(loaded, spec)
        for index, existing in enumerate(loras):
            if existing.adapter_name == applied.adapter_name:
                loras[index] = _with_strength(existing, existing.strength + spec.strength)
                break
        else:
            loras.append(applied)
    return loaded.with_loras(tuple(loras))


def _with_strength(lora: AppliedLora, strength: float) -> AppliedLora:
    return replace(lora, strength=float(strength))


def _load_adapter(loaded: LoadedPipeline, spec: LoraSpec) -> AppliedLora:
    if not Path(spec.path).expanduser().exists():
        raise LoraError(
            f"LoRA {spec.path} does not exist. Check the path (or the file name in models/loras)."
        )
    name = adapter_name_for(spec.path)
    known = _adapters_of(loaded.pipe)
    with pipe_lock(loaded.pipe):
        if name in known:
            return _with_strength(known[name], spec.strength)
        lora = read_lora(spec.path)
        _drop_older_versions(loaded.pipe, known, lora.path)
        state_dict = _fitting_state_dict(loaded, lora)
        try:
            loaded.pipe.load_lora_weights(state_dict, adapter_name=name)
        except Exception as error:
            raise LoraError(
                f"diffusers could not load LoRA {spec.path}: {type(error).__name__}: {error}"
            ) from error
        loaded.pipe.disable_lora()  # active only inside lora_scope
        applied = AppliedLora(
            path=lora.path,
            strength=1.0,
            adapter_name=name,
            num_keys=lora.num_keys,
            num_matched=len(state_dict),
            format=lora.format,
        )
        known[name] = applied
    logger.info(
        "LoRA %s: %d of %d keys matched (%s format)", spec.path, len(state_dict), lora.num_keys, lora.format
    )
    return _with_strength(applied, spec.strength)


def _drop_older_versions(pipe, known: dict[str, AppliedLora], path: str) -> None:
    """One adapter per LoRA file: a file rewritten since it was loaded replaces its old
    adapter (views still holding the old one are told to apply it again)."""
    same_file = Path(path).expanduser().resolve()
    for old_name, applied in list(known.items()):
        if Path(applied.path).expanduser().resolve() == same_file:
            pipe.delete_adapters(old_name)
            del known[old_name]
            logger.info("LoRA %s changed on disk: its previous adapter %s was removed", path, old_name)


def _fitting_state_dict(loaded: LoadedPipeline, lora: LoraFile) -> dict:
    target = architecture_of_kind(loaded.kind)
    match = match_keys(loaded.pipe, lora.state_dict)
    if lora.architecture is not None and lora.architecture != target:
        raise LoraError(
            f"LoRA file {lora.path} targets {architecture_title(lora.architecture)} but the pipeline is {loaded.kind}: "
            f"{match.num_matched} of {match.num_keys} keys matched. Use a LoRA trained for {loaded.kind}."
        )
    if match.num_matched == 0:
        raise LoraError(
            f"LoRA file {lora.path} does not fit the {loaded.kind} pipeline: 0 of {match.num_keys} keys matched "
            f"(e.g. {', '.join(match.unmatched[:3])}). It was made for another model or model size."
        )
    if match.unmatched:
        logger.warning(
            "LoRA %s: %d of %d keys do not fit the %s pipeline and are skipped (e.g. %s)",
            lora.path,
            len(match.unmatched),
            match.num_keys,
            loaded.kind,
            ", ".join(match.unmatched[:3]),
        )
    skipped = set(match.unmatched)
    return {key: value for key, value in lora.state_dict.items() if key not in skipped}


def remove_loras(loaded: LoadedPipeline, paths: Sequence[str] | None = None) -> LoadedPipeline:
    """A view without the given LoRAs (all when ``paths`` is None); adapters stay loaded."""
    if paths is None:
        return loaded.with_loras(())
    drop = {str(Path(p).expanduser().resolve()) for p in paths}
    kept = tuple(lora for lora in loaded.loras if str(Path(lora.path).resolve()) not in drop)
    return loaded.with_loras(kept)


def unload_all_loras(loaded: LoadedPipeline) -> None:
    """Free every adapter of the shared pipeline; views that used them must re-apply."""
    with pipe_lock(loaded.pipe):
        loaded.pipe.unload_lora_weights()
        _adapters_of(loaded.pipe).clear()


@contextmanager
def lora_scope(loaded: LoadedPipeline) -> Iterator[Any]:
    """Run one call with exactly this view's LoRAs active, holding the pipe's lock.

    Yields:
        The diffusers pipeline.
    """
    pipe = loaded.pipe
    with pipe_lock(pipe):
        has_adapters = bool(_adapters_of(pipe))
        if loaded.loras:
            _activate(loaded)
        elif has_adapters:
            pipe.disable_lora()
        try:
            yield pipe
        finally:
            if has_adapters:
                pipe.disable_lora()


def _activate(loaded: LoadedPipeline) -> None:
    known = _adapters_of(loaded.pipe)
    missing = [lora.path for lora in loaded.loras if lora.adapter_name not in known]
    if missing:
        raise LoraError(
            f"LoRA {', '.join(missing)} was unloaded from the pipeline after this view was made; apply it again."
        )
    loaded.pipe.enable_lora()
    loaded.pipe.set_adapters(
        [lora.adapter_name for lora in loaded.loras], adapter_weights=[lora.strength for lora in loaded.loras]
    )
