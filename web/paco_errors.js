// A PaCo node's error in the artist's words, where it is seen: ComfyUI's frontend shows a
// failed prompt as a generic toast and keeps the node's own message behind "View details".
// This adds a toast that says the pack's one-line message (what was wrong and how to fix
// it) and names the node; the server puts the same line under the node itself.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const LIFE_MS = 12000;

export function pacoErrorToast(detail) {
  if (!detail || !String(detail.node_type || "").startsWith("PaCo")) return null;
  const node = app.graph?.getNodeById?.(Number(detail.node_id));
  // a prompt queued without this canvas (the API, another tab): the node's display name
  const displayName = window.LiteGraph?.registered_node_types?.[detail.node_type]?.title;
  const title = node?.title || displayName || detail.node_type;
  const line = String(detail.exception_message || "").split("\n").find((text) => text.trim()) || "failed";
  return { severity: "error", summary: `${title} (node ${detail.node_id})`, detail: line.trim(), life: LIFE_MS };
}

app.registerExtension({
  name: "paco.errors",
  setup() {
    api.addEventListener("execution_error", (event) => {
      const toast = pacoErrorToast(event.detail);
      if (toast) app.extensionManager?.toast?.add(toast);
    });
  },
});
