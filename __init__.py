"""ComfyUI-PaCo: ComfyUI entry point.

ComfyUI imports this file at startup. It must stay cheap and must not import torch
model libraries (diffusers, transformers, peft): the node modules import those lazily,
inside ``execute``. Registration uses the V3 form only (``comfy_entrypoint``); this file
deliberately exports no ``NODE_CLASS_MAPPINGS``.
"""

import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    # Makes `paco_core` importable when the pack is cloned into custom_nodes/
    # without `pip install -e .`. Appended, so an installed copy wins.
    sys.path.append(_PACK_DIR)


WEB_DIRECTORY = "./web"
"""The pack's frontend extension: every .js file here is served to the frontend."""


async def comfy_entrypoint():
    """Return the ComfyExtension that lists every PaCo node (called by ComfyUI)."""
    from .nodes import PaCoExtension

    return PaCoExtension()
