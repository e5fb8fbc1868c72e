"""Build tiny model folders by name: atomically, idempotently, byte-identically.

Each builder writes a standard diffusers / transformers folder into a fresh temporary
folder beside the destination; the folder is renamed into place only once complete, so a
crash never leaves a half folder that looks complete. A small marker file records which
factory version wrote the folder; a folder from another version is rebuilt.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from paco_core import __version__
from paco_core.errors import InputError
from paco_core.families import all_families, family, is_installed
from paco_core.io import atomic_write_json

logger = logging.getLogger(__name__)

FACTORY_VERSION = 1
"""Bump whenever a builder changes what it writes: cached folders of older versions are rebuilt."""

MARKER_FILE = "paco_tiny_model.json"

OTHER_BUILDERS = {
    "judge": "paco_core.testing.judge:save_tiny_judge",
    "clip": "paco_core.testing.clip:save_tiny_clip",
    "comfyui": "paco_core.testing.comfy_layout:save_tiny_comfyui_layout",
}
BUILDERS = {**{item.kind: item.tiny_model for item in all_families()}, **OTHER_BUILDERS}
"""Model name (a family's kind, or judge / clip / comfyui) -> ``module:function`` that writes the
folder (imported only when built)."""


TINY_MODEL_NAMES = (*(item.kind for item in all_families() if is_installed(item)), *OTHER_BUILDERS)
"""Every tiny model this install can build (a family only where diffusers has its pipeline).
"comfyui" is the others' files in ComfyUI's ``models/`` layout (``paco_core.testing.comfy_layout``);
it builds the diffusers folders it comes from beside itself."""


def _check_name(name: str) -> None:
    if name in TINY_MODEL_NAMES:
        return
    reason = ""
    if name in BUILDERS:  # known, but this install cannot build it
        reason = f" ({name} needs a diffusers that has {family(name).pipeline_class})"
    raise InputError(f"unknown tiny model {name!r}: choose one of {', '.join(TINY_MODEL_NAMES)}{reason}")


def _marker(name: str) -> dict:
    return {"factory_version": FACTORY_VERSION, "name": name}


def is_complete(folder: Path, name: str) -> bool:
    """True when ``folder`` is a finished tiny ``name`` folder written by this factory version."""
    try:
        return json.loads((folder / MARKER_FILE).read_text()) == _marker(name)
    except (OSError, ValueError):
        return False


def _run_builder(name: str, folder: Path) -> None:
    module_name, function_name = BUILDERS[name].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    builder(folder)


def build_tiny_model(name: str, root: Path) -> Path:
    """Write the tiny model ``name`` to ``root/<name>`` (unless already there) and return its path.

    Args:
        name: one of ``TINY_MODEL_NAMES``.
        root: folder that holds the tiny models; created if missing.

    Returns:
        The model folder, loadable by the ordinary ``from_pretrained``.

    Raises:
        InputError: ``name`` is unknown, or ``root/<name>`` holds something else.

    Example:
        >>> from transformers import Qwen2_5_VLForConditionalGeneration
        >>> path = build_tiny_model("judge", Path("/tmp/tiny"))
        >>> model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    """
    _check_name(name)
    root = Path(root)
    destination = root / name
    if is_complete(destination, name):
        return destination
    if destination.exists() and not (destination / MARKER_FILE).exists():
        raise InputError(
            f"{destination} exists but was not written by the tiny-model factory "
            f"(no {MARKER_FILE}); remove it or choose another destination folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".building", dir=root))
    try:
        _run_builder(name, staging)
        atomic_write_json(staging / MARKER_FILE, _marker(name))
        _move_into_place(staging, destination, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.debug("built tiny model %s at %s", name, destination)
    return destination


def _move_into_place(staging: Path, destination: Path, name: str) -> None:
    """Rename the finished folder to ``destination``, replacing a folder of an older version."""
    if destination.exists():  # a stale version (checked by the caller): move it aside first
        stale = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".stale", dir=destination.parent))
        os.replace(destination, stale / name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, destination)
    except OSError:
        if not is_complete(destination, name):  # not another process finishing first
            raise


def build_tiny_models(root: Path, names=None) -> dict[str, Path]:
    """Build several tiny models into ``root``.

    Args:
        root: destination folder.
        names: models to build (default: all of ``TINY_MODEL_NAMES``).

    Returns:
        name -> folder, in the order given.
    """
    names = TINY_MODEL_NAMES if names is None else tuple(names)
    for name in names:
        _check_name(name)
    return {name: build_tiny_model(name, root) for name in names}


def default_cache_dir() -> Path:
    """``$PACO_CACHE/tiny-models-<version>``, or ``~/.cache/paco/tiny-models-<version>``."""
    cache_root = os.environ.get("PACO_CACHE") or Path.home() / ".cache" / "paco"
    return Path(cache_root) / f"tiny-models-{__version__}"


def ensure_tiny_models(cache_dir: Path | None = None) -> dict[str, Path]:
    """Every tiny model, built once into a cache folder and reused after (demo, benchmarks).

    Args:
        cache_dir: where to keep them (default: :func:`default_cache_dir`).

    Returns:
        name -> folder for every name in ``TINY_MODEL_NAMES``.
    """
    return build_tiny_models(Path(cache_dir) if cache_dir is not None else default_cache_dir())
