// A PaCo node's error in the artist's words, where it is seen: ComfyUI's frontend shows a
// failed prompt as a generic toast and keeps the node's own message behind "View details".
// This adds a toast that says the pack's one-line message (what was wrong and how to fix
// it) and names the node, and puts the same line under the node on the canvas.
//
// Under the node: the line goes through the frontend's own "progress_text" event, the one
// the server's status lines use, so each frontend draws it its own way (1.27 to 1.58). It is
// sent after the frontend has handled the error, because 1.58 clears a job's status lines
// when the job ends; it goes when the node runs again.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const LIFE_MS = 12000;
const ERROR_MARK = "\u26a0 "; // as the server marks an error line under a node (comfy_bridge.py)

/** The error's first line, or null when the failed node is not a PaCo node. */
export function pacoErrorLine(detail) {
  if (!detail || !String(detail.node_type || "").startsWith("PaCo")) return null;
  const line = String(detail.exception_message || "").split("\n").find((text) => text.trim());
  return (line || "failed").trim();
}

export function pacoErrorToast(detail) {
  const line = pacoErrorLine(detail);
  if (line === null) return null;
  const node = app.graph?.getNodeById?.(Number(detail.node_id));
  // a prompt queued without this canvas (the API, another tab): the node's display name
  const displayName = window.LiteGraph?.registered_node_types?.[detail.node_type]?.title;
  const title = node?.title || displayName || detail.node_type;
  return { severity: "error", summary: `${title} (node ${detail.node_id})`, detail: line, life: LIFE_MS };
}

const shownUnder = new Map(); // node id -> the error line this extension put under it

function showUnderTheNode(detail) {
  const line = pacoErrorLine(detail);
  if (line === null || detail.node_id === undefined || detail.node_id === null) return;
  const nodeId = String(detail.node_id);
  const text = ERROR_MARK + line;
  shownUnder.set(nodeId, text);
  api.dispatchEvent(new CustomEvent("progress_text", { detail: { nodeId, text } }));
}

/** When the node runs again, its old error line goes (the frontend keeps a status line until
 * another replaces it, and most nodes send none). */
function clearUnderTheNode(nodeId) {
  const text = shownUnder.get(String(nodeId));
  if (text === undefined) return;
  shownUnder.delete(String(nodeId));
  const node = app.graph?.getNodeById?.(Number(nodeId));
  const widget = node?.widgets?.find((w) => w.value === text);
  if (!widget) return;
  widget.value = "";
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "paco.errors",
  setup() {
    api.addEventListener("execution_error", (event) => {
      const toast = pacoErrorToast(event.detail);
      if (!toast) return;
      app.extensionManager?.toast?.add(toast);
      setTimeout(() => showUnderTheNode(event.detail), 0); // after the frontend's own handling
    });
    api.addEventListener("executing", (event) => {
      const nodeId = typeof event.detail === "object" ? event.detail?.node : event.detail;
      if (nodeId !== null && nodeId !== undefined) clearUnderTheNode(nodeId);
    });
  },
});
