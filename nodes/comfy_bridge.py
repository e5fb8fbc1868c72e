"""The only place the pack touches ComfyUI's runtime modules (beyond ``comfy_api``).

Everything is imported lazily so that a node module stays importable at startup, and
so that tests can provide stand-ins for ``comfy.utils``, ``comfy.model_management`` and
``folder_paths``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
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


STATUS_WIDTH = 64
"""Characters of a status line under a node: the frontend does not wrap it, so a longer one
runs over the next node."""


MODEL_LABEL_WIDTH = 64
"""Characters of a model's name in a status line (a long file name is cut with an ellipsis)."""


def model_label(source: str) -> str:
    """How a status line names a model: the last part of a path or hub id (the folder or file
    name, whether or not it exists), or a server's host and port; never the machine path or
    a URL's credentials, and at most ``MODEL_LABEL_WIDTH`` characters."""
    text = str(source).strip().rstrip("/\\")
    if "://" in text:
        label = text.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    else:
        label = re.split(r"[/\\]", text)[-1]  # both separators: a Windows path typed on Linux too
    return short_status(label, MODEL_LABEL_WIDTH)


def short_status(text: str, width: int = STATUS_WIDTH) -> str:
    """``text`` cut to ``width`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "\u2026"


def show_progress_text(node_id: str | None, text: str) -> None:
    """A line of text under the node while it runs (ComfyUI's ``send_progress_text``)."""
    from server import PromptServer

    if node_id is not None and PromptServer.instance is not None:
        PromptServer.instance.send_progress_text(text, node_id)


ERROR_MARK = "\u26a0 "
"""Before an error shown under the node (the warning sign), so it reads apart from progress."""


def show_errors_on_the_node(node_cls: type) -> type:
    """Make ``node_cls.execute`` put the first line of a PaCo error under the node before
    ComfyUI reports it: the artist sees what was wrong where the status text was (ComfyUI's
    own toast says only that the prompt failed). Wrapping twice wraps once."""
    from paco_core.errors import PaCoError

    if getattr(node_cls, "_paco_shows_errors", False) or "execute" not in node_cls.__dict__:
        return node_cls
    execute = node_cls.__dict__["execute"].__func__

    def show(cls, error: PaCoError) -> None:
        try:
            node_id = cls.hidden.unique_id
        except AttributeError:
            return
        show_progress_text(node_id, ERROR_MARK + str(error).splitlines()[0])

    if inspect.iscoroutinefunction(execute):

        @functools.wraps(execute)
        async def wrapped(cls, *args, **kwargs):
            try:
                return await execute(cls, *args, **kwargs)
            except PaCoError as error:
                show(cls, error)
                raise

    else:

        @functools.wraps(execute)
        def wrapped(cls, *args, **kwargs):
            try:
                return execute(cls, *args, **kwargs)
            except PaCoError as error:
                show(cls, error)
                raise

    node_cls.execute = classmethod(wrapped)
    node_cls._paco_shows_errors = True
    return node_cls


@contextmanager
def loading_progress(node_id: str | None, what: str, steps: int) -> Iterator[Hooks]:
    """Progress while a model loads: the node's progress bar over ``steps`` steps (the
    loader reports them through the yielded hooks) and a line of text under the node
    saying what loads and, at the end, how long it took."""
    hooks = hooks_for(node_id, steps)
    show_progress_text(node_id, short_status(f"loading {what} ..."))
    started = time.perf_counter()
    yield hooks
    show_progress_text(node_id, short_status(f"loaded {what} in {time.perf_counter() - started:.1f} s"))


def free_comfy_memory() -> None:
    """Unload ComfyUI's own models and empty the cache before a pipeline takes the GPU."""
    import comfy.model_management as mm

    _comfy_unload_all_models()()
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


def lora_choices() -> list[str]:
    """LoRA files in ComfyUI's ``models/loras``, then the folders there that hold a LoRA
    (a downloaded hub repository or a peft adapter folder), e.g. ``PaCo-FLUX.1-dev-Lora``."""
    import folder_paths

    from paco_core.models.lora_files import is_lora_folder

    files = list(folder_paths.get_filename_list("loras"))
    folders: list[str] = []
    for root in folder_paths.get_folder_paths("loras"):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            if is_lora_folder(os.path.join(root, entry)):
                folders.append(entry)
    return files + [name for name in folders if name not in files]


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


def model_roots(*folders: str) -> list[str]:
    """The folders node inputs may resolve into: each named ComfyUI models folder's paths
    (extra_model_paths.yaml included), then ComfyUI's whole models directory."""
    import folder_paths

    roots: list[str] = []
    for folder in folders:
        roots.extend(folder_paths.get_folder_paths(folder))
    roots.append(folder_paths.models_dir)
    return list(dict.fromkeys(os.path.abspath(root) for root in roots))


def all_model_roots() -> list[str]:
    """Every ComfyUI models folder (extra_model_paths.yaml included) and the models directory:
    where model paths of a training config from ComfyUI may point. Not custom_nodes."""
    import folder_paths

    return model_roots(*(name for name in folder_paths.folder_names_and_paths if name != "custom_nodes"))


def resolve_model_path(folder: str, name: str, *, what: str = "model", hub: bool = False, also=()) -> str:
    """Full path of a dropdown choice or a typed name, contained in ComfyUI's models folders.

    Args:
        folder: the ComfyUI models folder the name belongs to ("loras", "diffusers", ...).
        name: a name relative to it (or to ComfyUI's models directory), or an absolute path
            inside them; outside paths only with PACO_ALLOW_OUTSIDE_PATHS=1.
        what: what the name is, for messages.
        hub: a name found nowhere may be a hub id (``owner/name``), unless PACO_ALLOW_HUB_DOWNLOADS=0.
        also: further models folders the name may be in.

    Raises:
        InputError: the name leaves the models folders, or names a hub id while hub downloads are off.
        ModelLoadError: the name exists nowhere (and is no hub id where one is allowed).
    """
    from paco_core import settings
    from paco_core.containment import contained_path, is_hub_id
    from paco_core.errors import InputError, ModelLoadError

    roots = model_roots(folder, *also)
    text = name.strip()
    found = contained_path(
        text,
        roots,
        what=what,
        setting=settings.ALLOW_OUTSIDE_PATHS,
        allow_outside=settings.allow_outside_paths(),
    )
    if found is not None:
        return found
    if hub and is_hub_id(text):
        if not settings.allow_hub_downloads():
            raise InputError(
                f"{what} {text!r} is no folder in models/{folder}, and hub downloads from nodes are switched off "
                f"({settings.ALLOW_HUB_DOWNLOADS}=0). Download it into models/{folder} first."
            )
        return text
    raise ModelLoadError(
        f"{what} {text!r} not found in models/{folder}"
        + (" (nor is it a hub id of the form owner/name)" if hub else "")
        + ". Refresh the node (R) or put it there."
    )


def release_paco_models() -> None:
    """Forget PaCo's cached pipelines and judges (pipelines leave the GPU at once); their
    memory is freed once no workflow output holds them any more."""
    from paco_core.models.judge import release_judges
    from paco_core.models.pipelines import release_pipelines

    pipelines, judges = release_pipelines(), release_judges()
    if pipelines or judges:
        logging.getLogger(__name__).info("PaCo released %d pipeline(s) and %d judge(s)", pipelines, judges)


def install_unload_hook() -> None:
    """Make ComfyUI's "unload models" release PaCo's models too.

    ComfyUI frees its models with ``comfy.model_management.unload_all_models()``: after
    ``POST /free`` (the frontend's "Unload models" / "Free model and node cache"), after an
    out-of-memory error, and after each prompt with ``--disable-smart-memory``. Its callers
    look the function up on the module at call time, so wrapping it there is enough.
    Installing twice wraps once. PaCo's own calls (``free_comfy_memory``, before a PaCo
    pipeline takes the GPU) use the unwrapped function and keep PaCo's models.
    """
    import functools

    import comfy.model_management as mm

    current = mm.unload_all_models
    if getattr(current, "paco_hook", False):
        return

    @functools.wraps(current)
    def unload_all_models(*args, **kwargs):
        result = current(*args, **kwargs)
        release_paco_models()
        return result

    unload_all_models.paco_hook = True
    mm.unload_all_models = unload_all_models


def _comfy_unload_all_models():
    """ComfyUI's own unload_all_models, without PaCo's hook."""
    import comfy.model_management as mm

    return getattr(mm.unload_all_models, "__wrapped__", mm.unload_all_models)


PACO_CONFIGS_FOLDER = "paco_configs"
"""``models/paco_configs/<name>``: config folders (diffusers folders without weights) for model
files of other sizes than the released ones; the shipped configs need none."""


def _config_folders() -> dict[str, str]:
    """``{name: folder}`` of every config folder: ``models/paco_configs/<name>`` and the same
    folder under each extra_model_paths.yaml entry that names ``paco_configs`` (first wins)."""
    import folder_paths

    roots = [os.path.join(folder_paths.models_dir, PACO_CONFIGS_FOLDER)]
    if PACO_CONFIGS_FOLDER in getattr(folder_paths, "folder_names_and_paths", {}):
        roots += list(folder_paths.get_folder_paths(PACO_CONFIGS_FOLDER))
    found: dict[str, str] = {}
    for root in dict.fromkeys(os.path.abspath(root) for root in roots):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            if os.path.isfile(os.path.join(root, entry, "model_index.json")):
                found.setdefault(entry, os.path.join(root, entry))
    return found


def config_folder_choices() -> list[str]:
    """Sub-folders of ``models/paco_configs`` that hold a ``model_index.json``."""
    return sorted(_config_folders())


def config_folder_path(name: str) -> str:
    """The folder of a ``config_folder_choices`` name (names only: no path leaves models/paco_configs)."""
    from paco_core.errors import InputError

    folders = _config_folders()
    if name not in folders:
        raise InputError(
            f"config folder {name!r} is not in models/{PACO_CONFIGS_FOLDER}: choose one from the list."
        )
    return folders[name]


def comfyui_package_dir() -> str:
    """ComfyUI's ``comfy`` package folder, which holds the CLIP / T5 / Qwen tokenizers.

    In ComfyUI ``comfy`` is a namespace package (no ``__init__.py``, ``comfy.__file__`` is None),
    so its folder comes from ``__path__``.
    """
    import comfy

    return os.path.abspath(next(iter(comfy.__path__)))


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
