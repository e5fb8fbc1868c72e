"""The model families the pack runs, one module each, and the registry everything asks.

A family's module (``flux.py``, ``flux_kontext.py``, ``qwen_image_edit.py``) declares one
frozen :class:`Family` record (see ``record.py`` for every field): its kind id, task (sets or
edit), diffusers pipeline classes, transformer :class:`Architecture` (ComfyUI transformer
markers, the :class:`FileRole` text encoders and VAE it needs, LoRA key markers and training
targets), default steps and guidance, references per edit,
edit call, rollout adapter, training presets and tiny-model builders. Pipelines, ComfyUI
files, LoRAs, training, consistency tools, nodes and the CLI ask this registry; no other
module writes a kind id (``tests/test_families.py`` fails on one).

Adding a family:
    1. Write ``paco_core/families/<name>.py`` with ``KIND = "<kind id>"`` and ``FAMILY =
       Family(...)`` (a new transformer design also declares its ``Architecture`` there, with
       the ``FileRole``s of text encoders / VAEs no other architecture declares; a family
       sharing one imports it from its sibling, as ``flux_kontext`` does).
    2. Add the module's ``FAMILY`` to ``FAMILIES`` below (and a name for it if other code
       needs the record by name).
    3. Code a record names by reference (``"module:attribute"``: rollout adapter, edit call,
       tiny-model builders) lives in the layer it belongs to and is imported only when used;
       ``tests/test_families.py`` checks every reference resolves.
    4. Ship its ComfyUI config folder as ``paco_core/models/configs/<config_folder>`` (a
       diffusers pipeline folder without weights) if ComfyUI's split files should load it.

This package imports only the standard library and ``paco_core.errors``: it sits below
``models/`` (which asks it), and names higher layers' code by reference.

Example:
    >>> from paco_core.families import family, kinds, EDIT
    >>> family("flux-kontext").pipeline_class
    'FluxKontextPipeline'
    >>> kinds(task=EDIT)
    ('flux-kontext', 'qwen-image-edit', 'qwen-image-edit-plus')
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

from paco_core.errors import InputError
from paco_core.families import flux, flux_kontext, qwen_image_edit, z_image
from paco_core.families.record import EDIT, SETS, TASKS, Architecture, Family, FileRole, load_reference

FLUX = flux.FAMILY
FLUX_KONTEXT = flux_kontext.FAMILY
QWEN_IMAGE_EDIT = qwen_image_edit.FAMILY
QWEN_IMAGE_EDIT_PLUS = qwen_image_edit.PLUS_FAMILY

FAMILIES: tuple[Family, ...] = (FLUX, FLUX_KONTEXT, QWEN_IMAGE_EDIT, QWEN_IMAGE_EDIT_PLUS, z_image.FAMILY)
"""Every family, in the order choices, presets and tiny models are listed."""

DEFAULT_KIND = FLUX.kind
"""The kind a training config without one trains (``ModelConfig.kind``'s default)."""

_BY_KIND = {item.kind: item for item in FAMILIES}
_BY_PIPELINE_CLASS = {item.pipeline_class: item for item in FAMILIES}

__all__ = [
    "DEFAULT_KIND", "EDIT", "FAMILIES", "FLUX", "FLUX_KONTEXT", "QWEN_IMAGE_EDIT", "QWEN_IMAGE_EDIT_PLUS", "SETS",
    "TASKS", "Architecture", "Family", "FileRole", "all_families", "architecture", "architectures",
    "default_family", "edit_kinds", "families_of_architecture", "family", "family_of_pipeline_class", "file_role",
    "file_roles", "is_installed", "kinds", "load_reference", "or_list", "titles", "trainable_kinds",
]  # fmt: skip


def all_families() -> tuple[Family, ...]:
    """Every registered family."""
    return FAMILIES


def family(kind: str) -> Family:
    """The family of a kind id, or an InputError naming the known kinds."""
    found = _BY_KIND.get(kind)
    if found is None:
        raise InputError(f"unknown model kind {kind!r}; known kinds: {', '.join(_BY_KIND)}.")
    return found


def kinds(task: str | None = None, *, trainable: bool | None = None) -> tuple[str, ...]:
    """Kind ids, all or those of one task (``SETS`` / ``EDIT``) and/or training support."""
    if task is not None and task not in TASKS:
        raise InputError(f"task should be one of {', '.join(TASKS)}, got {task!r}.")
    return tuple(
        item.kind
        for item in FAMILIES
        if (task is None or item.task == task) and (trainable is None or item.is_trainable == trainable)
    )


def edit_kinds() -> tuple[str, ...]:
    """The kinds that edit images (take an input image and an instruction)."""
    return kinds(EDIT)


def trainable_kinds() -> tuple[str, ...]:
    """The kinds PaCo-GRPO training supports (those with a rollout adapter)."""
    return kinds(trainable=True)


def family_of_pipeline_class(name: str | None) -> Family | None:
    """The family whose diffusers pipeline class is ``name`` (``model_index.json``'s ``_class_name``), else None."""
    return _BY_PIPELINE_CLASS.get(name) if name else None


def architectures() -> tuple[Architecture, ...]:
    """Every transformer architecture of a registered family, in family order, once each."""
    return tuple({item.architecture.name: item.architecture for item in FAMILIES}.values())


def architecture(name: str) -> Architecture:
    """The architecture named ``name`` ("flux"), or an InputError naming the known ones."""
    for item in architectures():
        if item.name == name:
            return item
    raise InputError(
        f"unknown transformer architecture {name!r}; known: {', '.join(a.name for a in architectures())}."
    )


def file_roles() -> tuple[FileRole, ...]:
    """Every ComfyUI file role an architecture declares, text encoders first, once each."""
    roles = {role.name: role for item in architectures() for role in item.file_roles}
    return tuple(sorted(roles.values(), key=lambda role: role.is_vae))


def file_role(name: str) -> FileRole:
    """The ComfyUI file role named ``name`` ("clip_l"), or an InputError naming the known ones."""
    for role in file_roles():
        if role.name == name:
            return role
    raise InputError(
        f"unknown model file role {name!r}; known: {', '.join(role.name for role in file_roles())}."
    )


def families_of_architecture(name: str) -> tuple[Family, ...]:
    """The families built on the architecture named ``name``."""
    return tuple(item for item in FAMILIES if item.architecture.name == name)


def default_family(architecture_name: str) -> Family:
    """The family ComfyUI files of an architecture make when the kind is "auto"."""
    for item in families_of_architecture(architecture_name):
        if item.default_for_architecture:
            return item
    raise InputError(f"no family is the default for architecture {architecture_name!r}.")


def or_list(words: Iterable[str]) -> str:
    """Words for a message: "a", "a or b", "a, b or c"."""
    items = list(words)
    return " or ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def titles(items: Iterable[Family]) -> str:
    """The families' display names for a message: "A", "A or B", "A, B or C"."""
    return or_list(item.title for item in items)


def is_installed(item: Family) -> bool:
    """Whether the installed diffusers has the family's pipeline (read from its module file,
    without importing diffusers, which would import torch)."""
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        return False
    relative = item.diffusers_module.split(".")[1:]
    return Path(spec.origin).parent.joinpath(*relative).with_suffix(".py").is_file()
