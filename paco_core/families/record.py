"""What a model family declares: one frozen record per family, one per transformer architecture.

A *family* is one base model the pack runs (FLUX.1-dev, FLUX.1-Kontext-dev, ...), named by its
*kind* id (the word configs, nodes, the CLI and job records use). An *architecture* is the
transformer design families share (FLUX.1-dev and Kontext share "flux"): LoRA module names,
ComfyUI transformer files and the text encoders / VAE it needs depend on it.

Records are plain data. Code that belongs to a higher layer (the rollout adapter in ``rl/``,
the edit call in ``generate``, the tiny-model builders in ``testing``) is named by a dotted
reference ``"package.module:attribute"``, imported only when used (``load_reference``), so
this package imports nothing heavy and sits below ``models/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SETS = "sets"
"""Task of a text-to-image family: consistent multi-image sets (grids) from prompts."""
EDIT = "edit"
"""Task of an image-editing family: an input image (or several) and an instruction."""
TASKS = (SETS, EDIT)


TEXT_ENCODER_LAYOUTS = ("clip-l", "t5", "qwen2.5-vl", "transformers")
"""How a text-encoder file's weights are laid out (what ``paco_core.models.comfy_files`` fixes
when loading it); "transformers": already in transformers' names, loaded as they are."""
VAE_LAYOUTS = ("ldm", "wan")
"""How a VAE file's weights are laid out: "ldm" (FLUX's ae, original LDM names), "wan" (Qwen-Image's)."""


@dataclass(frozen=True)
class FileRole:
    """A ComfyUI model file that is one component of a pipeline: a text encoder or a VAE.

    Attributes:
        name: the role's id ("clip_l"); an architecture names the roles it needs.
        title: its display name in messages ("CLIP-L").
        component: the diffusers pipeline component it loads into ("text_encoder", "vae").
        help: which file to choose, and from which ComfyUI folder.
        layout: how its weights are laid out (``TEXT_ENCODER_LAYOUTS`` or, for a VAE, ``VAE_LAYOUTS``).
        key_markers: a file plays the role when it holds every key of one of these groups
            (text encoders: a leading ``transformer.`` removed).
        key_prefixes: ... or when one of its keys starts with one of these (VAE layouts).
        checkpoint_prefix: where ComfyUI's all-in-one checkpoints keep it, or None.
        convert: ``module:function(state_dict) -> state_dict`` renaming a file of a layout this
            pack does not know into the ``layout``'s names first (its family brings it), or None.
        specificity: a file matching several roles plays the one with the highest (a newer
            model's file may hold an older role's markers too: Qwen3 has Qwen2.5's names).
    """

    name: str
    title: str
    component: str
    help: str
    layout: str
    key_markers: tuple[tuple[str, ...], ...] = ()
    key_prefixes: tuple[str, ...] = ()
    checkpoint_prefix: str | None = None
    convert: str | None = None
    specificity: int = 0

    def __post_init__(self) -> None:
        layouts = VAE_LAYOUTS if self.is_vae else TEXT_ENCODER_LAYOUTS
        if self.layout not in layouts:
            raise ValueError(
                f"file role {self.name}: layout should be one of {', '.join(layouts)}, got {self.layout!r}"
            )

    @property
    def is_vae(self) -> bool:
        return self.component == "vae"

    def matches(self, keys: set[str]) -> bool:
        """Whether a file with these keys plays this role."""
        return any(all(key in keys for key in group) for group in self.key_markers) or any(
            key.startswith(self.key_prefixes) for key in keys if self.key_prefixes
        )


@dataclass(frozen=True)
class Architecture:
    """A transformer architecture several families may share.

    Attributes:
        name: its id ("flux"), stored in saved LoRA files' ``paco.architecture`` metadata.
        title: its display name in messages ("FLUX").
        transformer_class: the diffusers transformer class name (``FluxTransformer2DModel``).
        transformer_markers: ComfyUI transformer files of this architecture hold every key of
            at least one of these key groups (a ``model.diffusion_model.`` prefix removed).
        single_file_transformer: a Black Forest Labs single-file transformer (ComfyUI's
            ``models/diffusion_models``) may replace a diffusers folder's transformer.
        text_encoders: the names of the text-encoder ``FileRole``s it needs, in component order.
        vae: the name of the VAE ``FileRole`` it needs.
        lora_markers: fragments of LoRA module names only this architecture has.
        attention_targets: its attention projections (LoRA target module names).
        lora_targets: the paper's LoRA target modules (attention and feed-forward).
        file_roles: the ComfyUI file roles its families' files introduce (``text_encoders`` and
            ``vae`` may also name roles another architecture declares).
        transformer_from_comfy: ``module:function(state_dict, config) -> state_dict`` renaming a
            ComfyUI transformer file in its original layout into diffusers names (None: the
            files use diffusers names, or Black Forest Labs' layout, read by ``single_file_transformer``).
        comfy_clip_type: the ``type`` ComfyUI's CLIPLoader / DualCLIPLoader takes for its text
            encoders ("flux", "qwen_image", "lumina2"), used by the native workflows.
    """

    name: str
    title: str
    transformer_class: str
    transformer_markers: tuple[tuple[str, ...], ...]
    single_file_transformer: bool
    text_encoders: tuple[str, ...]
    vae: str
    lora_markers: tuple[str, ...]
    attention_targets: tuple[str, ...]
    lora_targets: tuple[str, ...]
    file_roles: tuple[FileRole, ...] = ()
    transformer_from_comfy: str | None = None
    comfy_clip_type: str | None = None


