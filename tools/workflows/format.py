"""ComfyUI's UI workflow format: the shapes of nodes as the frontend saves them.

ComfyUI's frontend (1.49, the one ComfyUI 0.33 pins) saves a graph in the UI format,
schema 0.4: ``{id, revision, last_node_id, last_link_id, nodes, links, groups, config,
extra, version}``. What this package relies on, read from the frontend's code
(``getOrderedInputSpecs`` / ``addInputs`` / ``LGraphNode.configure``) and from ComfyUI's
own templates:

- a node's widgets are its widget-type inputs (INT, FLOAT, STRING, BOOLEAN, COMBO) in
  ``/object_info`` order: the required ones, then the optional ones;
- ``widgets_values`` holds their values in that order, matched by position; an INT widget
  with ``control_after_generate`` (and any INT named ``seed`` / ``noise_seed``) is followed
  by its control value (``fixed``, ``increment``, ``decrement``, ``randomize``);
- a node's ``inputs`` list holds the socket inputs, then one entry per widget
  (``"widget": {"name": ...}``), in that same order; optional ones have ``"shape": 7``;
- ``links`` are ``[id, from_node, from_slot, to_node, to_slot, type]``, a slot being an
  index into the source's ``outputs`` / the target's ``inputs``;
- ``Note`` / ``MarkdownNote`` exist only in the frontend and never reach the server.

``NodeLayout`` is one node type's shape; ``layout_from_schema`` reads a PaCo node's from its schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_WIDGET_NAMES = frozenset({"seed", "noise_seed"})
"""The frontend gives an INT widget with one of these names a control widget even unasked."""
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
PACK_CNR_ID = "paco-rl-nodes"
"""The pack's Registry id (``[project] name``), so ComfyUI-Manager can offer the pack
when a workflow's nodes are missing."""


class WorkflowError(ValueError):
    """A UI-format workflow that does not fit the node schemas."""


@dataclass(frozen=True)
class Slot:
    """A socket: an input that takes a link, or an output."""

    name: str
    io_type: str
    optional: bool = False


@dataclass(frozen=True)
class Widget:
    """A widget input, with what its schema allows."""

    name: str
    io_type: str
    default: Any = None
    options: tuple | None = None
    min: float | None = None
    max: float | None = None
    has_control: bool = False
    optional: bool = False
    multiline: bool = False
    in_prompt: bool = True
    """False for a frontend-only widget (LoadImage's upload button)."""


@dataclass(frozen=True)
class NodeLayout:
    """How one node type looks in the UI format."""

    node_type: str
    sockets: tuple[Slot, ...] = ()
    widgets: tuple[Widget, ...] = ()
    outputs: tuple[Slot, ...] = ()
    is_virtual: bool = False
    is_pack_node: bool = False

    @property
    def num_widget_values(self) -> int:
        return sum(2 if widget.has_control else 1 for widget in self.widgets)

    @property
    def input_slots(self) -> list[Slot | Widget]:
        """The node's ``inputs`` list: sockets first, then widgets (none for a virtual node)."""
        return [] if self.is_virtual else [*self.sockets, *self.widgets]

    def widget(self, name: str) -> Widget:
        for widget in self.widgets:
            if widget.name == name:
                return widget
        raise WorkflowError(
            f"{self.node_type} has no widget {name!r}; it has {[w.name for w in self.widgets]}"
        )

    def output_index(self, name: str) -> int:
        names = [slot.name for slot in self.outputs]
        if name not in names:
            raise WorkflowError(f"{self.node_type} has no output {name!r}; it has {names}")
        return names.index(name)

    def read_widget_values(self, values: list) -> tuple[dict[str, Any], dict[str, Any]]:
        """``widgets_values`` -> ({widget name: value}, {widget name: control value})."""
        if len(values) != self.num_widget_values:
            raise WorkflowError(
                f"{self.node_type} has {self.num_widget_values} widget values "
                f"({', '.join(self._value_names())}), the workflow gives {len(values)}: {values!r}"
            )
        by_name, controls, position = {}, {}, 0
        for widget in self.widgets:
            by_name[widget.name] = values[position]
            position += 1
            if widget.has_control:
                controls[widget.name] = values[position]
                position += 1
        return by_name, controls

    def _value_names(self) -> list[str]:
        names = []
        for widget in self.widgets:
            names += [widget.name, f"{widget.name} control"] if widget.has_control else [widget.name]
        return names


def layout_from_schema(schema) -> NodeLayout:
    """The UI shape of a V3 node, as the frontend builds it from ``/object_info``."""
    ordered = [item for item in schema.inputs if not item.optional] + [
        item for item in schema.inputs if item.optional
    ]
    sockets, widgets = [], []
    for item in ordered:
        io_type = item.get_io_type()
        if io_type not in WIDGET_TYPES or getattr(item, "force_input", None):
            sockets.append(Slot(item.id, io_type, item.optional))
            continue
        control = getattr(item, "control_after_generate", None)
        if io_type == "COMBO" and control:
            raise WorkflowError(
                f"{schema.node_id}.{item.id}: a combo with a control widget is not supported here"
            )
        widgets.append(
            Widget(
                name=item.id,
                io_type=io_type,
                default=item.default,
                options=tuple(item.options) if io_type == "COMBO" else None,
                min=getattr(item, "min", None),
                max=getattr(item, "max", None),
                has_control=io_type == "INT" and (bool(control) or item.id in SEED_WIDGET_NAMES),
                optional=item.optional,
                multiline=bool(getattr(item, "multiline", False)),
            )
        )
    outputs = tuple(Slot(output.display_name or output.io_type, output.io_type) for output in schema.outputs)
    return NodeLayout(schema.node_id, tuple(sockets), tuple(widgets), outputs, is_pack_node=True)
