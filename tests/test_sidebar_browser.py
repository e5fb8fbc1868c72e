"""The PaCo Jobs sidebar in a real browser against a real ComfyUI with the pack.

Skipped unless COMFYUI_DIR names a ComfyUI checkout (and a headless Chromium is installed:
Debian's ``chromium-headless-shell``). Reuses the integration test's server helpers: links
the repository into ``custom_nodes``, starts ComfyUI on a free port with its folders in a
temporary directory, and drives the page over the DevTools protocol (``tests/cdp.py``) with
the browser tests' shared set-up (``tests/browser_page.py``).

A tiny FLUX job is submitted with ``paco jobs submit`` into the store ComfyUI's routes
read (``<user directory>/paco``); the test then checks, in the page: the tab opens and
lists the job, its step advances while it runs, the reward curves have points (two train
rewards, the aggregate, and the held-out evaluation), the sample grid loads, the panel
follows the light and the dark theme, Cancel stops the job (it ends ``stopped``) and Resume
runs it on, a job
that completes and one that fails each raise a toast (the failure with its reason), a
warning in the run's progress shows a banner, "Add LoRA node" puts a PaCo LoRA node with
the job's best LoRA on the canvas, Delete (confirmed) removes a job, and the fallback
poll runs no faster than every 5 s and only while the tab is open.

``PACO_SCREENSHOTS=docs/images`` writes the documentation's screenshots there (else they
go to the test's temporary folder).
"""

from __future__ import annotations

import asyncio
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
    panel_colors,
    screenshot_dir,
    set_theme,
    shoot,
    stop_all_jobs,
    submit,
    toast_with,
    until,
)
from test_comfyui_integration import comfyui_server, http_json, pack_linked_into

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]


def test_the_jobs_sidebar_follows_cancels_and_announces_jobs_in_a_real_browser(
    tmp_path, tiny_models, monkeypatch
):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    model = tiny_models["flux"]
    env = job_env(tmp_path)
    # jobs resumed from ComfyUI load web_rewards.py only from a reward folder (docs/security.md)
    monkeypatch.setenv("PACO_REWARD_FOLDERS", str(FIXTURES / "web"))
    home = tmp_path / "user" / "paco"  # what ComfyUI's routes read: <user directory>/paco
    (tmp_path / "models" / "loras").mkdir(parents=True)  # the jobs' LoRAs go here, not into the checkout
    shots = screenshot_dir(tmp_path)
    try:
        with (
            pack_linked_into(comfyui_dir),
            comfyui_server(comfyui_dir, tmp_path, tmp_path / "models") as (
                url,
                log_path,
            ),
        ):
            long_id = submit(env, home, job_config(model), "ink foxes", tmp_path)
            asyncio.run(_drive_the_page(url, env, home, model, tmp_path, long_id, shots))
            log = log_path.read_text()
    finally:
        stop_all_jobs(home)
    assert "Traceback" not in log, log[-4000:]


async def _drive_the_page(url, env, home, model, tmp_path, long_id, shots):
    async with comfyui_page(url, tmp_path) as page:
        await _scenario(page, url, env, home, model, tmp_path, long_id, shots)


