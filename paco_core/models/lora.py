"""PaCo LoRAs on diffusers pipelines: read any common format, apply per branch, save.

Reading: a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``),
a diffusers safetensors file (``transformer.<module>.lora_A.weight``, optional ``.alpha``)
or a kohya file (``lora_unet_..._lora_down.weight``). Every format is normalised to
diffusers module names with a component prefix and the scale (alpha / rank) folded into
``lora_B``, so strength 1.0 always means "as trained".

Applying: each LoRA file is loaded once into the shared pipeline as a named diffusers
adapter. A pipeline *view* (``LoadedPipeline.loras``) lists which adapters a graph branch
uses and at what strength; ``lora_scope(view)`` takes the pipe's lock, activates exactly
those adapters for one call and disables them afterwards. So two branches on one base
pipeline never see each other's LoRAs, and changing a strength costs no reload.

Saving: ``save_peft_transformer_lora`` / ``save_lora`` write diffusers-named keys with the
``transformer.`` prefix and the scale folded into ``lora_B`` (no ``.alpha`` tensors). With
no alpha, diffusers uses scale 1 and ComfyUI's native LoraLoader uses scale 1 too, so the
file has the same effect in both.

Example:
    >>> view = apply_loras(loaded, [LoraSpec("paco_t2is.safetensors", 0.8)])  # doctest: +SKIP
    >>> with lora_scope(view) as pipe:  # doctest: +SKIP
    ...     image = pipe(prompt="...").images[0]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, LoraError
from paco_core.io import atomic_save_safetensors
from paco_core.models.pipelines import FLUX_KINDS, AppliedLora, LoadedPipeline

logger = logging.getLogger(__name__)

COMPONENT_PREFIXES = ("transformer.", "text_encoder.", "text_encoder_2.")
PEFT_PREFIX = "base_model.model."
FAMILY_NAMES = {"flux": "FLUX", "qwen-image": "Qwen-Image"}
# Module names only one of the two transformer families has.
FAMILY_MARKERS = {
    "flux": ("single_transformer_blocks.", ".ff.net.", ".ff_context.net.", ".norm1_context.", "x_embedder"),
    "qwen-image": (".img_mlp.", ".txt_mlp.", ".img_mod.", ".txt_mod.", "img_in", "txt_in"),
}
LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to apply: file or peft folder, and its strength (1.0 = as trained)."""

    path: str
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.strength, (int, float)) or not math.isfinite(self.strength):
            raise InputError(f"LoRA strength should be a finite number, got {self.strength!r}.")
        object.__setattr__(self, "path", str(self.path))

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """``FILE`` or ``FILE:STRENGTH`` (the CLI's ``--lora`` value)."""
        head, sep, tail = text.rpartition(":")
        if sep and head and not tail.startswith(("/", "\\")):
            try:
                return cls(head, float(tail))
            except ValueError:
                pass  # a colon that is part of the path (e.g. C:\...)
        return cls(text, 1.0)


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
        family: "flux", "qwen-image" or None when the keys do not tell.
    """

    path: str
    format: str
    state_dict: dict[str, Any]
    rank: int
    alpha: float | None
    family: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_keys(self) -> int:
        return len(self.state_dict)


@dataclass(frozen=True)
class LoraMatch:
    """How a LoRA's keys fit a pipeline: counts, and a few unmatched keys for messages."""

    num_keys: int
    num_matched: int
    unmatched: tuple[str, ...]


# --------------------------------------------------------------------------- reading


def read_lora(path: str | os.PathLike) -> LoraFile:
    """Read a LoRA in peft, diffusers or kohya format (safetensors only).

    Args:
        path: a ``.safetensors`` file, or a peft adapter folder.

    Returns:
        LoraFile with a normalised state dict.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_peft_folder(path)
    if not path.is_file():
        raise LoraError(f"LoRA {path} does not exist. Check the path (or the file name in models/loras).")
    if path.suffix != ".safetensors":
        raise LoraError(
            f"LoRA {path} is not a .safetensors file; only safetensors LoRAs are read (pickled "
            ".pt/.ckpt/.bin files can run code when opened). Convert it to safetensors first."
        )
    tensors, metadata = _load_safetensors(path)
    if any(key.startswith(PEFT_PREFIX) for key in tensors):
        config = _peft_config_from_metadata(metadata)
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


def _read_peft_folder(folder: Path) -> LoraFile:
    config_file = folder / "adapter_config.json"
    weights_file = folder / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise LoraError(
            f"{folder} is not a peft adapter folder: it needs adapter_config.json and "
            f"adapter_model.safetensors, found {found}."
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LoraError(f"{config_file} is not valid JSON ({error}).") from error
    tensors, metadata = _load_safetensors(weights_file)
    return _normalise_peft(folder, tensors, config, metadata)


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


def _with_component(key: str) -> str:
    return key if key.startswith(COMPONENT_PREFIXES) else "transformer." + key


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
    ranks = [int(t.shape[0]) for k, t in state_dict.items() if k.endswith(".lora_A.weight")]
    return LoraFile(
        path=str(path),
        format=fmt,
        state_dict=state_dict,
        rank=max(ranks) if ranks else 0,
        alpha=float(alpha) if alpha is not None else None,
        family=detect_family(state_dict.keys()),
        metadata=metadata,
    )


def detect_family(keys) -> str | None:
    """The family a LoRA's module names reveal ("flux": ``ff.net``, "qwen-image": ``img_mlp``), else None."""
    keys = list(keys)
    found = [name for name, markers in FAMILY_MARKERS.items() if any(m in k for k in keys for m in markers)]
    return found[0] if len(found) == 1 else None


