"""Diffusers pipelines assembled from the model files a ComfyUI user already has.

ComfyUI keeps a model as split files: a transformer in ``models/diffusion_models``
(FLUX in the original Black Forest Labs layout, Qwen-Image in diffusers names), text
encoders in ``models/text_encoders`` (``clip_l``, ``t5xxl``, ``qwen_2.5_vl_7b``) and a VAE
in ``models/vae`` (``ae``, ``qwen_image_vae``), or one all-in-one file in
``models/checkpoints``. Any of them may be bf16, fp16, fp8 e4m3fn or ComfyUI's scaled fp8:
fp8 weights are upcast to the compute dtype (see ``paco_core.models.fp8``).

What a file does not say (block widths, head counts, rope axes, scheduler) comes from a
*config folder*: a diffusers pipeline folder without weights. The pack ships one per kind
in ``paco_core/models/configs/<kind>`` (the released models' own configs). Tokenizers are
large, so the shipped folders name them in ``tokenizers.json`` relative to ComfyUI's
``comfy/`` package folder, which has them (``sd1_tokenizer``, ``text_encoders/t5_tokenizer``,
``text_encoders/qwen25_tokenizer``); a config folder that holds ``tokenizer/`` etc. itself
(as the tiny test models' do) needs nothing else.

The kind of a FLUX transformer cannot be read from its keys (FLUX.1-dev and Kontext share
them): ``kind="auto"`` takes ``flux`` for a FLUX transformer and ``qwen-image-edit`` for a
Qwen-Image one; name ``flux-kontext`` or ``qwen-image-edit-plus`` (2509) explicitly.

Example:
    >>> files = ComfyModelFiles(transformer="models/diffusion_models/flux1-dev.safetensors",
    ...     text_encoders=("models/text_encoders/clip_l.safetensors",
    ...                    "models/text_encoders/t5xxl_fp16.safetensors"),
    ...     vae="models/vae/ae.safetensors", comfyui_dir="ComfyUI")  # doctest: +SKIP
    >>> pipe, kind = build_pipeline_from_files(files, torch.bfloat16)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from paco_core.errors import InputError, ModelLoadError
from paco_core.families import (
    all_families,
    architectures,
    default_family,
    families_of_architecture,
    family,
    family_of_pipeline_class,
    file_role,
    file_roles,
    kinds,
    load_reference,
    or_list,
)

logger = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).parent / "configs"
"""The shipped config folders, one per pipeline kind."""

AUTO_KIND = "auto"
"""The kind that lets the transformer file decide (its architecture's default family)."""
FILE_KINDS = (AUTO_KIND, *kinds())
"""The kinds ComfyUI files can be loaded as: "auto" and every family's."""


CHECKPOINT_PREFIXES = {
    "transformer": "model.diffusion_model.",
    **{role.name: role.checkpoint_prefix for role in file_roles() if role.checkpoint_prefix},
    "vae": "vae.",
}
"""Where a ComfyUI all-in-one FLUX checkpoint keeps each part."""


@dataclass(frozen=True)
class ComfyModelFiles:
    """The ComfyUI files that make one pipeline.

    Attributes:
        transformer: the diffusion model file (``models/diffusion_models``), or None with a checkpoint.
        text_encoders: text encoder files in any order (``models/text_encoders``).
        vae: the VAE file (``models/vae``).
        checkpoint: an all-in-one file (``models/checkpoints``); split files given too replace its parts.
        kind: "auto" or a family's kind (see ``paco_core.families``).
        config_folder: a config folder (a diffusers pipeline folder; weights unused); default:
            the shipped one for the kind.
        comfyui_dir: the ComfyUI folder (or its ``comfy`` package folder), for the tokenizers a
            shipped config folder names.
    """

    transformer: str | None = None
    text_encoders: tuple[str, ...] = ()
    vae: str | None = None
    checkpoint: str | None = None
    kind: str = "auto"
    config_folder: str | None = None
    comfyui_dir: str | None = None

    def paths(self) -> list[str]:
        return [p for p in (self.checkpoint, self.transformer, *self.text_encoders, self.vae) if p]

    def describe(self) -> str:
        return " + ".join(Path(p).name for p in self.paths())

    def cache_key(self) -> tuple:
        """Identity for the pipeline cache: the files (and their sizes and times) and options."""
        stamps = []
        for path in self.paths():
            stat = Path(path).stat()
            stamps.append((str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))
        return ("comfy-files", tuple(stamps), self.kind, self.config_folder, self.comfyui_dir)


# ---- reading files --------------------------------------------------------------------


def check_file(path: str | os.PathLike, what: str, *, field: str | None = None) -> Path:
    """The path of an existing ``.safetensors`` file, or a ModelLoadError saying what to fix
    (``field``: the :class:`ComfyModelFiles` field that names the file, carried by the error)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelLoadError(
            f"{what} file {file} does not exist. Choose a file that is in that folder.", field=field
        )
    if file.suffix != ".safetensors":
        raise ModelLoadError(
            f"{what} file {file} is not a .safetensors file; only safetensors weights are loaded "
            "(pickled .ckpt/.pt/.bin files can run code when opened). Use the .safetensors release.",
            field=field,
        )
    return file


def read_keys(file: Path, *, field: str | None = None) -> set[str]:
    """The tensor names in the file's header, without reading tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return set(handle.keys())
    except Exception as error:
        raise ModelLoadError(
            f"{file} cannot be read as safetensors ({type(error).__name__}: {error}). The file is truncated "
            "or not a safetensors file: download it again.",
            field=field,
        ) from error


def read_tensors(file: Path, prefix: str = "") -> dict:
    """Every tensor of ``file`` whose key starts with ``prefix`` (the prefix removed)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return {
                key[len(prefix) :]: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)
            }
    except Exception as error:
        raise ModelLoadError(
            f"{file} could not be read to the end ({type(error).__name__}: {error}). The file is truncated or "
            "damaged: download it again."
        ) from error


# ---- recognising files ----------------------------------------------------------------


def transformer_architecture(keys) -> str | None:
    """The name of the architecture whose transformer markers the keys hold (see
    ``paco_core.families.Architecture``), or None."""
    keys = {k.removeprefix(CHECKPOINT_PREFIXES["transformer"]) for k in keys}
    for architecture in architectures():
        if any(all(marker in keys for marker in group) for group in architecture.transformer_markers):
            return architecture.name
    return None


def text_encoder_role(keys) -> str | None:
    """The name of the text-encoder role (``paco_core.families.FileRole``) the key names fit, or None."""
    keys = {k.removeprefix("transformer.") for k in keys}
    fitting = [role for role in file_roles() if not role.is_vae and role.matches(keys)]
    return max(fitting, key=lambda role: role.specificity).name if fitting else None


def vae_role(keys) -> str | None:
    """The name of the VAE role the key names fit, or None."""
    keys = set(keys)
    return next((role.name for role in file_roles() if role.is_vae and role.matches(keys)), None)


def _roles_text(vae: bool) -> str:
    """What to choose for each architecture, e.g. "clip_l... and t5xxl... for FLUX, or ... for Qwen-Image"."""
    choices = []
    for architecture in architectures():
        names = (architecture.vae,) if vae else architecture.text_encoders
        choices.append(f"{' and '.join(file_role(name).help for name in names)} for {architecture.title}")
    return ", or ".join(choices)


def _describe_file(keys) -> str:
    """A short guess of what an unexpected file is, for messages."""
    if transformer_architecture(keys):
        return f"a {transformer_architecture(keys)} transformer"
    if role := text_encoder_role(keys):
        return f"a {role} text encoder"
    if role := vae_role(keys):
        return f"the {role} VAE"
    if any(".lora_" in k or "lora_down" in k or "lora_up" in k for k in keys):
        return "a LoRA"
    if any(k.startswith(CHECKPOINT_PREFIXES["transformer"]) for k in keys):
        return "an all-in-one checkpoint"
    return f"an unknown model (keys like {', '.join(sorted(keys)[:2])})"


@dataclass
class _Part:
    """One component's weights: the file they come from and the key prefix inside it."""

    file: Path
    prefix: str = ""
    field: str = ""  # the ComfyModelFiles field that gave the file ("checkpoint", "text_encoders.1", ...)


def _plan(files: ComfyModelFiles) -> tuple[str, dict[str, _Part]]:
    """Recognise every file; return the pipeline kind and role -> where its weights are."""
    if files.kind not in FILE_KINDS:
        raise InputError(f"kind should be one of {', '.join(FILE_KINDS)}, got {files.kind!r}.", field="kind")
    parts: dict[str, _Part] = {}
    if files.checkpoint:
        file = check_file(files.checkpoint, "checkpoint", field="checkpoint")
        keys = read_keys(file, field="checkpoint")
        if not any(k.startswith(CHECKPOINT_PREFIXES["transformer"]) for k in keys):
            raise ModelLoadError(
                f"checkpoint {file.name} is not an all-in-one checkpoint (no model.diffusion_model.* weights); it "
                f"looks like {_describe_file(keys)}. Choose it in the matching field (transformer, text encoder, VAE).",
                field="checkpoint",
            )
        file_roles_by_name = {role.name for role in file_roles() if role.checkpoint_prefix}
        for role, prefix in CHECKPOINT_PREFIXES.items():
            inner = {k[len(prefix) :] for k in keys if k.startswith(prefix)}
            if role in file_roles_by_name and any(k.startswith("transformer.") for k in inner):
                prefix += "transformer."
            if inner:
                parts[role] = _Part(file, prefix, "checkpoint")
        if "vae" in parts:
            vae_keys = {k[len(parts["vae"].prefix) :] for k in keys if k.startswith(parts["vae"].prefix)}
            checkpoint_architecture = transformer_architecture(keys)
            assumed = (
                default_family(checkpoint_architecture).architecture.vae if checkpoint_architecture else "vae"
            )
            parts[vae_role(vae_keys) or assumed] = parts.pop("vae")
    if files.transformer:
        file = check_file(files.transformer, "transformer", field="transformer")
        keys = read_keys(file, field="transformer")
        prefix = (
            CHECKPOINT_PREFIXES["transformer"]
            if any(k.startswith(CHECKPOINT_PREFIXES["transformer"]) for k in keys)
            else ""
        )
        if transformer_architecture(keys) is None:
            raise ModelLoadError(
                f"transformer file {file.name} is not a {or_list(a.title for a in architectures())} transformer: "
                f"it looks like {_describe_file(keys)}. Choose the diffusion model of "
                f"{or_list(item.title for item in all_families())} in models/diffusion_models.",
                field="transformer",
            )
        parts["transformer"] = _Part(file, prefix, "transformer")
    for index, path in enumerate(files.text_encoders):
        field = f"text_encoders.{index}"
        file = check_file(path, "text encoder", field=field)
        keys = read_keys(file, field=field)
        role = text_encoder_role(keys)
        if role is None:
            raise ModelLoadError(
                f"text encoder file {file.name} is not "
                f"{or_list(role.title for role in file_roles() if not role.is_vae)}: it looks like "
                f"{_describe_file(keys)}. Choose {_roles_text(vae=False)}.",
                field=field,
            )
        if role in parts and parts[role].file != file and not files.checkpoint:
            raise InputError(
                f"two {role} text encoders given ({parts[role].file.name} and {file.name}); give one of each kind.",
                field=(parts[role].field, field),
            )
        parts[role] = _Part(
            file, "transformer." if any(k.startswith("transformer.") for k in keys) else "", field
        )
    if files.vae:
        file = check_file(files.vae, "VAE", field="vae")
        keys = read_keys(file, field="vae")
        role = vae_role(keys)
        if role is None:
            raise ModelLoadError(
                f"VAE file {file.name} is not {or_list(role.title for role in file_roles() if role.is_vae)}: it looks "
                f"like {_describe_file(keys)}. Choose {_roles_text(vae=True)}.",
                field="vae",
            )
        for other in file_roles():
            if other.is_vae:
                parts.pop(other.name, None)
        parts[role] = _Part(file, field="vae")
    if "transformer" not in parts:
        raise InputError(
            "no transformer given: choose a diffusion model file or an all-in-one checkpoint.",
            field="transformer",
        )
    transformer_keys = read_keys(parts["transformer"].file)
    architecture = transformer_architecture(
        k[len(parts["transformer"].prefix) :]
        for k in transformer_keys
        if k.startswith(parts["transformer"].prefix)
    )
    kind = default_family(architecture).kind if files.kind == AUTO_KIND else files.kind
    if family(kind).architecture.name != architecture:
        raise InputError(
            f"transformer {parts['transformer'].file.name} is a {architecture} transformer, but kind {kind} needs a "
            f"{family(kind).architecture.name} one. Choose kind auto (or "
            f"{', '.join(item.kind for item in families_of_architecture(architecture))}), or the matching transformer file.",
            field=(parts["transformer"].field, "kind"),
        )
    _check_roles(kind, architecture, parts)
    return kind, parts


def _needed_roles(kind: str) -> tuple[str, ...]:
    """The text-encoder roles and the VAE role the family's architecture needs."""
    architecture = family(kind).architecture
    return (*architecture.text_encoders, architecture.vae)


def _check_roles(kind: str, architecture: str, parts: dict[str, _Part]) -> None:
    needed = _needed_roles(kind)
    wrong = [role.name for role in file_roles() if role.name in parts and role.name not in needed]
    if wrong:
        names = ", ".join(f"{parts[role].file.name} ({role})" for role in wrong)
        raise InputError(
            f"{names} belong to another model: a {kind} pipeline needs "
            f"{' + '.join(file_role(role).help for role in needed)}. Replace them.",
            field=tuple(dict.fromkeys(parts[role].field for role in wrong)),
        )
    missing = [role for role in needed if role not in parts]
    if missing:
        given = ", ".join(
            f"{part.file.name} is {role}"
            for role, part in parts.items()
            if role in needed and role != "transformer"
        )
        raise InputError(
            f"a {kind} pipeline also needs {' and '.join(file_role(role).help for role in missing)}: choose "
            f"{'them' if len(missing) > 1 else 'it'}" + (f" (given: {given})." if given else "."),
            field=tuple(
                dict.fromkeys("vae" if file_role(role).is_vae else "text_encoders" for role in missing)
            ),
        )


# ---- config folders -------------------------------------------------------------------


def resolve_config_folder(kind: str, configs: str | None) -> Path:
    """The config folder to use for ``kind``: the given one, or the shipped one."""
    folder = Path(configs).expanduser() if configs else CONFIGS_DIR / family(kind).config_folder
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(
            f"config folder {folder} has no model_index.json: give a diffusers pipeline folder (its weights are "
            "not used) or leave the config folder empty for the shipped one.",
            field="config_folder",
        )
    class_name = json.loads(index_file.read_text(encoding="utf-8")).get("_class_name")
    found = family_of_pipeline_class(class_name)
    if found is None or found.kind != kind:
        raise InputError(
            f"config folder {folder} is for {found.kind if found else class_name}, but the files make a "
            f"{kind} pipeline. Choose the config folder of a {kind} model, or leave it empty.",
            field="config_folder",
        )
    return folder


def comfy_package_dir(comfyui_dir: str | None) -> Path | None:
    """ComfyUI's ``comfy`` folder from the given path (the ComfyUI folder or ``comfy`` itself)."""
    if not comfyui_dir:
        return None
    root = Path(comfyui_dir).expanduser()
    for candidate in (root, root / "comfy"):
        if (candidate / "sd1_tokenizer").is_dir():
            return candidate
    raise ModelLoadError(
        f"{root} holds no ComfyUI tokenizers (sd1_tokenizer, text_encoders/...): give the ComfyUI folder or its "
        "comfy/ sub-folder.",
        field="config_folder",
    )


def _tokenizer_folder(folder: Path, component: str, comfyui_dir: str | None) -> Path:
    own = folder / component
    if own.is_dir() and any(
        (own / name).is_file()
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
    ):
        return own
    mapping_file = folder / "tokenizers.json"
    mapping = json.loads(mapping_file.read_text(encoding="utf-8")) if mapping_file.is_file() else {}
    if component not in mapping:
        raise ModelLoadError(
            f"config folder {folder} has no {component}/ tokenizer and names none in tokenizers.json.",
            field="config_folder",
        )
    comfy_dir = comfy_package_dir(comfyui_dir)
    if comfy_dir is None:
        raise ModelLoadError(
            f"the {component} of this model comes from ComfyUI's own folder ({mapping[component]}), but no ComfyUI "
            "folder was given: pass --comfyui-dir /path/to/ComfyUI (inside ComfyUI this is automatic).",
            field="config_folder",
        )
    path = comfy_dir / mapping[component]
    if not path.is_dir():
        raise ModelLoadError(
            f"ComfyUI's tokenizer folder {path} is missing: update ComfyUI or repair its checkout.",
            field="config_folder",
        )
    return path


# ---- building components --------------------------------------------------------------


def _load_into(model, state_dict: dict, what: str, part: _Part, folder: Path, allowed_missing=()):
    """Load ``state_dict`` into an empty-weights ``model``; errors name the file and the fix."""
    expected = model.state_dict()
    wrong_shape = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)
    ]
    missing = [key for key in expected if key not in state_dict and not key.endswith(tuple(allowed_missing))]
    unexpected = [key for key in state_dict if key not in expected]
    if wrong_shape or missing or unexpected:
        details = "; ".join(
            text
            for text in (
                f"{len(wrong_shape)} of other sizes (e.g. {wrong_shape[0]})" if wrong_shape else "",
                f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unknown (e.g. {unexpected[0]})" if unexpected else "",
            )
            if text
        )
        raise ModelLoadError(
            f"{part.file.name} does not fit the {what} of {folder.name} ({details}). It is another model or size "
            f"than the config folder {folder} describes: choose the matching file (or kind / config folder)."
        )
    model.load_state_dict(state_dict, strict=False, assign=True)
    return model.eval()


