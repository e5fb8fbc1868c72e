"""The only place the pack touches ComfyUI's runtime modules (beyond ``comfy_api``).

Everything is imported lazily so that a node module stays importable at startup, and
so that tests can provide stand-ins for ``comfy.utils``, ``comfy.model_management`` and
``folder_paths``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from paco_core.callbacks import Hooks


def hooks_for(node_id: str | None, total: int) -> Hooks:
    """Progress-bar and cancel hooks wired to ComfyUI for one node run.

    ``ProgressBar.update_absolute`` also checks ComfyUI's interrupt flag; the explicit
    cancel check makes work stop between units even when no progress is reported.
    """
    import comfy.model_management as mm
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(int(total), 1), node_id=node_id)

    def progress(done: int, total_now: int) -> None:
        bar.update_absolute(done, total_now)

    return Hooks(progress=progress, check_cancel=mm.throw_exception_if_processing_interrupted)


def show_progress_text(node_id: str | None, text: str) -> None:
    """A line of text under the node while it runs (ComfyUI's ``send_progress_text``)."""
    from server import PromptServer

    if node_id is not None and PromptServer.instance is not None:
        PromptServer.instance.send_progress_text(text, node_id)


@contextmanager
def loading_progress(node_id: str | None, what: str, steps: int) -> Iterator[Hooks]:
    """Progress while a model loads: the node's progress bar over ``steps`` steps (the
    loader reports them through the yielded hooks) and a line of text under the node
    saying what loads and, at the end, how long it took."""
    hooks = hooks_for(node_id, steps)
    show_progress_text(node_id, f"loading {what} ...")
    started = time.perf_counter()
    yield hooks
    show_progress_text(node_id, f"loaded {what} in {time.perf_counter() - started:.1f} s")


def free_comfy_memory() -> None:
    """Unload ComfyUI's own models and empty the cache before a pipeline takes the GPU."""
    import comfy.model_management as mm

    mm.unload_all_models()
    mm.soft_empty_cache()


def soft_empty_cache() -> None:
    import comfy.model_management as mm

    mm.soft_empty_cache()


def comfy_device():
    """The torch device ComfyUI computes on (cuda / mps / cpu, as ComfyUI decided)."""
    import comfy.model_management as mm

    return mm.get_torch_device()


def model_choices(folder: str) -> list[str]:
    """Names ComfyUI lists for a models folder (e.g. ``"loras"``, ``"diffusers"``)."""
    import folder_paths

    if folder == "diffusers":
        return diffusers_folder_choices()
    return list(folder_paths.get_filename_list(folder))


def diffusers_folder_choices() -> list[str]:
    """Sub-folders of ComfyUI's ``models/diffusers`` that hold a ``model_index.json``."""
    import folder_paths

    names: list[str] = []
    for root in folder_paths.get_folder_paths("diffusers"):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            if os.path.isfile(os.path.join(root, entry, "model_index.json")):
                names.append(entry)
    return names


def resolve_model_path(folder: str, name: str) -> str:
    """Full path of a dropdown choice; a value that is no known name passes through
    unchanged, so a typed hub id or absolute path works too."""
    import folder_paths

    if folder == "diffusers" or os.path.isdir(name):
        for root in folder_paths.get_folder_paths(folder):
            candidate = os.path.join(root, name)
            if os.path.isdir(candidate):
                return candidate
        return name
    path = folder_paths.get_full_path(folder, name)
    return path if path else name


PACO_CONFIGS_FOLDER = "paco_configs"
"""``models/paco_configs/<name>``: config folders (diffusers folders without weights) for model
files of other sizes than the released ones; the shipped configs need none."""


def config_folder_choices() -> list[str]:
    """Sub-folders of ``models/paco_configs`` that hold a ``model_index.json``."""
    import folder_paths

    root = os.path.join(folder_paths.models_dir, PACO_CONFIGS_FOLDER)
    if not os.path.isdir(root):
        return []
    return [e for e in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, e, "model_index.json"))]


def config_folder_path(name: str) -> str:
    """The folder of a ``config_folder_choices`` name (names only: no path leaves models/paco_configs)."""
    import folder_paths

    from paco_core.errors import InputError

    if name not in config_folder_choices():
        raise InputError(
            f"config folder {name!r} is not in models/{PACO_CONFIGS_FOLDER}: choose one from the list."
        )
    return os.path.join(folder_paths.models_dir, PACO_CONFIGS_FOLDER, name)


def comfyui_package_dir() -> str:
    """ComfyUI's ``comfy`` package folder, which holds the CLIP / T5 / Qwen tokenizers."""
    import comfy

    return os.path.dirname(os.path.abspath(comfy.__file__))


def output_directory() -> str:
    import folder_paths

    return folder_paths.get_output_directory()


def input_directory() -> str:
    import folder_paths

    return folder_paths.get_input_directory()


def temp_directory() -> str:
    """Where node previews go (ComfyUI serves them as ``type: temp``)."""
    import folder_paths

    return folder_paths.get_temp_directory()


def user_directory() -> str:
    """ComfyUI's user directory (``--user-directory``): where a pack keeps persistent state."""
    import folder_paths

    return folder_paths.get_user_directory()


def first_model_folder(folder: str) -> str:
    """The first path of a models folder (e.g. ``models/loras``), where the pack writes files."""
    import folder_paths

    return folder_paths.get_folder_paths(folder)[0]


def prompt_server():
    """ComfyUI's ``PromptServer.instance`` (None outside a ComfyUI server)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return PromptServer.instance


def execution_blocker(message: str | None = None):
    """An output value that blocks the nodes using it (silently when ``message`` is None)."""
    from comfy_execution.graph_utils import ExecutionBlocker

    return ExecutionBlocker(message)
