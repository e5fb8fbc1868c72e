"""ComfyUI-PaCo: ComfyUI entry point.

ComfyUI imports this file at startup. It must stay cheap and must not import torch
model libraries (diffusers, transformers, peft): the node modules import those lazily,
inside ``execute``. Registration uses the V3 form only (``comfy_entrypoint``); this file
deliberately exports no ``NODE_CLASS_MAPPINGS``.

The nodes always run on the pack's own ``paco_core`` (the folder next to this file), even
when another copy is installed (an old ``pip install``) or was imported first: that copy
is set aside with a warning in ComfyUI's log that names both.
"""

import importlib.util
import logging
import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
_OWN_CORE = os.path.join(_PACK_DIR, "paco_core")
if _PACK_DIR not in sys.path:
    # For subprocesses and tools started from the pack folder. Appended, never first:
    # the pack folder holds a `nodes` package, and ComfyUI owns the top-level name `nodes`.
    sys.path.append(_PACK_DIR)

WEB_DIRECTORY = "./web"
"""The pack's frontend extension: every .js file here is served to the frontend."""


def _same_folder(path: str | None, folder: str) -> bool:
    return path is not None and os.path.realpath(os.path.dirname(path)) == os.path.realpath(folder)


def _use_own_paco_core() -> None:
    """Import ``paco_core`` from the pack's folder, whatever copy sys.path would find first."""
    loaded = sys.modules.get("paco_core")
    if loaded is not None and _same_folder(getattr(loaded, "__file__", None), _OWN_CORE):
        return
    log = logging.getLogger("ComfyUI-PaCo")
    if loaded is not None:
        log.warning(
            "ComfyUI-PaCo: another paco_core was already imported from %s; the PaCo nodes use the pack's own "
            "copy at %s instead. Remove the other copy (pip uninstall paco-rl-nodes) if it is stale.",
            os.path.dirname(loaded.__file__ or "?"),
            _OWN_CORE,
        )
        for name in [name for name in sys.modules if name == "paco_core" or name.startswith("paco_core.")]:
            del sys.modules[name]
    else:
        found = importlib.util.find_spec("paco_core")
        if found is not None and not _same_folder(found.origin, _OWN_CORE):
            log.warning(
                "ComfyUI-PaCo: an installed paco_core at %s is ignored; the PaCo nodes use the pack's own copy "
                "at %s. Remove the installed one (pip uninstall paco-rl-nodes) if it is stale.",
                os.path.dirname(found.origin or "?"),
                _OWN_CORE,
            )
    spec = importlib.util.spec_from_file_location(
        "paco_core", os.path.join(_OWN_CORE, "__init__.py"), submodule_search_locations=[_OWN_CORE]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["paco_core"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["paco_core"]
        raise


_use_own_paco_core()

OLDEST_COMFYUI = (0, 3, 64)
"""The oldest ComfyUI the pack is tested with (pyproject.toml's requires-comfyui says the same)."""


def _warn_below_the_oldest_comfyui() -> None:
    """One clear line in ComfyUI's log when it is older than the pack supports."""
    try:
        from comfyui_version import __version__ as version
    except ImportError:  # not inside ComfyUI, or a build without the version file
        return
    try:
        numbers = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return
    if numbers < OLDEST_COMFYUI:
        logging.getLogger("ComfyUI-PaCo").warning(
            "ComfyUI-PaCo needs ComfyUI %s or newer; this is ComfyUI %s. Update ComfyUI (git pull, or the "
            "ComfyUI-Manager's Update ComfyUI); the PaCo nodes may be missing or fail until then.",
            ".".join(map(str, OLDEST_COMFYUI)),
            version,
        )


_warn_below_the_oldest_comfyui()


async def comfy_entrypoint():
    """Return the ComfyExtension that lists every PaCo node (called by ComfyUI)."""
    from .nodes import PaCoExtension

    return PaCoExtension()