def _empty(factory):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return factory()


def _weights(part: _Part, torch_dtype) -> dict:
    from paco_core.models.fp8 import dequantize

    return dequantize(read_tensors(part.file, part.prefix), torch_dtype, part.file.name)


def _transformer(kind: str, part: _Part, folder: Path, torch_dtype):
    import diffusers

    from paco_core.models.flux_single_file import flux_bfl_to_diffusers

    config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    cls = getattr(diffusers, config["_class_name"])
    state_dict = _weights(part, torch_dtype)
    if "double_blocks.0.img_attn.qkv.weight" in state_dict:
        inner_dim = config["num_attention_heads"] * config["attention_head_dim"]
        width = state_dict["img_in.weight"].shape[0] if "img_in.weight" in state_dict else None
        if width != inner_dim:
            raise ModelLoadError(
                f"{part.file.name} does not fit the transformer of {folder.name}: its blocks are {width} wide, the "
                f"config folder {folder} says {inner_dim} (other sizes). It is another model or size: choose the "
                "matching file (or kind / config folder)."
            )
        state_dict = flux_bfl_to_diffusers(state_dict, inner_dim, part.file.name)
    elif family(kind).architecture.transformer_from_comfy:
        state_dict = load_reference(family(kind).architecture.transformer_from_comfy)(state_dict, config)
    model = _empty(lambda: cls.from_config(config))
    return _load_into(model, state_dict, "transformer", part, folder).to(torch_dtype)