@dataclass(frozen=True)
class Family:
    """Everything the pack knows about one model family.

    Attributes:
        kind: the family's id in configs, nodes, the CLI and job records ("flux-kontext").
        title: its display name ("FLUX.1-Kontext-dev").
        task: ``SETS`` (text-to-image grids) or ``EDIT`` (image edits).
        pipeline_class: the diffusers pipeline class (``model_index.json``'s ``_class_name``).
        diffusers_module: the diffusers module defining ``pipeline_class`` (whether the installed
            diffusers has it is read from the file, without importing diffusers).
        inpaint_pipeline_class: the diffusers inpaint pipeline built from a loaded one
            (``from_pipe``, shared weights) for panel repair, or None.
        architecture: its transformer architecture.
        hub_id: the Hugging Face id of the released weights.
        config_folder: the shipped config folder (``paco_core/models/configs/<name>``) used
            with ComfyUI's split files.
        default_for_architecture: ComfyUI files of ``architecture`` with kind "auto" make this
            family (one per architecture; the others are chosen by name).
        default_steps: denoising steps when none are given.
        default_guidance: guidance when none is given (FLUX's distilled guidance, or true CFG).
        num_references: images one edit call takes (0 for a sets family; more than 1: the
            family accepts several reference images and repairs give it this many).
        edit_call: ``module:function`` running one edit call, ``(pipe, kind, image, instruction,
            options, guidance, seed, callback) -> PIL image`` (None for a sets family).
        rollout_adapter: ``module:class`` of its PaCo-GRPO rollout adapter (``rl``), or None
            when training does not support it.
        presets: training presets the family brings: name -> the preset's own settings
            (merged over the common settings by ``paco_core.rl.presets``).
        tiny_model: ``module:function(folder)`` writing its tiny random-weight diffusers folder.
        tiny_comfy_files: ``module:function(source, models, name)`` writing that tiny model as
            ComfyUI split files under ``models/`` (None: no ComfyUI layout).
        encode_set_prompt: ``module:function(pipe, prompt, *, device, max_sequence_length,
            guidance) -> dict`` giving a sets family's pipeline call its encoded prompt arguments
            (None for an edit family).
        chat_template: the tokenizer's chat template when the tokenizer comes from ComfyUI's
            folder, whose own template belongs to another model (None: keep it).
        presets_beyond_the_paper: training presets no released run backs (a family beyond the
            paper): name -> settings as in ``presets``, their values reasoned from a released
            run (the family's module and docs/families.md say why).
    """

    kind: str
    title: str
    task: str
    pipeline_class: str
    diffusers_module: str
    architecture: Architecture
    hub_id: str
    config_folder: str
    default_steps: int
    default_guidance: float
    tiny_model: str
    default_for_architecture: bool = False
    inpaint_pipeline_class: str | None = None
    num_references: int = 0
    edit_call: str | None = None
    rollout_adapter: str | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiny_comfy_files: str | None = None
    encode_set_prompt: str | None = None
    chat_template: str | None = None
    presets_beyond_the_paper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(
                f"family {self.kind}: task should be one of {', '.join(TASKS)}, got {self.task!r}"
            )
        if (self.task == EDIT) != (self.edit_call is not None):
            raise ValueError(f"family {self.kind}: an edit family needs an edit_call, a sets family none")
        if (self.task == EDIT) != (self.num_references > 0):
            raise ValueError(f"family {self.kind}: an edit family takes references (num_references > 0)")
        if (self.task == SETS) != (self.encode_set_prompt is not None):
            raise ValueError(
                f"family {self.kind}: a sets family needs an encode_set_prompt, an edit family none"
            )
        object.__setattr__(self, "presets", MappingProxyType(dict(self.presets)))
        object.__setattr__(
            self, "presets_beyond_the_paper", MappingProxyType(dict(self.presets_beyond_the_paper))
        )

    @property
    def is_edit(self) -> bool:
        return self.task == EDIT

    @property
    def is_trainable(self) -> bool:
        return self.rollout_adapter is not None

    @property
    def takes_several_references(self) -> bool:
        return self.num_references > 1

    @property
    def row_kind(self) -> str:
        """The kind of prompt-set row its training reads: "set" (prompts) or "edit" (image + instruction)."""
        return "edit" if self.is_edit else "set"


def load_reference(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (imported now)."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def edit_preset(target_modules: tuple[str, ...], sampling: Mapping[str, Any]) -> dict[str, Any]:
    """A PaCo-GRPO edit preset as the released edit runs (``edit-kontext``, ``edit-qwen``) set it:
    the family's LoRA targets and own ``sampling`` settings, then what the runs share (384 px
    training, 512 px evaluation and references, square edits, per-group advantages, the edit
    reward alone, a checkpoint and an evaluation every 20 iterations)."""
    return {
        "lora": {"target_modules": list(target_modules)},
        "sampling": {
            **sampling,
            "train_resolution": 384,
            "eval_resolution": 512,
            "reference_resolution": 512,
            "edit_size": "square",
        },
        "advantages": {"global_std": False},
        "rewards": {"rewards": [{"name": "edit", "weight": 1.0}], "aggregation": "weighted_sum"},
        "checkpoint_every": 20,
        "eval_every": 20,
    }
