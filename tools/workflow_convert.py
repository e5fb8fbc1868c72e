"""The shipped example workflows: built from the node schemas, read back, turned into API prompts.

ComfyUI's frontend (1.49, the one ComfyUI 0.33 pins) saves a graph in the UI format,
schema 0.4: ``{id, revision, last_node_id, last_link_id, nodes, links, groups, config,
extra, version}``. What this module relies on, read from the frontend's code
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

``node_layouts()`` gives each node's UI shape (PaCo nodes from their schemas, read
through the ComfyUI test double by ``tests/pack_loader.py``; the core nodes the workflows use from ``CORE_NODE_LAYOUTS``),
``WorkflowBuilder`` lays a graph out left to right, ``to_api_prompt`` converts a UI
workflow into the ``{id: {class_type, inputs}}`` prompt that ``POST /prompt`` takes.
The shipped workflows are defined at the bottom;
``python tools/workflow_convert.py`` rewrites ``workflows/*.json`` from them
(``--check`` only reports stale files).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "tests"):
    # paco_core, and tests/pack_loader.py (the pack loaded through the ComfyUI test double),
    # also when run as a script from anywhere.
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pack_loader import all_node_classes  # noqa: E402
from workflow_specs_pool import POOL_WORKFLOW, pool_workflow  # noqa: E402

WORKFLOWS_DIR = REPO_ROOT / "workflows"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_WIDGET_NAMES = frozenset({"seed", "noise_seed"})
"""The frontend gives an INT widget with one of these names a control widget even unasked."""
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
PACK_CNR_ID = "paco-rl-nodes"
"""The pack's Registry id (``[project] name``), so ComfyUI-Manager can offer the pack
when a workflow's nodes are missing."""


class WorkflowError(ValueError):
    """A UI-format workflow that does not fit the node schemas."""


# --------------------------------------------------------------------------- node shapes


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