def family_of_kind(kind: str) -> str:
    return "flux" if kind in FLUX_KINDS else "qwen-image"


# --------------------------------------------------------------------------- applying

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
    target = path / "adapter_model.safetensors" if path.is_dir() else path
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
    from dataclasses import replace

    return replace(lora, strength=float(strength))


def _load_adapter(loaded: LoadedPipeline, spec: LoraSpec) -> AppliedLora:
    name = adapter_name_for(spec.path) if Path(spec.path).expanduser().exists() else None
    if name is None:
        raise LoraError(
            f"LoRA {spec.path} does not exist. Check the path (or the file name in models/loras)."
        )
    known = _adapters_of(loaded.pipe)
    with pipe_lock(loaded.pipe):
        if name in known:
            return _with_strength(known[name], spec.strength)
        lora = read_lora(spec.path)
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


def _fitting_state_dict(loaded: LoadedPipeline, lora: LoraFile) -> dict:
    target = family_of_kind(loaded.kind)
    match = match_keys(loaded.pipe, lora.state_dict)
    if lora.family is not None and lora.family != target:
        raise LoraError(
            f"LoRA file {lora.path} targets {FAMILY_NAMES[lora.family]} but the pipeline is {loaded.kind}: "
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


# --------------------------------------------------------------------------- saving


def save_peft_transformer_lora(
    transformer,
    path: str | os.PathLike,
    adapter_name: str = "default",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save the LoRA of a peft-wrapped diffusion transformer, loadable by diffusers and ComfyUI.

    Args:
        transformer: a diffusers transformer with a peft adapter injected (``add_adapter``
            or ``inject_adapter_in_model``), or a ``PeftModel`` around one.
        path: the ``.safetensors`` file to write (atomically).
        adapter_name: which peft adapter to save.
        metadata: extra string metadata (e.g. training step).

    Returns:
        The written path.
    """
    from peft.tuners.lora import LoraLayer

    state_dict: dict[str, Any] = {}
    ranks: set[int] = set()
    for name, module in transformer.named_modules():
        if not isinstance(module, LoraLayer) or adapter_name not in module.lora_A:
            continue
        module_name = name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name
        down = module.lora_A[adapter_name].weight.detach()
        up = module.lora_B[adapter_name].weight.detach()
        scale = float(module.scaling[adapter_name])
        state_dict[f"transformer.{module_name}.lora_A.weight"] = down.clone()
        state_dict[f"transformer.{module_name}.lora_B.weight"] = (up.float() * scale).to(up.dtype)
        ranks.add(int(down.shape[0]))
    if not state_dict:
        raise LoraError(f"the transformer has no peft LoRA adapter named {adapter_name!r}; nothing to save.")
    family = detect_family(state_dict) or _family_of_transformer(transformer)
    return _write(path, state_dict, family, max(ranks), metadata)


def save_lora(
    path: str | os.PathLike,
    state_dict_or_peft_model,
    *,
    alpha: float,
    rank: int,
    kind: str,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save LoRA weights given as a peft model or a state dict (scale alpha/rank folded in).

    Args:
        path: the ``.safetensors`` file to write (atomically).
        state_dict_or_peft_model: a module holding a peft adapter, or a state dict with
            ``[base_model.model.|transformer.]<module>.lora_A.weight`` / ``.lora_B.weight`` keys
            holding *unscaled* weights (as peft stores them).
        alpha: the LoRA alpha used in training.
        rank: the LoRA rank used in training.
        kind: the pipeline kind the LoRA is for ("flux", "flux-kontext", "qwen-image-edit", ...).
        metadata: extra string metadata.

    Returns:
        The written path.
    """
    if rank <= 0 or alpha <= 0:
        raise InputError(f"LoRA rank and alpha should be positive, got rank={rank}, alpha={alpha}.")
    if hasattr(state_dict_or_peft_model, "named_modules"):
        from peft import get_peft_model_state_dict

        raw = get_peft_model_state_dict(state_dict_or_peft_model)
    else:
        raw = dict(state_dict_or_peft_model)
    state_dict: dict[str, Any] = {}
    for key, tensor in raw.items():
        name = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        name = name[len("transformer.") :] if name.startswith("transformer.") else name
        if not name.endswith(LORA_SUFFIXES):
            raise LoraError(f"save_lora: key {key!r} is not a lora_A/lora_B weight.")
        if name.endswith(".lora_B.weight"):
            tensor = (tensor.float() * (alpha / rank)).to(tensor.dtype)
        state_dict["transformer." + name] = tensor
    if not state_dict:
        raise LoraError("save_lora: no LoRA weights to save.")
    family = detect_family(state_dict)
    if family is not None and family != family_of_kind(kind):
        raise LoraError(
            f"save_lora: the weights are {FAMILY_NAMES[family]} module names but kind is {kind!r}."
        )
    return _write(
        path, state_dict, family_of_kind(kind), rank, {"paco.alpha": str(alpha), **(metadata or {})}
    )


def _family_of_transformer(transformer) -> str:
    name = type(getattr(transformer, "base_model", transformer)).__name__
    return "qwen-image" if "Qwen" in name else "flux"


def _write(path, state_dict: dict, family: str, rank: int, metadata: dict[str, str] | None) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"LoRA files are saved as .safetensors, got {path.name!r}.")
    info = {
        "format": "pt",
        "paco.family": family,
        "paco.rank": str(rank),
        "paco.scale": "folded into lora_B (no alpha tensors: scale 1 in diffusers and ComfyUI)",
    }
    info.update({str(k): str(v) for k, v in (metadata or {}).items()})
    return atomic_save_safetensors(path, state_dict, metadata=info)