def _vae(role: str, part: _Part, folder: Path, torch_dtype):
    import diffusers

    from paco_core.models.vae_layouts import ldm_vae_to_diffusers, wan_vae_to_diffusers

    config = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    cls = getattr(diffusers, config["_class_name"])
    model = _empty(lambda: cls.from_config(config))
    state_dict = _weights(part, torch_dtype)
    if file_role(role).layout == "ldm":
        state_dict = ldm_vae_to_diffusers(state_dict, model.config, part.file.name)
    else:
        state_dict = wan_vae_to_diffusers(
            state_dict, model.state_dict(), model.config.num_res_blocks, part.file.name
        )
    return _load_into(model, state_dict, "VAE", part, folder).to(torch_dtype)


def _text_encoder(role: str, part: _Part, folder: Path, component: str, torch_dtype):
    import transformers

    config_file = folder / component / "config.json"
    config_data = json.loads(config_file.read_text(encoding="utf-8"))
    cls = getattr(transformers, config_data["architectures"][0])
    config = transformers.AutoConfig.from_pretrained(str(folder / component))
    model = _empty(lambda: cls(config))
    state_dict = _weights(part, torch_dtype)
    allowed_missing: tuple = ()
    layout = file_role(role).layout
    if file_role(role).convert:
        state_dict = load_reference(file_role(role).convert)(state_dict)
    if layout == "t5":
        shared = state_dict.get("shared.weight", state_dict.get("encoder.embed_tokens.weight"))
        if shared is not None:
            state_dict.setdefault("shared.weight", shared)
            state_dict.setdefault("encoder.embed_tokens.weight", shared)
        expected = set(model.state_dict())
        state_dict = {
            k: v
            for k, v in state_dict.items()
            if k in expected or not k.startswith(("encoder.embed_tokens", "shared"))
        }
    elif layout == "clip-l":
        allowed_missing = ("position_ids",)
        # Buffers and the projection head some releases carry; the text model has none of them.
        for key in [
            k for k in state_dict if k.endswith(("position_ids", "text_projection.weight", "logit_scale"))
        ]:
            del state_dict[key]
        if not any(key.startswith("text_model.") for key in model.state_dict()):
            state_dict = {key.removeprefix("text_model."): value for key, value in state_dict.items()}
    elif layout == "qwen2.5-vl":
        state_dict = _qwen_vl_names(state_dict)
        if "lm_head.weight" not in state_dict:
            # ComfyUI's text-encoder files leave the language-model head out: the pipeline
            # reads hidden states only, so the head is never used.
            allowed_missing = ("lm_head.weight",)
    model = _load_into(model, state_dict, f"{component} ({role})", part, folder, allowed_missing)
    model.tie_weights()  # assign=True loaded tied tensors (T5's shared embedding) as two copies
    if layout == "qwen2.5-vl" and "lm_head.weight" not in state_dict:
        import torch

        model.lm_head.weight = torch.nn.Parameter(torch.zeros(model.lm_head.weight.shape, dtype=torch_dtype))
    for name, buffer in model.named_buffers():
        if buffer.is_meta:
            raise ModelLoadError(
                f"{part.file.name}: buffer {name} of {component} was not initialised (a bug: report it)."
            )
    return _keep_fp32_modules(model.to(torch_dtype), torch_dtype)