async def _scenario(page, url, env, home, model, tmp_path, long_id, shots):
    sidebar = Sidebar(page)
    await sidebar.open()

    # the running job is listed, and its step advances in the list without a reload
    await page.wait_for(f"!!document.querySelector('.paco-job-row[data-job-id={js(long_id)}]')", 60)
    first = await until(
        lambda: sidebar.row_text(long_id),
        90,
        "the job never showed a step",
    )
    await until(lambda: _row_step(sidebar, long_id), PAGE_TIMEOUT_S, "the running job's step never reached 1")
    step_a = await _row_step(sidebar, long_id)
    step_b = await until(
        lambda: _row_step_above(sidebar, long_id, step_a), 60, "the running job's step did not advance"
    )
    assert step_b > step_a, first
    row = await sidebar.row_text(long_id)
    assert "ink foxes" in row and "running" in row and "/400" in row and "left" in row, row

    # its view: curves with points for both train rewards, the aggregate and the eval
    await sidebar.open_job(long_id)
    view_step = await until(sidebar.view_step, 30, "the job view shows no step")
    await until(lambda: _view_step_above(sidebar, view_step), 60, "the job view's step did not advance live")

    async def curves_filled():
        points = await sidebar.curve_points()
        train = points.get("Training (mean per reward)", {})
        held_out = points.get("Held-out evaluation (mean per reward)", {})
        ok = (
            min(train.get(n, 0) for n in ("web_rewards:brightness", "web_rewards:contrast", "aggregated"))
            >= 2
            and min(held_out.get(n, 0) for n in ("web_rewards:brightness", "web_rewards:contrast")) >= 2
        )
        return points if ok else None

    points = await until(curves_filled, 90, "the reward curves never got points")
    assert set(points["Training (mean per reward)"]) == {
        "web_rewards:brightness",
        "web_rewards:contrast",
        "aggregated",
    }
    loaded_sample = (
        "(() => { const img = document.querySelector('.paco-sample img');"
        " return img && img.complete && img.naturalWidth > 0 ? Number(img.dataset.step) : 0 })()"
    )
    first_sample = await until(lambda: page.evaluate(loaded_sample), 60, "the sample grid never loaded")

    async def newer_sample():
        step = await page.evaluate(loaded_sample)
        return step if step > first_sample else None

    await until(newer_sample, 60, "the sample grid did not follow the steps")
    log_text = await page.evaluate("document.querySelector('.paco-log').textContent")
    assert log_text.strip() and log_text != "(no log yet)"
    assert await sidebar.status() == "running"

    # light and dark: the panel takes the frontend's theme colours
    dark = await panel_colors(page)
    assert dark["panel_bg"] == dark["menu_bg"] and dark["panel_fg"] == dark["fg"], dark
    assert dark["frontend_accent"] and dark["accent"] == dark["frontend_accent"], dark
    await shoot(page, shots, "sidebar-job-dark.png")
    assert await sidebar.overflow_x() <= 0, "the running job's view is wider than the sidebar"
    await set_theme(page, "light")
    light = await panel_colors(page)
    assert light["panel_bg"] == light["menu_bg"] and light["panel_fg"] == light["fg"], light
    assert light["frontend_accent"] and light["accent"] == light["frontend_accent"], light
    assert light["panel_bg"] != dark["panel_bg"] and light["panel_fg"] != dark["panel_fg"]
    await shoot(page, shots, "sidebar-job-light.png")
    await set_theme(page, "dark")

    # Cancel stops it: stopping, then stopped (a checkpoint saved), as the store says too
    await sidebar.click(".paco-cancel")
    await until(lambda: _status_in(sidebar, ("stopping", "stopped")), 30, "Cancel did not stop the job")
    await until(lambda: _status_in(sidebar, ("stopped",)), 90, "the cancelled job never ended stopped")
    record = http_json(f"{url}/paco/jobs/{long_id}")
    assert record["status"] == "stopped" and record["last_checkpoint"], record
    await until(lambda: toast_with(page, "PaCo job stopped"), 20, "no toast for the stopped job")
    await clear_toasts(page)

    # a job that completes and one that fails: each raises a toast, the failure with its reason
    await sidebar.back()
    done_id = submit(env, home, job_config(model, num_iterations=2), "quick", tmp_path)
    broken = job_config(model, num_iterations=2)
    broken["model"] = {**broken["model"], "path": str(tmp_path / "no-such-model")}
    broken_id = submit(env, home, broken, "broken", tmp_path)
    await sidebar.close()  # toasts come from the websocket event, tab open or not
    completed = await until(
        lambda: toast_with(page, "PaCo job completed"), 180, "no toast for the completed job"
    )
    assert "quick" in completed, completed
    failed = await until(lambda: toast_with(page, "PaCo job failed"), 120, "no toast for the failed job")
    assert "broken" in failed and "no-such-model" in failed, failed
    await clear_toasts(page)

    # a warning in the run's progress (the guardrail writes it there) shows a banner
    from paco_core.run_folder import RunFolder

    done_record = http_json(f"{url}/paco/jobs/{done_id}")
    folder = RunFolder(done_record["run_dir"])
    progress = folder.read_progress()
    message = "The training reward rose while the held-out reward fell for 3 evaluations in a row."
    progress_fields = {
        k: v
        for k, v in progress.items()
        if k not in ("state", "step", "total", "pid", "pid_start_time", "updated_at")
    }
    folder.write_progress(
        state=progress["state"],
        step=progress["step"],
        total=progress["total"],
        **{**progress_fields, "warnings": [{"code": "reward_gaming", "message": message}]},
    )
    await sidebar.open()
    await sidebar.open_job(done_id)
    banner = await until(
        lambda: page.evaluate(
            "document.querySelector('.paco-banner[data-warning=reward_gaming]')?.innerText"
        ),
        20,
        "no reward-gaming banner",
    )
    assert "gaming its reward" in banner and message in banner, banner

    # Add LoRA node: a PaCo LoRA node with the job's best LoRA lands on the canvas
    nodes_before = await page.evaluate("app.graph.nodes.length")
    await sidebar.click(".paco-add-lora")
    added = await until(
        lambda: page.evaluate(
            "(() => { const values = app.graph.nodes.filter(n => n.type === 'PaCoLora')"
            "  .map(n => n.widgets.find(w => w.name === 'lora_name').value); return values.every(Boolean) && values })()"
        ),
        20,
        "no PaCo LoRA node was added",
    )
    assert await page.evaluate("app.graph.nodes.length") == nodes_before + 1
    expected = f"paco/quick/{done_id}/quick-best.safetensors"  # exported by ComfyUI's jobs watcher
    assert expected in done_record["lora_files"], done_record["lora_files"]
    assert added == [expected], added
    listed = await page.evaluate(
        "app.graph.nodes.find(n => n.type === 'PaCoLora').widgets.find(w => w.name === 'lora_name')"
        f".options.values.includes({js(expected)})"
    )
    assert listed, "the node's LoRA list should hold the exported best LoRA after the refresh"
    assert await until(lambda: toast_with(page, "PaCo LoRA node added"), 20, "no toast for the node")
    await shoot(page, shots, "sidebar-job-completed-dark.png", width=1100)
    assert await sidebar.overflow_x() <= 0, "the completed job's view is wider than the sidebar"

    # Resume queues the stopped job again and it runs on from its checkpoint
    await sidebar.back()
    await sidebar.open_job(long_id)
    stopped_step = await sidebar.view_step()
    await sidebar.click(".paco-resume")
    await until(lambda: _status_in(sidebar, ("queued", "running")), 30, "Resume did not queue the job")
    await until(lambda: _view_step_above(sidebar, stopped_step), 120, "the resumed job did not step on")
    await sidebar.back()
    await shoot(page, shots, "sidebar-list-dark.png")
    await set_theme(page, "light")
    await shoot(page, shots, "sidebar-list-light.png")
    await set_theme(page, "dark")

    # Delete asks first, then removes the job from the page and the store
    await sidebar.back()
    await sidebar.open_job(broken_id)
    await sidebar.click(".paco-delete")
    await page.wait_for("!!document.querySelector('.paco-confirm')")
    await sidebar.click(".paco-confirm-delete")
    await page.wait_for(
        f"!document.querySelector('.paco-job-row[data-job-id={js(broken_id)}]') && !!document.querySelector('.paco-jobs-list')"
    )
    assert broken_id not in [job["id"] for job in http_json(f"{url}/paco/jobs")["jobs"]]

    # the fallback poll: no faster than every 5 s while open, none once the tab is closed
    await clear_toasts(page)
    list_calls = (
        "performance.getEntriesByType('resource').filter(e => /\\/paco\\/jobs(\\?|$)/.test(e.name)).length"
    )
    await page.evaluate("performance.clearResourceTimings()")
    await asyncio.sleep(11.5)
    polled = await page.evaluate(list_calls)
    assert 1 <= polled <= 3, f"{polled} list requests in 11.5 s"
    await sidebar.close()
    await page.evaluate("performance.clearResourceTimings()")
    await asyncio.sleep(6)
    assert await page.evaluate(list_calls) == 0, "the tab polls while closed"


async def _row_step(sidebar: Sidebar, job_id: str) -> int:
    import re

    text = await sidebar.row_text(job_id) or ""
    found = re.search(r"step (\d+)/", text)
    return int(found.group(1)) if found else 0


async def _row_step_above(sidebar: Sidebar, job_id: str, step: int) -> int | None:
    now = await _row_step(sidebar, job_id)
    return now if now > step else None


async def _view_step_above(sidebar: Sidebar, step: int) -> int | None:
    now = await sidebar.view_step()
    return now if now > step else None


async def _status_in(sidebar: Sidebar, statuses: tuple[str, ...]) -> str | None:
    status = await sidebar.status()
    return status if status in statuses else None
