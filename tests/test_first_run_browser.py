"""A new artist's first run in the real frontend (marked ``comfyui``): a PaCo node's error
reaches them in the pack's words, as a toast and under the node itself; PaCo LoRA offers
"(none)", and the held-out chart's axis labels stay apart when the means are close.

Runs on the frontends users have (1.27, 1.49, 1.58; ``tests/browser_page.py`` reads toasts
and nodes the way all three show them)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from browser_page import BROWSER_MARKS, TOASTS, comfyui_page, toasts, until
from test_comfyui_integration import comfyui_server, http_json, pack_linked_into

pytestmark = BROWSER_MARKS

API_PROMPT = {  # the same error in a prompt queued through the API: node 7 is on no canvas
    "7": {
        "class_type": "PaCoGridPrompt",
        "inputs": {"theme": "a fox", "shared_description": "", "panel_prompts": "one line only", "layout": "2x2",
                   "judge_theme_source": "preamble"},
    },
    "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
}  # fmt: skip

GRID_ERROR = "layout 2x2 has 4 panels, got 1 panel prompts"
"""The start of PaCo Grid Prompt's one-line error for one panel line and a 2x2 layout."""


def test_first_run_in_the_real_frontend(tmp_path):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path) as (url, log_path):
        lora = http_json(f"{url}/object_info/PaCoLora")["PaCoLora"]["input"]["required"]["lora_name"]
        assert combo_options(lora)[0] == "(none)", lora
        asyncio.run(_drive(url, tmp_path))
        log = log_path.read_text()
    assert "'NoneType' object has no attribute 'strip'" not in log


def combo_options(spec: list) -> list:
    """A combo input's options as /object_info serves them: ``['COMBO', {'options': [...]}]``
    (ComfyUI 0.33) or ``[[...], {...}]`` (older ones)."""
    if spec[0] == "COMBO":
        return spec[1]["options"]
    return spec[0]


async def _drive(url: str, tmp_path: Path) -> None:
    async with comfyui_page(url, tmp_path, width=1400, height=900) as page:
        labels = await page.evaluate(
            "(async () => { const list = await (await fetch('/api/extensions')).json();"
            " const chart = list.find((u) => u.endsWith('/paco_jobs/chart.js'));"
            " const module = await import(chart);"
            " return module.distinctLabels([0.26910, 0.26930, 0.26950]); })()"
        )
        assert len(set(labels)) == 3, labels

        # a PaCo Grid Prompt on the canvas with one panel line for a 2x2 layout, queued as Run does
        node_id = await page.evaluate(
            "(() => { const grid = LiteGraph.createNode('PaCoGridPrompt'); grid.pos = [80, 80]; app.graph.add(grid);"
            f" const values = {json.dumps({'theme': 'a fox', 'panel_prompts': 'one line only', 'layout': '2x2'})};"
            " for (const w of grid.widgets) if (w.name in values) w.value = values[w.name];"
            " const preview = LiteGraph.createNode('PreviewAny'); preview.pos = [560, 80]; app.graph.add(preview);"
            " grid.connect(0, preview, 0); app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1;"
            " return grid.id; })()"
        )
        await page.evaluate("app.queuePrompt(0, 1).then(() => true)")

        async def toast_naming_the_node():
            return next((t for t in await toasts(page) if "PaCo Grid Prompt" in t and GRID_ERROR in t), None)

        toast = await until(toast_naming_the_node, 60, "no toast with PaCo Grid Prompt's error")
        assert "Traceback" not in toast, toast
        # under the node: the same line, whatever widget this frontend draws it with
        under_node = await until(
            lambda: page.evaluate(
                f"(app.graph.getNodeById({node_id}).widgets ?? []).map((w) => String(w.value ?? ''))"
                f".find((text) => text.includes({json.dumps(GRID_ERROR)})) ?? null"
            ),
            20,
            "the error is not under the node",
        )
        assert under_node.startswith("\u26a0 ") and "Traceback" not in under_node, under_node
        await asyncio.sleep(1.0)  # past 1.58's clearing of a finished job's status lines
        assert await page.evaluate(
            f"(app.graph.getNodeById({node_id}).widgets ?? []).some((w) => String(w.value ?? '')"
            f".includes({json.dumps(GRID_ERROR)}))"
        ), "the error under the node went away"
        await page.evaluate("app.graph.setDirtyCanvas(true, true)")
        await page.screenshot(tmp_path / "error-toast.png")

        # fixed and queued again: the old error line goes from the node
        await page.evaluate(
            f"app.graph.getNodeById({node_id}).widgets.find((w) => w.name === 'panel_prompts').value ="
            " 'one\\ntwo\\nthree\\nfour'"
        )
        await page.evaluate("app.queuePrompt(0, 1).then(() => true)")
        await until(
            lambda: page.evaluate(
                f"!(app.graph.getNodeById({node_id}).widgets ?? []).some((w) => String(w.value ?? '')"
                f".includes({json.dumps(GRID_ERROR)}))"
            ),
            60,
            "the old error stayed under the node after a run without error",
        )

        # queued through the API (no node on this canvas): the toast names the node's display name
        await page.evaluate(
            "(async () => { const api = window.app.api ?? window.comfyAPI?.api?.api;"
            f" await api.fetchApi('/prompt', {{method: 'POST', body: JSON.stringify({{prompt: {json.dumps(API_PROMPT)},"
            " client_id: api.clientId}) }); })()"
        )
        await until(
            lambda: page.evaluate(f"{TOASTS}.some((t) => t.includes('PaCo Grid Prompt (node 7)'))"),
            60,
            "no toast for the prompt queued through the API",
        )
