"""``WorkflowBuilder``: nodes placed in columns, links and groups, written as a UI-format workflow.

The layout engine sizes every node at least as large as ComfyUI's frontend draws it, stacks
each column's nodes top-down, widens columns to their groups' titles and picks the zoom the
workflow opens at.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tools.workflows.format import PACK_CNR_ID, NodeLayout, Widget, WorkflowError
from tools.workflows.node_layouts import layout_of

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