CORE_NODE_LAYOUTS: dict[str, NodeLayout] = {
    layout.node_type: layout
    for layout in (
        NodeLayout(
            "SaveImage",
            (Slot("images", "IMAGE"),),
            (Widget("filename_prefix", "STRING", "ComfyUI"),),
            (Slot("images", "IMAGE"),),
        ),
        NodeLayout("PreviewImage", (Slot("images", "IMAGE"),), outputs=(Slot("images", "IMAGE"),)),
        NodeLayout("PreviewAny", (Slot("source", "*"),), outputs=(Slot("STRING", "STRING"),)),
        NodeLayout(
            "LoadImage",
            widgets=(Widget("image", "COMBO"), Widget("upload", "IMAGEUPLOAD", "image", in_prompt=False)),
            outputs=(Slot("IMAGE", "IMAGE"), Slot("MASK", "MASK")),
        ),
        NodeLayout(
            "ImageFromBatch",
            (Slot("image", "IMAGE"),),
            (
                Widget("batch_index", "INT", 0, min=-16384, max=16384),
                Widget("length", "INT", 1, min=1, max=4096),
            ),
            (Slot("IMAGE", "IMAGE"),),
        ),
        NodeLayout(
            "PrimitiveStringMultiline",
            widgets=(Widget("value", "STRING", multiline=True),),
            outputs=(Slot("STRING", "STRING"),),
        ),
        NodeLayout("Note", widgets=(Widget("text", "STRING", "", multiline=True),), is_virtual=True),
        # ComfyUI's own model loaders and sampling nodes, for the native-node workflows.
        NodeLayout(
            "UNETLoader",
            widgets=(Widget("unet_name", "COMBO"), Widget("weight_dtype", "COMBO", "default")),
            outputs=(Slot("MODEL", "MODEL"),),
        ),
        NodeLayout(
            "DualCLIPLoader",
            widgets=(
                Widget("clip_name1", "COMBO"),
                Widget("clip_name2", "COMBO"),
                Widget("type", "COMBO", "flux"),
                Widget("device", "COMBO", "default", optional=True),
            ),
            outputs=(Slot("CLIP", "CLIP"),),
        ),
        NodeLayout(
            "CLIPLoader",
            widgets=(
                Widget("clip_name", "COMBO"),
                Widget("type", "COMBO"),
                Widget("device", "COMBO", "default", optional=True),
            ),
            outputs=(Slot("CLIP", "CLIP"),),
        ),
        NodeLayout("VAELoader", widgets=(Widget("vae_name", "COMBO"),), outputs=(Slot("VAE", "VAE"),)),
        NodeLayout(
            "LoraLoaderModelOnly",
            (Slot("model", "MODEL"),),
            (Widget("lora_name", "COMBO"), Widget("strength_model", "FLOAT", 1.0, min=-100.0, max=100.0)),
            (Slot("MODEL", "MODEL"),),
        ),
        NodeLayout(
            "CLIPTextEncode",
            (Slot("clip", "CLIP"),),
            (Widget("text", "STRING", "", multiline=True),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "FluxGuidance",
            (Slot("conditioning", "CONDITIONING"),),
            (Widget("guidance", "FLOAT", 3.5, min=0.0, max=100.0),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "ConditioningZeroOut",
            (Slot("conditioning", "CONDITIONING"),),
            outputs=(Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "EmptySD3LatentImage",
            widgets=(
                Widget("width", "INT", 1024, min=16, max=16384),
                Widget("height", "INT", 1024, min=16, max=16384),
                Widget("batch_size", "INT", 1, min=1, max=4096),
            ),
            outputs=(Slot("LATENT", "LATENT"),),
        ),
        NodeLayout(
            "KSampler",
            (
                Slot("model", "MODEL"),
                Slot("positive", "CONDITIONING"),
                Slot("negative", "CONDITIONING"),
                Slot("latent_image", "LATENT"),
            ),
            (
                Widget("seed", "INT", 0, min=0, max=18446744073709551615, has_control=True),
                Widget("steps", "INT", 20, min=1, max=10000),
                Widget("cfg", "FLOAT", 8.0, min=0.0, max=100.0),
                Widget("sampler_name", "COMBO", "euler"),
                Widget("scheduler", "COMBO", "simple"),
                Widget("denoise", "FLOAT", 1.0, min=0.0, max=1.0),
            ),
            (Slot("LATENT", "LATENT"),),
        ),
        NodeLayout(
            "VAEDecode", (Slot("samples", "LATENT"), Slot("vae", "VAE")), outputs=(Slot("IMAGE", "IMAGE"),)
        ),
        NodeLayout(
            "VAEEncode", (Slot("pixels", "IMAGE"), Slot("vae", "VAE")), outputs=(Slot("LATENT", "LATENT"),)
        ),
        NodeLayout("FluxKontextImageScale", (Slot("image", "IMAGE"),), outputs=(Slot("IMAGE", "IMAGE"),)),
        NodeLayout(
            "ReferenceLatent",
            (Slot("conditioning", "CONDITIONING"), Slot("latent", "LATENT", optional=True)),
            outputs=(Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "TextEncodeQwenImageEdit",
            (
                Slot("clip", "CLIP"),
                Slot("vae", "VAE", optional=True),
                Slot("image", "IMAGE", optional=True),
            ),
            (Widget("prompt", "STRING", "", multiline=True),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "ImageScaleToTotalPixels",
            (Slot("image", "IMAGE"),),
            (
                Widget("upscale_method", "COMBO", "lanczos"),
                Widget("megapixels", "FLOAT", 1.0, min=0.01, max=16.0),
                Widget("resolution_steps", "INT", 1, min=1, max=256),
            ),
            (Slot("IMAGE", "IMAGE"),),
        ),
        NodeLayout(
            "ModelSamplingAuraFlow",
            (Slot("model", "MODEL"),),
            (Widget("shift", "FLOAT", 1.73, min=0.0, max=100.0),),
            (Slot("MODEL", "MODEL"),),
        ),
    )
}
"""The core nodes the shipped workflows may use, with their inputs in ``/object_info``
order (checked against a real ComfyUI by tests/test_comfyui_integration.py)."""


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


# --------------------------------------------------------------------------- UI -> API


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


# --------------------------------------------------------------------------- building and layout

# Node geometry as ComfyUI 0.33's frontend (1.49.6) draws it, measured in Chromium (and
# checked by tools/workflow_thumbnails.py, which reports every node the frontend enlarges
# on load): a node's least height is NODE_PADDING_HEIGHT + its slot rows
# (the more of sockets and outputs) * SLOT_HEIGHT + its widgets; height beyond that least
# is shared equally by its multiline text widgets. A node saved smaller than its least
# height is enlarged on load (and may then overlap its neighbour), so sizes here are never
# below it.
NODE_TITLE_HEIGHT = 30
"""LiteGraph draws a node's title bar above ``pos``."""
NODE_PADDING_HEIGHT = 14
"""6 px above the first slot row and 8 px below the last widget."""
SLOT_HEIGHT = 20
WIDGET_HEIGHT = 24
MULTILINE_MIN_HEIGHT = 54
MULTILINE_MAX_HEIGHT = 200
"""Longer texts scroll inside their box rather than making a node taller than this per text."""
TEXTAREA_INSET = 20
"""A multiline widget's box is this much wider and taller than its text area."""
NOTE_TEXTAREA_INSET = 22
"""A note's text area is its node height less this."""
TEXT_PADDING = 4
TEXT_CHAR_WIDTH = 6.1
"""The text areas use 10 px monospace: 6.02 px a character measured (DejaVu Sans Mono, Menlo)."""
TEXT_LINE_HEIGHT = 12
"""11 px a line measured; one more for fonts with taller lines."""
GROUP_TITLE_CHAR_WIDTH = 12.5
"""Group titles are drawn in 24 px Inter (10-12 px a character measured), indented 12 px."""
GROUP_TITLE_FONT_SIZE = 24

COLUMN_GAP = 90
"""Room for the links between two columns."""
STACK_GAP = 40
"""Between two nodes of one group stacked in a column."""
GROUP_STACK_GAP = 100
"""Between stacked nodes of different groups (or the note and a group): a group header and a gap."""
GROUP_PADDING = 14
GROUP_HEADER = 44
OPENING_VIEW = (1920, 960)
"""The canvas of a browser page on a 1920 x 1080 screen."""
OPENING_VIEW_INSETS = (70, 100, 30, 30)
"""Left, top, right, bottom: ComfyUI's side bar and menus float over the canvas's edges."""
FIT_SCALES = (0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
"""Zoom levels to choose from: below about 0.57 the frontend draws nodes without their text
(its level-of-detail switch: 14 px node text drawn under 8 px)."""
GROUP_COLORS = {"models": "#a1309b", "generate": "#3f789e", "output": "#8A8", "judge": "#b58b2a"}
DEFAULT_NODE_WIDTH = 330
NODE_WIDTHS = {"PaCoGenerateSet": 600, "Note": 470, "PaCoEditChain": 400, "PaCoTrainLora": 540}
"""Every node in a column takes the column's width: the widest of these (or the default)."""
IMAGE_NODE_HEIGHT = 320
"""Room for the image previews of SaveImage / PreviewImage / LoadImage."""
PREVIEW_TEXT_HEIGHT = 220


@dataclass
class PlacedNode:
    id: int
    layout: NodeLayout
    column: int
    values: dict[str, Any]
    controls: dict[str, str]
    title: str | None = None
    color: tuple[str, str] | None = None
    height: float | None = None
    """A height to draw the node at, when it is more than the node needs (a bigger preview)."""
    width: float | None = None
    """A width instead of its type's (``NODE_WIDTHS``), for a graph that needs narrower columns."""
    pos: tuple[float, float] = (0.0, 0.0)
    size: tuple[float, float] = (0.0, 0.0)
    input_links: dict[str, int] = field(default_factory=dict)
    output_links: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class Group:
    title: str
    members: list[PlacedNode]
    color: str


class WorkflowBuilder:
    """Nodes placed in columns (left to right, stacked top-down), links and groups."""

    def __init__(self, layouts: dict[str, NodeLayout]):
        self.layouts = layouts
        self.nodes: list[PlacedNode] = []
        self.links: list[list] = []
        self.groups: list[Group] = []

    def add(
        self,
        node_type: str,
        column: int,
        *,
        title: str | None = None,
        color: tuple[str, str] | None = None,
        controls: dict[str, str] | None = None,
        height: float | None = None,
        node_width: float | None = None,
        **widget_values: Any,
    ) -> PlacedNode:
        """Add a node; widgets not given take their schema default (an error if there is none)."""
        layout = layout_of(self.layouts, node_type)
        known = {widget.name for widget in layout.widgets}
        unknown = sorted(set(widget_values) - known)
        if unknown:
            raise WorkflowError(f"{node_type} has no widget(s) {unknown}; it has {sorted(known)}")
        values = {}
        for widget in layout.widgets:
            value = widget_values.get(widget.name, widget.default)
            if value is None:
                raise WorkflowError(f"{node_type}.{widget.name} has no default: give a value")
            values[widget.name] = value
        node_controls = {widget.name: "fixed" for widget in layout.widgets if widget.has_control}
        node_controls.update(controls or {})
        node = PlacedNode(
            len(self.nodes) + 1, layout, column, values, node_controls, title, color, height, node_width
        )
        self.nodes.append(node)
        return node

    def connect(self, source: PlacedNode, output: str, target: PlacedNode, input_name: str) -> None:
        slot = source.layout.output_index(output)
        target_names = [item.name for item in target.layout.input_slots]
        if input_name not in target_names:
            raise WorkflowError(
                f"{target.layout.node_type} has no input {input_name!r}; it has {target_names}"
            )
        if input_name in target.input_links:
            raise WorkflowError(f"{target.layout.node_type}.{input_name} is already linked")
        link_id = len(self.links) + 1
        self.links.append(
            [
                link_id,
                source.id,
                slot,
                target.id,
                target_names.index(input_name),
                source.layout.outputs[slot].io_type,
            ]
        )
        source.output_links.setdefault(slot, []).append(link_id)
        target.input_links[input_name] = link_id

    def group(self, title: str, members: Iterable[PlacedNode], color: str) -> None:
        self.groups.append(Group(title, list(members), color))

    def build(self, name: str) -> dict:
        """The UI-format workflow (a fresh dict)."""
        self._place()
        groups = [self._group_json(index, group) for index, group in enumerate(self.groups, start=1)]
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-paco/workflows/{name}")),
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": [self._node_json(node, order) for order, node in enumerate(self._execution_order())],
            "links": [list(link) for link in self.links],
            "groups": groups,
            "config": {},
            "extra": {"ds": self._opening_view(groups)},
            "version": 0.4,
        }

    # ------------------------------------------------------------- layout

    def _place(self) -> None:
        """Columns left to right, each as wide as its widest node and its groups' titles;
        nodes stacked top-down, every node as wide as its column."""
        group_of = {node.id: group for group in self.groups for node in group.members}
        columns = sorted({node.column for node in self.nodes})
        left = dict.fromkeys(columns, 0.0)
        width = {}
        for index, column in enumerate(columns):
            if index:
                previous = columns[index - 1]
                left[column] = left[previous] + width[previous] + COLUMN_GAP
            members = [node for node in self.nodes if node.column == column]
            width[column] = max(
                node.width or NODE_WIDTHS.get(node.layout.node_type, DEFAULT_NODE_WIDTH) for node in members
            )
            for group in self.groups:
                if max(node.column for node in group.members) == column:
                    first = min(node.column for node in group.members)
                    span = left[column] + width[column] - left[first]
                    width[column] += max(0.0, group_title_width(group.title) - 2 * GROUP_PADDING - span)
            y, above = 0.0, None
            for node in members:
                if above is not None:
                    group = group_of.get(node.id)
                    same_group = group is not None and group is group_of.get(above.id)
                    y = above.pos[1] + above.size[1] + (STACK_GAP if same_group else GROUP_STACK_GAP)
                    y += NODE_TITLE_HEIGHT
                node.pos = (left[column], y)
                node.size = (width[column], max(node.height or 0.0, estimated_height(node, width[column])))
                above = node

    def _opening_view(self, groups: list[dict]) -> dict:
        """The view a workflow opened from a file starts with (the Templates browser fits the
        view itself): the whole graph on an OPENING_VIEW canvas, as close as FIT_SCALES allow."""
        boxes = [group["bounding"] for group in groups] + [
            [node.pos[0], node.pos[1] - NODE_TITLE_HEIGHT, node.size[0], node.size[1] + NODE_TITLE_HEIGHT]
            for node in self.nodes
        ]
        left, top = min(box[0] for box in boxes), min(box[1] for box in boxes)
        width = max(box[0] + box[2] for box in boxes) - left
        height = max(box[1] + box[3] for box in boxes) - top
        left_inset, top_inset, right_inset, bottom_inset = OPENING_VIEW_INSETS
        room_width = OPENING_VIEW[0] - left_inset - right_inset
        room_height = OPENING_VIEW[1] - top_inset - bottom_inset
        fitting = [
            scale for scale in FIT_SCALES if width * scale <= room_width and height * scale <= room_height
        ]
        scale = max(fitting, default=min(FIT_SCALES))
        return {
            "scale": scale,
            "offset": [round(left_inset / scale - left, 1), round(top_inset / scale - top, 1)],
        }

    def _execution_order(self) -> list[PlacedNode]:
        """Nodes sorted so that every node comes after the nodes it takes links from."""
        sources = {link[3]: set() for link in self.links}
        for link in self.links:
            sources[link[3]].add(link[1])
        ordered, done = [], set()
        while len(ordered) < len(self.nodes):
            ready = [n for n in self.nodes if n.id not in done and sources.get(n.id, set()) <= done]
            if not ready:
                raise WorkflowError("the workflow's links form a cycle")
            ordered += ready
            done |= {n.id for n in ready}
        return ordered

    def _node_json(self, node: PlacedNode, order: int) -> dict:
        layout = node.layout
        inputs = []
        for item in layout.input_slots:
            entry = {"localized_name": item.name, "name": item.name, "type": item.io_type}
            if isinstance(item, Widget):
                entry["widget"] = {"name": item.name}
            if item.optional:
                entry["shape"] = 7
            entry["link"] = node.input_links.get(item.name)
            inputs.append(entry)
        outputs = [
            {
                "localized_name": slot.name,
                "name": slot.name,
                "type": slot.io_type,
                "links": node.output_links.get(i),
            }
            for i, slot in enumerate(layout.outputs)
        ]
        widgets_values = []
        for widget in layout.widgets:
            widgets_values.append(node.values[widget.name])
            if widget.has_control:
                widgets_values.append(node.controls[widget.name])
        properties = {} if layout.is_virtual else {"Node name for S&R": layout.node_type}
        if not layout.is_virtual:
            properties["cnr_id"] = PACK_CNR_ID if layout.is_pack_node else "comfy-core"
        data = {
            "id": node.id,
            "type": layout.node_type,
            "pos": list(node.pos),
            "size": list(node.size),
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs,
            "properties": properties,
            "widgets_values": widgets_values,
        }
        if node.title:
            data["title"] = node.title
        if node.color:
            data["color"], data["bgcolor"] = node.color
        return data

    @staticmethod
    def _group_json(group_id: int, group: Group) -> dict:
        left = min(node.pos[0] for node in group.members) - GROUP_PADDING
        top = min(node.pos[1] - NODE_TITLE_HEIGHT for node in group.members) - GROUP_HEADER
        right = max(node.pos[0] + node.size[0] for node in group.members) + GROUP_PADDING
        bottom = max(node.pos[1] + node.size[1] for node in group.members) + GROUP_PADDING
        return {
            "id": group_id,
            "title": group.title,
            "bounding": [left, top, right - left, bottom - top],
            "color": group.color,
            "font_size": GROUP_TITLE_FONT_SIZE,
            "flags": {},
        }


def group_title_width(title: str) -> float:
    """How wide a group must be to show its whole title."""
    return len(title) * GROUP_TITLE_CHAR_WIDTH + GROUP_TITLE_FONT_SIZE


def text_lines(text: str, box_width: float) -> int:
    """How many lines ``text`` takes in a text area of ``box_width`` (wrapped at spaces)."""
    columns = max(1, int((box_width - TEXT_PADDING) // TEXT_CHAR_WIDTH))
    return sum(len(textwrap.wrap(line, columns)) or 1 for line in text.splitlines() or [""])


def text_height(text: str, box_width: float) -> float:
    """The height of a text area that shows all of ``text`` without scrolling."""
    return text_lines(text, box_width) * TEXT_LINE_HEIGHT + TEXT_PADDING


def estimated_height(node: PlacedNode, width: float) -> float:
    """A node height at least as large as the frontend draws it at ``width``: slots, widgets,
    previews, and room for the whole text of each multiline widget that is not linked."""
    layout = node.layout
    if layout.node_type in ("SaveImage", "PreviewImage", "LoadImage"):
        return IMAGE_NODE_HEIGHT
    if layout.node_type == "PreviewAny":
        return PREVIEW_TEXT_HEIGHT
    if layout.node_type == "Note":
        return text_height(str(node.values["text"]), width - TEXTAREA_INSET) + NOTE_TEXTAREA_INSET
    rows = max(len(layout.sockets), len(layout.outputs))
    height = NODE_PADDING_HEIGHT + rows * SLOT_HEIGHT
    multiline = [widget for widget in layout.widgets if widget.multiline]
    for widget in layout.widgets:
        if not widget.multiline:
            height += WIDGET_HEIGHT * (2 if widget.has_control else 1)
    # The frontend shares the free height equally among a node's multiline widgets (a
    # linked one shows no text but keeps its share), so each gets the room the longest needs.
    shown = [widget for widget in multiline if widget.name not in node.input_links]
    needed = [text_height(str(node.values[w.name]), width - TEXTAREA_INSET) + TEXTAREA_INSET for w in shown]
    share = min(MULTILINE_MAX_HEIGHT, max([MULTILINE_MIN_HEIGHT, *needed]))
    return height + share * len(multiline)


# --------------------------------------------------------------------------- the shipped workflows

MODEL_FOLDER_NOTE = """\
Where the models go (ComfyUI/models/...); then press R to refresh:
diffusers/FLUX.1-dev/  the whole diffusers folder of
    black-forest-labs/FLUX.1-dev (the one holding model_index.json)
diffusers/FLUX.1-Kontext-dev/  the same for FLUX.1-Kontext-dev
loras/PaCo-FLUX.1-dev-Lora/  hf download X-GenGroup/PaCo-FLUX.1-dev-Lora
    --local-dir models/loras/PaCo-FLUX.1-dev-Lora  ('(none)': base model)
text_encoders/PaCo-Reward-7B/  the judge X-GenGroup/PaCo-Reward-7B
    (downloaded the same way), or a judge server URL
Memory: FLUX.1-dev in bf16 needs about 33 GB of GPU memory with
offload 'none' (choose 'model' on smaller cards); the judge about
16 GB more (keep_loaded off on both loaders to share one GPU)."""
"""Shown in every shipped workflow; the tests place models under exactly these names."""

SHIPPED_MODEL_NAMES = {
    "diffusers": ("FLUX.1-dev", "FLUX.1-Kontext-dev"),
    "loras": ("PaCo-FLUX.1-dev-Lora",),  # the folder `hf download ... --local-dir` makes
    "text_encoders": ("PaCo-Reward-7B",),
}
EXAMPLE_INPUT_IMAGE = "example.png"
"""The picture ComfyUI ships in its input/ folder."""
DARK_NOTE = ("#222", "#000")

FOX_THEME = "a red fox with a vibrant red coat, white belly, and bushy tail in various scenarios."
FOX_DESCRIPTION = (
    "All images maintain hyper-realistic detail, with consistent rendering of the fox's fur texture, "
    "proportions, and coloration. The environments emphasize natural lighting and vivid atmospheres while "
    "keeping the fox as the focal point."
)
FOX_PANELS = "\n".join(
    (
        "A red fox wearing a thick, knitted warm coat in a snowy woodland. Soft snowflakes fall around it, "
        "and distant pine trees frame the wintry scene.",
        "The fox exploring a dense autumn forest, surrounded by golden leaves and moss-covered rocks. Sunlight "
        "filters through the canopy, casting dappled shadows on its fur.",
        "The fox wrapped in a patterned woolen scarf, sitting near a rustic wooden fence in a meadow, "
        "late-afternoon light on the white fur of its chest.",
        "The fox perched on a hilltop under a starry night sky, its head tilted upward, the Milky Way "
        "stretching above.",
    )
)
SAMURAI_THEME = "depicting a futuristic samurai's upper body in cyberpunk style with neon-lit armor."
SAMURAI_DESCRIPTION = (
    "All images maintain a sleek high-tech helmet and armor with glowing neon accents, set against a dark "
    "cyberpunk backdrop with holographic light effects. The character's identity and design remain unified."
)
SAMURAI_PANELS = "\n".join(
    (
        "The samurai gazes forward calmly, neon-blue lines tracing his angular visor.",
        "A confident smirk beneath the visor, lit by a subtle neon-pink glow; rain dots the shadowy background.",
        "The visor flares bright crimson as he narrows his eyes, orange energy surging across his armor.",
        "A diagonal crack splits the visor, leaking golden energy mist; the circuits flicker green.",
    )
)
EDIT_INSTRUCTIONS = (
    "Change the season to winter and cover the ground with fresh snow.",
    "Make it night, lit by warm lantern light.",
    "Turn the picture into a watercolor painting, keeping every shape and the composition the same.",
)


def _models_note(builder: WorkflowBuilder, column: int) -> PlacedNode:
    return builder.add("Note", column, title="Read me: models", color=DARK_NOTE, text=MODEL_FOLDER_NOTE)


def _flux_with_paco_lora(builder: WorkflowBuilder) -> tuple[PlacedNode, PlacedNode]:
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    lora = builder.add("PaCoLora", 0, lora_name=SHIPPED_MODEL_NAMES["loras"][0], strength=1.0)
    builder.connect(loader, "pipeline", lora, "pipeline")
    return loader, lora


def consistent_set_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """FLUX.1-dev + PaCo LoRA -> a 2x2 set -> saved grid, previewed panels; the judge scores the
    panels against the set's judge theme (the grid prompt's preamble, as PaCo-RL trained)."""
    builder = WorkflowBuilder(layouts)
    loader, lora = _flux_with_paco_lora(builder)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    generate = builder.add(
        "PaCoGenerateSet", 1, theme=FOX_THEME, description=FOX_DESCRIPTION, panels=FOX_PANELS, layout="2x2",
        panel_width=512, panel_height=512, steps=28, guidance=3.5, seed=42, num_sets=1,
    )  # fmt: skip
    save_grid = builder.add("SaveImage", 2, title="Grid", filename_prefix="PaCo/consistent_set")
    panels = builder.add("PreviewImage", 2, title="Panels")
    score = builder.add("PaCoSetConsistency", 3, layout="batch", both_orders=False)
    heatmap = builder.add("PreviewImage", 3, title="Pair scores")
    report = builder.add("PreviewAny", 3, title="Judge report")

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", save_grid, "images")
    builder.connect(generate, "panels", panels, "images")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(generate, "panels", score, "images")
    builder.connect(generate, "judge_theme", score, "theme")
    builder.connect(score, "heatmap", heatmap, "images")
    builder.connect(score, "report", report, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Generate a consistent set", [generate], GROUP_COLORS["generate"])
    builder.group("3. Save", [save_grid, panels], GROUP_COLORS["output"])
    builder.group("4. Judge the set (PaCo-Reward)", [score, heatmap, report], GROUP_COLORS["judge"])
    return builder.build("paco-consistent-set")


def best_of_n_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """Four candidate sets (seeds 42..45) -> the judge ranks them -> the most consistent one is saved."""
    builder = WorkflowBuilder(layouts)
    loader, lora = _flux_with_paco_lora(builder)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    generate = builder.add(
        "PaCoGenerateSet", 1, theme=SAMURAI_THEME, description=SAMURAI_DESCRIPTION, panels=SAMURAI_PANELS,
        layout="2x2", panel_width=512, panel_height=512, steps=28, guidance=3.5, seed=42, num_sets=4,
    )  # fmt: skip
    side_by_side = builder.add("PaCoComposeGrid", 2, title="The 4 candidates side by side", layout="2x2")
    candidates = builder.add("PreviewImage", 2, title="All candidates (set 1 top left)", height=460)
    rank = builder.add("PaCoRankSets", 3, layout="2x2", both_orders=False)
    best = builder.add("SaveImage", 3, title="Best set", filename_prefix="PaCo/best_of_4")
    ranking = builder.add("PreviewAny", 3, title="Ranking (which set and seed won)")

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", side_by_side, "panels")
    builder.connect(side_by_side, "grid", candidates, "images")
    builder.connect(judge, "judge", rank, "judge")
    builder.connect(generate, "grids", rank, "images")
    builder.connect(generate, "judge_theme", rank, "theme")
    builder.connect(generate, "first_seed", rank, "first_seed")
    builder.connect(rank, "best", best, "images")
    builder.connect(rank, "report", ranking, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Generate 4 candidate sets", [generate], GROUP_COLORS["generate"])
    builder.group("3. The candidates", [side_by_side, candidates], GROUP_COLORS["output"])
    builder.group("4. Rank them, keep the best", [rank, best, ranking], GROUP_COLORS["judge"])
    return builder.build("paco-best-of-n")


def edit_chain_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """A picture edited three times in a row with FLUX.1-Kontext-dev; the judge scores the first
    edit against the chain's own first instruction."""
    builder = WorkflowBuilder(layouts)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-Kontext-dev")
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Reference", image=EXAMPLE_INPUT_IMAGE)
    chain = builder.add(
        "PaCoEditChain", 2, instructions="\n".join(EDIT_INSTRUCTIONS), from_reference=False,
        include_reference=True, steps=28, model_guidance=True, seed=42, max_area=1024 * 1024,
    )  # fmt: skip
    save = builder.add("SaveImage", 2, title="Reference and edits", filename_prefix="PaCo/edit_chain")
    first_edit = builder.add("ImageFromBatch", 3, title="Edit 1 (batch item 1)", batch_index=1, length=1)
    score = builder.add("PaCoEditScore", 3)
    report = builder.add("PreviewAny", 3, title="Edit 1 scores")

    builder.connect(loader, "pipeline", chain, "pipeline")
    builder.connect(reference, "IMAGE", chain, "image")
    builder.connect(chain, "images", save, "images")
    builder.connect(chain, "images", first_edit, "image")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(reference, "IMAGE", score, "original")
    builder.connect(first_edit, "IMAGE", score, "edited")
    builder.connect(chain, "first_instruction", score, "instruction")
    builder.connect(score, "report", report, "source")

    builder.group("1. Models", [loader, judge], GROUP_COLORS["models"])
    builder.group("2. Reference", [reference], GROUP_COLORS["output"])
    builder.group("3. Edit chain (each step edits the last)", [chain, save], GROUP_COLORS["generate"])
    builder.group("4. Score the first edit", [first_edit, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-edit-chain")


TRAINING_PROMPTS = """[2x2] a red fox with a vibrant red coat, white belly and bushy tail, watercolor
The fox sits on a mossy log in an autumn forest.
The fox leaps over a frozen stream in the snow.
The fox sleeps curled under a pine tree at dusk.
The fox watches the full moon from a hilltop.

[1x3] an old lighthouse keeper with a grey beard and a yellow raincoat, ink and wash
He climbs the spiral stairs with a lantern.
He lights the great lamp at the top of the tower.
He waves at a passing ship in the morning fog."""
"""The training workflow's example prompts: one set per block (a theme line, one line per panel)."""
TRAINED_LORA_NAME = "paco-sets"
SHORT_FOX_PANELS = "\n".join(
    (
        "The fox in a knitted coat in a snowy woodland.",
        "The fox exploring a golden autumn forest.",
        "The fox in a woolen scarf by a meadow fence.",
        "The fox on a hilltop under the Milky Way.",
    )
)


def train_lora_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """PaCo Train LoRA starts a background job (the queue moves on); PaCo Training Job shows its
    status, latest sample and reward curves on the node and hands its best LoRA to PaCo LoRA -> PaCo
    Generate Set. Queue again at any time to refresh; the set is made once the first checkpoint
    exists (before that the LoRA's users are skipped)."""
    builder = WorkflowBuilder(layouts)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    lora = builder.add("PaCoLora", 0, lora_name=SHIPPED_MODEL_NAMES["loras"][0], strength=1.0)
    _models_note(builder, 0)
    train = builder.add(
        "PaCoTrainLora", 1, pipeline="FLUX.1-dev", preset="t2is-flux", training_prompts=TRAINING_PROMPTS,
        rewards="consistency=1", iterations=300, learning_rate=3e-4, group_size=16, train_resolution=512,
        lora_name=TRAINED_LORA_NAME, new_run=False,
    )  # fmt: skip
    watch = builder.add("PaCoTrainingJob", 1, lora="best")
    generate = builder.add(
        "PaCoGenerateSet", 2, theme=FOX_THEME, description="", panels=SHORT_FOX_PANELS, layout="2x2",
        panel_width=512, panel_height=512, steps=28, guidance=3.5, seed=42, num_sets=1,
    )  # fmt: skip
    save = builder.add("SaveImage", 2, title="Set with the trained LoRA", filename_prefix="PaCo/trained_lora")

    builder.connect(judge, "judge", train, "judge")
    builder.connect(train, "job", watch, "job")
    builder.connect(loader, "pipeline", lora, "pipeline")
    builder.connect(watch, "lora_name", lora, "lora_name")
    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", save, "images")

    builder.group("1. Models", [loader, judge, lora], GROUP_COLORS["models"])
    builder.group("2. Train (returns at once), watch (queue again)", [train, watch], GROUP_COLORS["judge"])
    builder.group("3. A set with its best LoRA", [generate, save], GROUP_COLORS["generate"])
    return builder.build("paco-train-lora")


NATIVE_MODEL_NOTE = """\
ComfyUI's own model files (ComfyUI/models/...); then press R to refresh:
diffusion_models/flux1-dev.safetensors  FLUX.1-dev (23.8 GB bf16;
    fp8: flux1-dev-fp8_e4m3fn, weight_dtype default)
diffusion_models/flux1-kontext-dev.safetensors  FLUX.1-Kontext-dev
diffusion_models/qwen_image_edit_fp8_e4m3fn.safetensors  Qwen-Image-Edit
    (2509: qwen_image_edit_2509_fp8_e4m3fn.safetensors)
text_encoders/clip_l.safetensors + t5xxl_fp16.safetensors (FLUX)
text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors (Qwen-Image-Edit)
vae/ae.safetensors (FLUX), vae/qwen_image_vae.safetensors (Qwen)
loras/paco_t2is.safetensors, paco_kontext_edit.safetensors,
    paco_qwen_image_edit.safetensors  the PaCo LoRAs (the files of
    X-GenGroup/PaCo-FLUX.1-dev-Lora, -Kontext-, -Qwen-Image-Edit-Lora)
text_encoders/PaCo-Reward-7B/  the judge X-GenGroup/PaCo-Reward-7B
The same files load in PaCo's own nodes: PaCo Pipeline Loader
(ComfyUI files). Sizes and fp8 variants: docs/model-files.md."""
"""Shown in the native-node workflows; the tests place models under exactly these names."""

NATIVE_MODEL_NAMES = {
    "diffusion_models": (
        "flux1-dev.safetensors",
        "flux1-kontext-dev.safetensors",
        "qwen_image_edit_fp8_e4m3fn.safetensors",
    ),
    "text_encoders": (
        "clip_l.safetensors",
        "t5xxl_fp16.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    ),
    "vae": ("ae.safetensors", "qwen_image_vae.safetensors"),
    "loras": ("paco_t2is.safetensors", "paco_kontext_edit.safetensors", "paco_qwen_image_edit.safetensors"),
}
EDIT_INSTRUCTION = "Change the season to winter and cover the ground with fresh snow."


def _native_note(builder: WorkflowBuilder, column: int) -> PlacedNode:
    return builder.add("Note", column, title="Read me: model files", color=DARK_NOTE, text=NATIVE_MODEL_NOTE)


def _native_flux_models(builder: WorkflowBuilder, transformer: str, lora: str) -> tuple[PlacedNode, ...]:
    unet = builder.add("UNETLoader", 0, title="Load Diffusion Model", unet_name=transformer)
    clip = builder.add(
        "DualCLIPLoader", 0, clip_name1="clip_l.safetensors", clip_name2="t5xxl_fp16.safetensors", type="flux"
    )
    vae = builder.add("VAELoader", 0, title="Load VAE", vae_name="ae.safetensors")
    with_lora = builder.add("LoraLoaderModelOnly", 0, title="PaCo LoRA", lora_name=lora, strength_model=1.0)
    builder.connect(unet, "MODEL", with_lora, "model")
    return unet, clip, vae, with_lora


def native_flux_set_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own FLUX.1-dev graph (Load Diffusion Model -> PaCo LoRA -> KSampler) drawing one
    2x2 grid from PaCo Grid Prompt's prompt; PaCo Split Grid cuts the panels, the judge scores them."""
    builder = WorkflowBuilder(layouts)
    unet, clip, vae, with_lora = _native_flux_models(
        builder, "flux1-dev.safetensors", "paco_t2is.safetensors"
    )
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _native_note(builder, 1)
    grid_prompt = builder.add(
        "PaCoGridPrompt", 1, theme=FOX_THEME, shared_description=FOX_DESCRIPTION, panel_prompts=FOX_PANELS,
        layout="2x2",
    )  # fmt: skip
    encode = builder.add("CLIPTextEncode", 2, title="CLIP Text Encode (grid prompt)")
    guidance = builder.add("FluxGuidance", 2, guidance=3.5)
    negative = builder.add("ConditioningZeroOut", 2)
    latent = builder.add("EmptySD3LatentImage", 2, title="Empty latent: the grid size", width=1024)
    sampler = builder.add(
        "KSampler", 2, seed=42, steps=28, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0
    )
    decode = builder.add("VAEDecode", 2)
    save_grid = builder.add("SaveImage", 3, title="Grid", filename_prefix="PaCo/native_set")
    split = builder.add("PaCoSplitGrid", 3)
    score = builder.add("PaCoSetConsistency", 3, layout="batch", both_orders=False)
    report = builder.add("PreviewAny", 3, title="Judge report")

    builder.connect(clip, "CLIP", encode, "clip")
    builder.connect(grid_prompt, "prompt", encode, "text")
    builder.connect(encode, "CONDITIONING", guidance, "conditioning")
    builder.connect(encode, "CONDITIONING", negative, "conditioning")
    builder.connect(with_lora, "MODEL", sampler, "model")
    builder.connect(guidance, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(latent, "LATENT", sampler, "latent_image")
    builder.connect(sampler, "LATENT", decode, "samples")
    builder.connect(vae, "VAE", decode, "vae")
    builder.connect(decode, "IMAGE", save_grid, "images")
    builder.connect(decode, "IMAGE", split, "image")
    builder.connect(grid_prompt, "layout", split, "layout")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(split, "panels", score, "images")
    builder.connect(grid_prompt, "judge_theme", score, "theme")
    builder.connect(score, "report", report, "source")

    builder.group(
        "1. ComfyUI's FLUX.1-dev + the PaCo LoRA", [unet, clip, vae, with_lora, judge], GROUP_COLORS["models"]
    )
    builder.group("2. One prompt for the whole set", [grid_prompt], GROUP_COLORS["generate"])
    builder.group(
        "3. Sample the grid", [encode, guidance, negative, latent, sampler, decode], GROUP_COLORS["generate"]
    )
    builder.group("4. Save, cut into panels, judge", [save_grid, split, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-flux-set")


def native_kontext_edit_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own FLUX.1-Kontext-dev edit graph with the PaCo Kontext LoRA; the judge scores the edit."""
    builder = WorkflowBuilder(layouts)
    unet, clip, vae, with_lora = _native_flux_models(
        builder, "flux1-kontext-dev.safetensors", "paco_kontext_edit.safetensors"
    )
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _native_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Reference", image=EXAMPLE_INPUT_IMAGE)
    instruction = builder.add("PrimitiveStringMultiline", 1, title="Instruction", value=EDIT_INSTRUCTION)
    scale = builder.add("FluxKontextImageScale", 1)
    encode_image = builder.add("VAEEncode", 1)
    encode = builder.add("CLIPTextEncode", 2, title="CLIP Text Encode (instruction)")
    reference_latent = builder.add("ReferenceLatent", 2)
    guidance = builder.add("FluxGuidance", 2, guidance=2.5)
    negative = builder.add("ConditioningZeroOut", 2)
    sampler = builder.add(
        "KSampler", 2, seed=42, steps=28, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0
    )
    decode = builder.add("VAEDecode", 2)
    save = builder.add("SaveImage", 3, title="Edited", filename_prefix="PaCo/native_kontext_edit")
    score = builder.add("PaCoEditScore", 3)
    report = builder.add("PreviewAny", 3, title="Edit scores")

    builder.connect(reference, "IMAGE", scale, "image")
    builder.connect(scale, "IMAGE", encode_image, "pixels")
    builder.connect(vae, "VAE", encode_image, "vae")
    builder.connect(clip, "CLIP", encode, "clip")
    builder.connect(instruction, "STRING", encode, "text")
    builder.connect(encode, "CONDITIONING", reference_latent, "conditioning")
    builder.connect(encode_image, "LATENT", reference_latent, "latent")
    builder.connect(reference_latent, "CONDITIONING", guidance, "conditioning")
    builder.connect(encode, "CONDITIONING", negative, "conditioning")
    builder.connect(with_lora, "MODEL", sampler, "model")
    builder.connect(guidance, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(encode_image, "LATENT", sampler, "latent_image")
    builder.connect(sampler, "LATENT", decode, "samples")
    builder.connect(vae, "VAE", decode, "vae")
    builder.connect(decode, "IMAGE", save, "images")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(scale, "IMAGE", score, "original")
    builder.connect(decode, "IMAGE", score, "edited")
    builder.connect(instruction, "STRING", score, "instruction")
    builder.connect(score, "report", report, "source")

    builder.group(
        "1. ComfyUI's Kontext + the PaCo LoRA", [unet, clip, vae, with_lora, judge], GROUP_COLORS["models"]
    )
    builder.group(
        "2. Reference and instruction", [reference, instruction, scale, encode_image], GROUP_COLORS["output"]
    )
    builder.group(
        "3. Sample the edit",
        [encode, reference_latent, guidance, negative, sampler, decode],
        GROUP_COLORS["generate"],
    )
    builder.group("4. Save and score the edit", [save, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-kontext-edit")


def native_qwen_edit_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """ComfyUI's own Qwen-Image-Edit graph with the PaCo LoRA; the judge scores the edit."""
    builder = WorkflowBuilder(layouts)
    unet = builder.add(
        "UNETLoader", 0, title="Load Diffusion Model", unet_name="qwen_image_edit_fp8_e4m3fn.safetensors"
    )
    clip = builder.add("CLIPLoader", 0, clip_name="qwen_2.5_vl_7b_fp8_scaled.safetensors", type="qwen_image")
    vae = builder.add("VAELoader", 0, title="Load VAE", vae_name="qwen_image_vae.safetensors")
    with_lora = builder.add(
        "LoraLoaderModelOnly",
        0,
        title="PaCo LoRA",
        lora_name="paco_qwen_image_edit.safetensors",
        strength_model=1.0,
    )
    shift = builder.add("ModelSamplingAuraFlow", 2, shift=3.1)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _native_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Reference", image=EXAMPLE_INPUT_IMAGE)
    instruction = builder.add("PrimitiveStringMultiline", 1, title="Instruction", value=EDIT_INSTRUCTION)
    scale = builder.add("ImageScaleToTotalPixels", 1, upscale_method="lanczos", megapixels=1.0)
    encode_image = builder.add("VAEEncode", 2)
    positive = builder.add("TextEncodeQwenImageEdit", 2, title="Instruction + image")
    negative = builder.add("TextEncodeQwenImageEdit", 2, title="Negative (empty)", prompt="")
    sampler = builder.add(
        "KSampler", 2, seed=42, steps=20, cfg=4.0, sampler_name="euler", scheduler="simple", denoise=1.0
    )
    decode = builder.add("VAEDecode", 2)
    save = builder.add("SaveImage", 3, title="Edited", filename_prefix="PaCo/native_qwen_edit")
    score = builder.add("PaCoEditScore", 3)
    report = builder.add("PreviewAny", 3, title="Edit scores")

    builder.connect(unet, "MODEL", with_lora, "model")
    builder.connect(with_lora, "MODEL", shift, "model")
    builder.connect(reference, "IMAGE", scale, "image")
    builder.connect(scale, "IMAGE", encode_image, "pixels")
    builder.connect(vae, "VAE", encode_image, "vae")
    for encoder in (positive, negative):
        builder.connect(clip, "CLIP", encoder, "clip")
        builder.connect(vae, "VAE", encoder, "vae")
    builder.connect(scale, "IMAGE", positive, "image")
    builder.connect(instruction, "STRING", positive, "prompt")
    builder.connect(shift, "MODEL", sampler, "model")
    builder.connect(positive, "CONDITIONING", sampler, "positive")
    builder.connect(negative, "CONDITIONING", sampler, "negative")
    builder.connect(encode_image, "LATENT", sampler, "latent_image")
    builder.connect(sampler, "LATENT", decode, "samples")
    builder.connect(vae, "VAE", decode, "vae")
    builder.connect(decode, "IMAGE", save, "images")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(scale, "IMAGE", score, "original")
    builder.connect(decode, "IMAGE", score, "edited")
    builder.connect(instruction, "STRING", score, "instruction")
    builder.connect(score, "report", report, "source")

    models = [unet, clip, vae, with_lora, judge]
    builder.group("1. ComfyUI's Qwen-Image-Edit + the PaCo LoRA", models, GROUP_COLORS["models"])
    builder.group("2. Reference and instruction", [reference, instruction, scale], GROUP_COLORS["output"])
    builder.group(
        "3. Sample the edit",
        [encode_image, positive, negative, shift, sampler, decode],
        GROUP_COLORS["generate"],
    )
    builder.group("4. Save and score the edit", [save, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-native-qwen-edit")


SHIPPED_WORKFLOWS: dict[str, Callable[[dict[str, NodeLayout]], dict]] = {
    "paco-consistent-set": consistent_set_workflow,
    "paco-best-of-n": best_of_n_workflow,
    "paco-edit-chain": edit_chain_workflow,
    "paco-native-flux-set": native_flux_set_workflow,
    "paco-native-kontext-edit": native_kontext_edit_workflow,
    "paco-native-qwen-edit": native_qwen_edit_workflow,
    "paco-train-lora": train_lora_workflow,
    "paco-train-character": lambda layouts: __import__("workflow_specs_character").character_training_workflow(
        layouts, sys.modules[__name__]
    ),
}
SHIPPED_WORKFLOWS[POOL_WORKFLOW] = pool_workflow
from workflow_specs_consistency import CONSISTENCY_WORKFLOWS  # noqa: E402  (it builds on the helpers above)

SHIPPED_WORKFLOWS.update(CONSISTENCY_WORKFLOWS)
NATIVE_WORKFLOWS = ("paco-native-flux-set", "paco-native-kontext-edit", "paco-native-qwen-edit")
"""Workflows of ComfyUI's own model nodes with PaCo LoRAs (their note: ``NATIVE_MODEL_NOTE``)."""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the shipped example workflows (workflows/*.json) from the PaCo node schemas."
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a shipped file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_workflows()
        for name in stale:
            print(f"workflows/{name}.json is stale: run python tools/workflow_convert.py")
        return 1 if stale else 0
    for written in write_shipped_workflows():
        print(written.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    # Run as the imported module, so the workflow spec modules (which import workflow_convert)
    # and this script share one set of classes.
    import workflow_convert

    sys.exit(workflow_convert.main())
