"""A UI-format workflow -> the ``{id: {class_type, inputs}}`` prompt that ``POST /prompt`` takes."""

from __future__ import annotations

from typing import Any

from tools.workflows.format import NodeLayout, WorkflowError
from tools.workflows.node_layouts import layout_of


def is_prompt_link(value: Any) -> bool:
    """Whether an API-format input value is a link ``[node_id, output_index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def to_api_prompt(workflow: dict, layouts: dict[str, NodeLayout]) -> dict[str, dict]:
    """A UI-format workflow -> the API prompt the frontend would queue for it.

    Widget values become inputs by widget name (control values and frontend-only widgets
    are left out); a linked input becomes ``[source node id, output index]``; virtual
    nodes (notes) are dropped.

    Raises:
        WorkflowError: an unknown node type, a widget count that does not fit the schema,
            or a link that does not exist.
    """
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        layout = layout_of(layouts, node["type"])
        if layout.is_virtual:
            continue
        values, _ = layout.read_widget_values(node.get("widgets_values", []))
        inputs = {widget.name: values[widget.name] for widget in layout.widgets if widget.in_prompt}
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            if slot["link"] not in links:
                raise WorkflowError(
                    f"node {node['id']} input {slot['name']!r} names link {slot['link']}, which is not in links"
                )
            link = links[slot["link"]]
            inputs[slot["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