def _keep_fp32_modules(model, torch_dtype):
    """In fp16, the modules a transformers model keeps in fp32 (T5's ``wo``: fp16 overflows
    there), as ``from_pretrained`` does."""
    import torch

    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    if torch_dtype == torch.float16 and keep:
        for name, module in model.named_modules():
            if any(part in name.split(".") for part in keep):
                module.float()
    return model


def _qwen_vl_names(state_dict: dict) -> dict:
    """Qwen2.5-VL weights in the original release names (``model.layers``, ``visual``) in
    transformers' current names (``model.language_model.layers``, ``model.visual``)."""
    out = {}
    for key, tensor in state_dict.items():
        if key.startswith("model.") and not key.startswith(("model.language_model.", "model.visual.")):
            key = "model.language_model." + key.removeprefix("model.")
        elif key.startswith("visual."):
            key = "model." + key
        out[key] = tensor
    return out


def _tokenizers(folder: Path, index: dict, comfyui_dir: str | None) -> dict:
    import transformers

    components = {}
    for name in ("tokenizer", "tokenizer_2"):
        if name in index:
            cls = getattr(transformers, index[name][1])
            components[name] = cls.from_pretrained(str(_tokenizer_folder(folder, name, comfyui_dir)))
    if "processor" in index:
        own = folder / "processor"
        if (own / "tokenizer_config.json").is_file():
            components["processor"] = getattr(transformers, index["processor"][1]).from_pretrained(str(own))
        else:
            image_processor = transformers.AutoImageProcessor.from_pretrained(str(own))
            video_processor = transformers.Qwen2VLVideoProcessor(**image_processor.to_dict())
            components["processor"] = getattr(transformers, index["processor"][1])(
                image_processor=image_processor,
                tokenizer=components["tokenizer"],
                video_processor=video_processor,
            )
    return components


