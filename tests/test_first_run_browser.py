"""A new artist's first run in the real frontend (marked ``comfyui``): a PaCo node's error
reaches them as a toast in the pack's words, PaCo LoRA offers "(none)", and the held-out
chart's axis labels stay apart when the means are close."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from cdp import Browser
from test_comfyui_integration import comfyui_server, http_json, pack_linked_into

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]

FAILING_PROMPT = {  # PaCo Grid Prompt with fewer panel lines than its layout: a PaCo InputError
    "1": {
        "class_type": "PaCoGridPrompt",
        "inputs": {"theme": "a fox", "shared_description": "", "panel_prompts": "one line only", "layout": "2x2",
                   "judge_theme_source": "preamble"},
    },
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}  # fmt: skip


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
    async with Browser.launch(width=1400, height=900) as browser:
        page = await browser.page()
        await page.navigate(url)
        await page.wait_for("!!window.app?.graph && !!window.app?.extensionManager?.toast", timeout=90)
        try:
            labels = await page.evaluate(
                "(async () => { const list = await (await fetch('/api/extensions')).json();"
                " const chart = list.find((u) => u.endsWith('/paco_jobs/chart.js'));"
                " const module = await import(chart);"
                " return module.distinctLabels([0.26910, 0.26930, 0.26950]); })()"
            )
            assert len(set(labels)) == 3, labels
            prompt = json.dumps(FAILING_PROMPT)
            await page.evaluate(
                "(async () => { const api = window.app.api ?? window.comfyAPI?.api?.api;"
                f" await api.fetchApi('/prompt', {{method: 'POST', body: JSON.stringify({{prompt: {prompt},"
                " client_id: api.clientId}) }); })()"
            )
            toast = await _wait_for_toast(page, "PaCo Grid Prompt")
            assert "panel" in toast.lower() and "Traceback" not in toast, toast
            await page.screenshot(tmp_path / "error-toast.png")
        except BaseException:
            await page.screenshot(tmp_path / "failure.png")
            print("browser console:\n" + "\n".join(page.console[-40:]))
            raise


async def _wait_for_toast(page, title: str, timeout: float = 60) -> str:
    script = (
        "Array.from(document.querySelectorAll('.p-toast-message')).map((t) => t.textContent).join('\\n')"
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        text = await page.evaluate(script)
        for line in text.split("\n"):
            if title in line:
                return line
        await asyncio.sleep(0.5)
    raise AssertionError(f"no toast naming {title!r}; toasts: {await page.evaluate(script)!r}")
