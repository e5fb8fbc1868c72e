"""The trainer-style job tools in a real browser against a real ComfyUI with the pack.

Skipped unless COMFYUI_DIR names a ComfyUI checkout and a headless Chromium is installed
(as ``tests/test_sidebar_browser.py``; both use ``tests/browser_page.py``). Tiny FLUX jobs are
submitted with ``paco jobs submit`` into ComfyUI's store; in the page the test checks:
queued jobs show their positions and "To front" reorders them; "Sample now" with a typed
prompt brings a requested grid and "Save now" a checkpoint while the job runs on; the
per-prompt table fills; "Continue" on the cancelled job opens a new job linked to it whose
training curve joins the parent's; "Compare" overlays two jobs' curves with their samples
side by side; the Notify button asks for permission; PaCo Train LoRA with ``dry_run`` shows
the estimate on its node and queues nothing.

``PACO_SCREENSHOTS=docs/images`` writes the documentation's screenshots there.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from browser_page import (
    BROWSER_MARKS,
    FIXTURES,
    PAGE_TIMEOUT_S,
    Sidebar,
    clear_toasts,
    comfyui_page,
    job_config,
    job_env,
    js,
    screenshot_dir,
    set_theme,
    shoot,
    stop_all_jobs,
    submit,
    until,
)
from test_comfyui_integration import comfyui_server, http_json, pack_linked_into

from paco_core.testing.training import TINY_TRAINING

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]


def test_sample_save_continue_queue_compare_and_estimate_in_a_real_browser(
    tmp_path, tiny_models, monkeypatch
):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    model = tiny_models["flux"]
    env = job_env(tmp_path)
    home = tmp_path / "user" / "paco"
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    (models / "diffusers").mkdir()
    os.symlink(model, models / "diffusers" / "tiny-flux")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES / "web"), env.get("PYTHONPATH", "")]))
    # from ComfyUI, web_rewards.py loads only from a reward folder (docs/security.md)
    monkeypatch.setenv("PACO_REWARD_FOLDERS", str(FIXTURES / "web"))
    shots = screenshot_dir(tmp_path)
    try:
        with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path, models) as (url, log_path):
            long_id = submit(env, home, job_config(model, eval_every=2), "ink foxes", tmp_path)
            first = submit(env, home, job_config(model, num_iterations=3), "paper boats", tmp_path)
            second = submit(  # another learning rate: its curves differ in the comparison
                env,
                home,
                job_config(model, num_iterations=3, optim={"lr": 0.2, "clip_range": 0.2}),
                "lanterns",
                tmp_path,
            )
            asyncio.run(_drive(url, home, tmp_path, shots, long_id, first, second))
            log = log_path.read_text()
    finally:
        stop_all_jobs(home)
    assert "Traceback" not in log, log[-4000:]


async def _drive(url, home, tmp_path, shots, long_id, first, second):
    async with comfyui_page(url, tmp_path) as page:
        await _scenario(page, url, home, tmp_path, shots, long_id, first, second)


async def _scenario(page, url, home, tmp_path, shots, long_id, first, second):
    sidebar = Sidebar(page)
    await sidebar.open()

    # queue order: positions on the cards, "To front" moves the second queued job first
    position = (
        '(id) => document.querySelector(`.paco-job-row[data-job-id="${id}"]`)?.dataset.position ?? null'
    )
    await until(lambda: page.evaluate(f"({position})({js(second)})"), 60, "no queue position on the card")
    assert await page.evaluate(f"({position})({js(first)})") == "1"
    assert "#2" in await sidebar.row_text(second)
    await sidebar.open_job(second)
    await page.wait_for("!!document.querySelector('.paco-queue[data-position=\"2\"]')", 30)
    await sidebar.click(".paco-move-front")
    await page.wait_for("!!document.querySelector('.paco-queue[data-position=\"1\"]')", 30)
    assert http_json(f"{url}/paco/job-queue")["positions"] == {second: 1, first: 2}

    # the running job: Sample now with a typed prompt, Save now; the per-prompt table
    await sidebar.back()
    await sidebar.open_job(long_id)
    await until(lambda: _view_step_at_least(sidebar, 2), PAGE_TIMEOUT_S, "the long job never reached step 2")
    await page.evaluate(
        "(() => { const box = document.querySelector('.paco-sample-prompt');"
        " box.value = '[1x2] a paper lantern, ink\\nIt glows.\\nIt floats away.'; })()"
    )
    await sidebar.click(".paco-sample-now")
    await sidebar.click(".paco-save-now")
    loaded = (
        "(() => { const img = document.querySelector('.paco-requested-sample img');"
        " return img && img.complete && img.naturalWidth > 0 ? Number(img.dataset.step) : 0 })()"
    )
    sampled_at = await until(lambda: page.evaluate(loaded), 90, "the requested sample never showed")
    caption = await page.evaluate("document.querySelector('.paco-requested-sample .paco-note').innerText")
    assert "a paper lantern" in caption.lower() or "paper lantern" in caption, caption
    saved = await until(
        lambda: page.evaluate("document.querySelector('.paco-saved')?.innerText ?? null"),
        60,
        "Save now did nothing",
    )
    step = int(saved.rsplit(" ", 1)[-1])
    assert Path(http_json(f"{url}/paco/jobs/{long_id}")["run_dir"], f"checkpoint-{step}").is_dir()
    assert sampled_at >= 1
    rows = await until(
        lambda: page.evaluate(
            "document.querySelectorAll('.paco-prompt-table[data-part=train] tr').length - 1 || 0"
        ),
        60,
        "no per-prompt rewards",
    )
    assert rows >= 1
    await page.evaluate("document.querySelector('.paco-tools')?.scrollIntoView()")
    await shoot(page, shots, "sidebar-sample-now-dark.png")
    assert await sidebar.overflow_x() <= 0, (
        "the running job's tools and prompt table are wider than the sidebar"
    )

    # cancel the long job; the two queued ones run (the moved one first) and complete
    await sidebar.click(".paco-cancel")
    await until(lambda: _status_is(sidebar, "stopped"), 120, "the long job never stopped")
    records = {}

    async def both_completed():
        for job_id in (first, second):
            records[job_id] = http_json(f"{url}/paco/jobs/{job_id}")
        return all(r["status"] == "completed" for r in records.values())

    await until(both_completed, 240, "the queued jobs did not complete")
    assert records[second]["execution_start_time"] < records[first]["execution_start_time"], "moved job first"
    await clear_toasts(page)

    # Continue the stopped job: a new job, linked, whose curve starts where the parent's did
    stopped_step = http_json(f"{url}/paco/jobs/{long_id}")["step"]
    await page.evaluate(
        "(() => { const i = document.querySelector('.paco-continue-iterations'); i.value = '2'; })()"
    )
    await sidebar.click(".paco-continue")
    await page.wait_for(
        "!!document.querySelector('.paco-job-view') &&"
        f" document.querySelector('.paco-job-view').dataset.jobId !== {js(long_id)}",
        30,
    )
    child_id = await page.evaluate("document.querySelector('.paco-job-view').dataset.jobId")
    child = http_json(f"{url}/paco/jobs/{child_id}")
    assert child["parent_id"] == long_id and child["total"] == child["parent_step"] + 2
    lineage = await until(
        lambda: page.evaluate(
            "(() => { const t = document.querySelector('.paco-lineage')?.innerText ?? '';"
            " return t.includes('ink foxes') ? t : null })()"
        ),
        30,
        "no lineage line naming the parent",
    )
    assert "continues ink foxes from step" in lineage, lineage
    await until(lambda: _status_is(sidebar, "completed"), 240, "the continued job did not complete")

    async def joined():
        points = await sidebar.curve_points()
        count = points.get("Training (mean per reward)", {}).get("aggregated", 0)
        return count if count >= child["total"] else None

    await until(joined, 60, "the continued job's curve does not join its parent's")
    assert child["parent_step"] >= stopped_step - 2
    await shoot(page, shots, "sidebar-continue-dark.png")

    # Compare: pick the two short jobs, overlay their curves, samples side by side
    await sidebar.back()
    await sidebar.click(".paco-compare-mode")
    for job_id in (first, second):
        await page.evaluate(f"document.querySelector('.paco-job-row[data-job-id={js(job_id)}]').click()")
    await page.wait_for(
        "!!document.querySelector('.paco-compare-go') && !document.querySelector('.paco-compare-go').disabled"
    )
    await sidebar.click(".paco-compare-go")
    await page.wait_for("!!document.querySelector('.paco-compare')", 30)
    lines = await page.evaluate(
        "[...document.querySelectorAll('.paco-compare .paco-chart')].map(f => f.querySelectorAll('.paco-line').length)"
    )
    assert lines == [2, 2], lines
    assert await page.evaluate("document.querySelectorAll('.paco-compare-table tr[data-job-id]').length") == 2
    await until(
        lambda: page.evaluate(
            "[...document.querySelectorAll('.paco-compare-sample img')].filter(i => i.complete && i.naturalWidth).length === 2"
        ),
        30,
        "the compared samples did not load",
    )
    await shoot(page, shots, "sidebar-compare-dark.png")
    assert await sidebar.overflow_x() <= 0, "the comparison is wider than the sidebar"
    await set_theme(page, "light")
    await shoot(page, shots, "sidebar-compare-light.png")
    await set_theme(page, "dark")
    await page.evaluate("document.querySelector('.paco-compare .paco-back').click()")
    await page.wait_for("!!document.querySelector('.paco-jobs-list')")
    assert await page.evaluate(
        "!!document.querySelector('.paco-notify') || Notification.permission !== 'default'"
    )

    # PaCo Train LoRA with dry_run: the estimate on the node, nothing queued
    jobs_before = len(http_json(f"{url}/paco/jobs")["jobs"])
    await sidebar.close()
    settings = {
        "pipeline": "tiny-flux", "training_prompts": "[1x2] a fox\nIt sits.\nIt runs.\n\n[1x2] a boat\nIt floats.\nIt sinks.",
        "rewards": "web_rewards:brightness=1", "iterations": 40, "group_size": 2, "train_resolution": 32,
        "lora_name": "estimate-me", "advanced_json": json.dumps(TINY_TRAINING), "dry_run": True,
    }  # fmt: skip
    await page.evaluate(
        "(() => { const node = LiteGraph.createNode('PaCoTrainLora'); node.pos = [80, 150]; app.graph.add(node);"
        f" const values = {json.dumps(settings)};"
        " for (const w of node.widgets) if (w.name in values) { w.value = values[w.name]; }"
        " app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1; app.graph.setDirtyCanvas(true, true);"
        " window.__pacoEstimateNode = node.id; return node.id; })()"
    )
    await page.evaluate("app.queuePrompt(0, 1)")
    text = await until(lambda: _estimate_text(url), 400, "the dry run never answered", interval=2)
    assert "dry run (nothing queued)" in text and "s/iteration" in text and "for 40 iterations" in text, text
    assert len(http_json(f"{url}/paco/jobs")["jobs"]) == jobs_before, "a dry run must queue nothing"
    await asyncio.sleep(1.0)
    path = await page.screenshot(
        shots / "train-lora-dry-run-dark.png", clip={"x": 60, "y": 120, "width": 500, "height": 800}
    )
    assert path.stat().st_size > 10_000


async def _estimate_text(url: str) -> str | None:
    history = http_json(f"{url}/history")
    for entry in history.values():
        for output in (entry.get("outputs") or {}).values():
            for text in output.get("text") or []:
                if "dry run" in str(text):
                    return str(text)
        messages = str((entry.get("status") or {}).get("messages"))
        if "execution_error" in messages:
            raise AssertionError(f"the dry run failed: {messages[-2000:]}")
    return None


async def _view_step_at_least(sidebar: Sidebar, step: int) -> int | None:
    now = await sidebar.view_step()
    return now if now >= step else None


async def _status_is(sidebar: Sidebar, status: str) -> str | None:
    return status if await sidebar.status() == status else None