def check_model_files(files: ComfyModelFiles) -> str:
    """The pipeline kind the files make, checked as loading would check them, without reading weights.

    Reads only the files' headers, the config folder and the tokenizer folders' places, so a
    wrong combination is found before a job (or a long load) starts.

    Returns:
        The kind of the family the files make (see ``paco_core.families``).

    Raises:
        ModelLoadError / InputError: as ``build_pipeline_from_files`` (a missing, truncated or
            wrong-role file, files of different models, a config folder for another kind, no
            ComfyUI folder for the tokenizers a shipped config names).

    Example:
        >>> check_model_files(ComfyModelFiles(checkpoint="models/checkpoints/flux1-dev-fp8.safetensors",
        ...                                   comfyui_dir="ComfyUI"))  # doctest: +SKIP
        'flux'
    """
    kind, _ = _plan(files)
    folder = resolve_config_folder(kind, files.config_folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    for name in ("tokenizer", "tokenizer_2"):
        if name in index:
            _tokenizer_folder(folder, name, files.comfyui_dir)
    return kind


def build_pipeline_from_files(files: ComfyModelFiles, torch_dtype):
    """Assemble the diffusers pipeline from ComfyUI's files (on the CPU, in ``torch_dtype``).

    Returns:
        (pipeline, kind).

    Raises:
        ModelLoadError / InputError: a file is missing, truncated, of the wrong role or size,
            or the files belong to different models; the message names the file and the fix.
    """
    import diffusers

    kind, parts = _plan(files)
    architecture = family(kind).architecture
    folder = resolve_config_folder(kind, files.config_folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    components = {"transformer": _transformer(kind, parts["transformer"], folder, torch_dtype)}
    components.update(_tokenizers(folder, index, files.comfyui_dir))
    if family(kind).chat_template:  # ComfyUI's tokenizer folder may carry another model's template
        components["tokenizer"].chat_template = family(kind).chat_template
    for role in architecture.text_encoders:
        component = file_role(role).component
        components[component] = _text_encoder(role, parts[role], folder, component, torch_dtype)
    vae_role_name = architecture.vae
    components["vae"] = _vae(vae_role_name, parts[vae_role_name], folder, torch_dtype)
    scheduler_class = getattr(diffusers, index["scheduler"][1])
    components["scheduler"] = scheduler_class.from_pretrained(str(folder), subfolder="scheduler")
    pipeline_class = getattr(diffusers, index["_class_name"])
    logger.info("assembled %s from %s (configs %s)", kind, files.describe(), folder)
    return pipeline_class(**components), kind
