"""Every node's shape: the PaCo nodes' from their schemas (the pack loaded through the ComfyUI
test double, ``tests/pack_loader.py``), the allowed core nodes' from ``CORE_NODE_LAYOUTS``."""

from __future__ import annotations

from tests.pack_loader import all_node_classes
from tools.workflows.core_nodes import CORE_NODE_LAYOUTS
from tools.workflows.format import NodeLayout, WorkflowError, layout_from_schema


def node_layouts() -> dict[str, NodeLayout]:
    """Every PaCo node's layout (from its schema, built now) plus the allowed core nodes."""
    pack = {layout.node_type: layout for layout in map(layout_from_schema, _schemas())}
    return {**CORE_NODE_LAYOUTS, **pack}


def _schemas():
    return [node_class.GET_SCHEMA() for node_class in all_node_classes()]


def layout_of(layouts: dict[str, NodeLayout], node_type: str) -> NodeLayout:
    if node_type not in layouts:
        raise WorkflowError(
            f"node type {node_type!r} is neither a PaCo node nor an allowed core node ({sorted(CORE_NODE_LAYOUTS)})"
        )
    return layouts[node_type]
