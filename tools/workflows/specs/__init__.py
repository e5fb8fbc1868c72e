"""The shipped example workflows: their content, one module per workflow or group, and the registry.

Each module gives ``WORKFLOWS``, ``{file name: function(layouts) -> UI-format workflow}``, built
with ``tools.workflows.builder`` on the shared pieces of ``common``. A new workflow: a new module
here and one line in ``SHIPPED_WORKFLOWS``; ``python -m tools.workflow_convert`` writes
``workflows/<name>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tools.workflows.format import NodeLayout
from tools.workflows.node_layouts import node_layouts
from tools.workflows.specs import character_training, consistency, edit_chain, native, pool, sets, training

WORKFLOWS_DIR = Path(__file__).resolve().parents[3] / "workflows"
SHIPPED_WORKFLOWS: dict[str, Callable[[dict[str, NodeLayout]], dict]] = {
    **sets.WORKFLOWS,
    **edit_chain.WORKFLOWS,
    **native.WORKFLOWS,
    **training.WORKFLOWS,
    **character_training.WORKFLOWS,
    **pool.WORKFLOWS,
    **consistency.WORKFLOWS,
}
NATIVE_WORKFLOWS = native.NATIVE_WORKFLOWS


def workflow_text(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def write_shipped_workflows(folder: Path = WORKFLOWS_DIR) -> list[Path]:
    """Write every shipped workflow as ``folder/<name>.json``; returns the paths."""
    from paco_core.io import atomic_write_text

    layouts = node_layouts()
    written = []
    for name, build in SHIPPED_WORKFLOWS.items():
        path = atomic_write_text(folder / f"{name}.json", workflow_text(build(layouts)))
        path.chmod(0o644)  # a shipped file, readable by whoever runs ComfyUI
        written.append(path)
    return written


def stale_workflows(folder: Path = WORKFLOWS_DIR) -> list[str]:
    """Names of the shipped workflows whose file differs from what the generator writes."""
    layouts = node_layouts()
    stale = []
    for name, build in SHIPPED_WORKFLOWS.items():
        path = folder / f"{name}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != workflow_text(build(layouts)):
            stale.append(name)
    return stale
