// PaCo text boxes show their names: ComfyUI's frontend (1.49) draws a multiline text box
// without a label, so a node with several (Generate Set: theme, description, panels) shows
// unnamed boxes. This writes each PaCo text box's name in its top-left corner, in the box's
// own reserved top line; and a text box whose input is linked (the frontend hides it) asks
// for no room, so the node's other text boxes take the height instead of an empty band.
import { app } from "../../scripts/app.js";

const LABEL_LINE = 15; // px reserved above the text for the label
const LABEL_COLOR = "#a0a0a0"; // readable on the dark and the light input backgrounds

function labelImage(text) {
  const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${12 + 7 * text.length}" height="${LABEL_LINE}">` +
    `<text x="0" y="11" font-family="sans-serif" font-size="11" fill="${LABEL_COLOR}">${escaped}</text></svg>`;
  return `url("data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}")`;
}

function labelTextBox(widget) {
  const box = widget.element;
  if (!(box instanceof HTMLTextAreaElement) || box.dataset.pacoLabel) return;
  const name = widget.label || widget.name;
  box.dataset.pacoLabel = name;
  box.style.backgroundImage = labelImage(name);
  box.style.backgroundRepeat = "no-repeat";
  box.style.backgroundPosition = "5px 2px";
  box.style.paddingTop = `${LABEL_LINE}px`;
}

function isLinked(node, widget) {
  const input = node.inputs?.find((slot) => slot.widget?.name === widget.name);
  return input?.link != null;
}

function collapseWhenLinked(node, widget) {
  const own = widget.computeLayoutSize?.bind(widget);
  if (!own || widget.pacoCollapses) return;
  widget.pacoCollapses = true;
  widget.computeLayoutSize = (target) =>
    isLinked(node, widget) ? { minHeight: 0, maxHeight: 0, minWidth: 0 } : own(target);
}

app.registerExtension({
  name: "PaCo.TextLabels",
  nodeCreated(node) {
    if (!node.comfyClass?.startsWith("PaCo")) return;
    for (const widget of node.widgets ?? []) {
      if (widget.element instanceof HTMLTextAreaElement) {
        labelTextBox(widget);
        collapseWhenLinked(node, widget);
      }
    }
  },
});
