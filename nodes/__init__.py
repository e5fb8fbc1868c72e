"""Thin ComfyUI adapters over paco_core (V3 node API).

Rules for every module here: import ``comfy_api`` / ``comfy`` / ``folder_paths`` only
inside this package, import sibling modules relatively (ComfyUI owns the top-level name
``nodes``), import ``paco_core`` absolutely, keep heavy imports inside ``execute``.
Each topic module exports ``NODES``: the list of its node classes.
"""

from __future__ import annotations

import importlib

from comfy_api.latest import ComfyExtension, io

NODE_MODULES = (
    "grid",
    "judge",
    "generation",
    "consistency",
    "consistency_pool",
    "model_files",
    "training",
    "prompt_sets",
)


def all_nodes() -> list[type[io.ComfyNode]]:
    """Every PaCo node class, in menu order."""
    classes: list[type[io.ComfyNode]] = []
    for name in NODE_MODULES:
        module = importlib.import_module(f".{name}", __name__)
        classes.extend(module.NODES)
    from .comfy_bridge import show_errors_on_the_node

    return [show_errors_on_the_node(node_cls) for node_cls in classes]


class PaCoExtension(ComfyExtension):
    async def on_load(self) -> None:
        """Inside a running ComfyUI: ComfyUI's "unload models" releases PaCo's pipelines and
        judges too; the /paco/jobs routes and the jobs watcher thread."""
        from .comfy_bridge import install_unload_hook
        from .jobs_watch import install_server_hooks

        install_unload_hook()
        install_server_hooks()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.6x never calls on_load (0.33 does, first): install the hooks here too;
        # both installs are idempotent.
        await self.on_load()
        return all_nodes()
