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


@dataclass(frozen=True)
class TextEncoderFile:
    """A ComfyUI text-encoder file role an architecture brings itself (beyond the roles
    ``paco_core.models.comfy_files`` knows: clip_l, t5xxl, qwen_2.5_vl_7b).

    Attributes:
        role: the role name, also the usual file stem ("qwen_3_4b").
        component: the pipeline component it loads into ("text_encoder").
        help: the file and folder to choose, for messages.
        markers: files of this role hold every key of at least one of these key groups
            (checked before the built-in roles, whose markers may match too).
        to_diffusers: ``module:function(state_dict) -> state_dict`` renaming the file's keys
            into those of the config folder's transformers class.
    """

    role: str
    component: str
    help: str
    markers: tuple[tuple[str, ...], ...]
    to_diffusers: str


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
        text_encoders: the ComfyUI text-encoder file roles it needs, in component order
            (role names of ``paco_core.models.comfy_files``: "clip_l", "t5xxl", ...).
        vae: the ComfyUI VAE file role it needs ("ae", "qwen_image_vae").
        lora_markers: fragments of LoRA module names only this architecture has.
        attention_targets: its attention projections (LoRA target module names).
        lora_targets: the paper's LoRA target modules (attention and feed-forward).
        transformer_from_comfy: ``module:function(state_dict, config) -> state_dict`` renaming a
            ComfyUI transformer file in its original layout into diffusers names (None: the
            files use diffusers names, or Black Forest Labs' layout, read by ``single_file_transformer``).
        text_encoder_files: text-encoder file roles the architecture defines itself.
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
    transformer_from_comfy: str | None = None
    text_encoder_files: tuple[TextEncoderFile, ...] = ()


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
            (None: FLUX's ``prompt_embeds`` + ``pooled_prompt_embeds``).
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
        object.__setattr__(self, "presets", MappingProxyType(dict(self.presets)))
        object.__setattr__(self, "presets_beyond_the_paper", MappingProxyType(dict(self.presets_beyond_the_paper)))

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
