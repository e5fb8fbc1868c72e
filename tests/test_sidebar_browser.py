"""The PaCo Jobs sidebar in a real browser against a real ComfyUI with the pack.

Skipped unless COMFYUI_DIR names a ComfyUI checkout (and a headless Chromium is installed:
Debian's ``chromium-headless-shell``). Reuses the integration test's server helpers: links
the repository into ``custom_nodes``, starts ComfyUI on a free port with its folders in a
temporary directory, and drives the page over the DevTools protocol (``tests/cdp.py``).

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
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cdp import Browser, find_chromium
from helpers import offline_env
from pack_loader import REPO_ROOT
from test_comfyui_integration import comfyui_server, comfyui_version, http_json, pack_linked_into

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
    pytest.mark.skipif(find_chromium() is None, reason="no headless Chromium (chromium-headless-shell)"),
    pytest.mark.skipif(
        bool(os.environ.get("COMFYUI_DIR")) and comfyui_version(Path(os.environ.get("COMFYUI_DIR", "."))) < (0, 33),
        reason="drives frontend 1.49+ (ComfyUI 0.3.64's frontend 1.27 throws when the test sets its colour palette)",
    ),
]

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_TIMEOUT_S = 120
TAB = "paco-jobs"


def job_config(model: Path, **extra) -> dict:
    """A tiny FLUX run with two train rewards, evaluated (and sampled) every 2 steps."""
    data = {
        "model": {"kind": "flux", "path": str(model), "device": "cpu"},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 2, "noise_steps": [0], "train_resolution": 32, "eval_resolution": 32,
                     "group_size": 2, "batch_size": 2, "prompts_per_iteration": 1, "max_sequence_length": 16},
        "data": {"train_file": str(FIXTURES / "rl" / "sets.jsonl"), "num_eval_prompts": 1},
        "rewards": {"rewards": [{"name": "web_rewards:brightness"}, {"name": "web_rewards:contrast"}],
                    "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "eval_every": 2,
        "checkpoint_every": 2,
        "num_iterations": 400,
    }  # fmt: skip
    data.update(extra)
    return data


def job_env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path, FIXTURES / "web")  # web_rewards is importable only so: the job inherits it


def submit(env: dict, home: Path, config: dict, name: str, folder: Path) -> str:
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "jobs", "submit", "--config", str(config_path),
         "--home", str(home), "--name", name],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def stop_all_jobs(home: Path) -> None:
    """Never leave a trainer behind."""
    if not (home / "jobs.sqlite3").exists():
        return
    from paco_core.jobs import runner
    from paco_core.jobs.store import JobStore

    store = JobStore(home)
    for job in store.list():
        if job.status in ("queued", "running", "stopping"):
            try:
                runner.cancel(store, job.id)
            except Exception:  # noqa: BLE001 - best effort in teardown
                pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runner.reconcile(store)
        if not any(job.status in ("running", "stopping") for job in store.list()):
            return
        time.sleep(0.5)


def post_setting(url: str, setting: str, value) -> None:
    request = urllib.request.Request(
        f"{url}/settings/{setting}",
        data=json.dumps(value).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, setting


def screenshot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("PACO_SCREENSHOTS")
    return (REPO_ROOT / wanted) if wanted else tmp_path / "shots"


def js(value) -> str:
    return json.dumps(value)


class Sidebar:
    """The PaCo Jobs tab in the page, seen as a user sees it (DOM queries and clicks)."""

    def __init__(self, page):
        self.page = page

    async def open(self) -> None:
        await self.page.evaluate(f"app.extensionManager.command.execute('Workspace.ToggleSidebarTab.{TAB}')")
        await self.page.wait_for("!!document.querySelector('.paco-jobs-body')")

    async def is_open(self) -> bool:
        return await self.page.evaluate("!!document.querySelector('.paco-jobs-body')")

    async def close(self) -> None:
        if await self.is_open():
            await self.page.evaluate(
                f"app.extensionManager.command.execute('Workspace.ToggleSidebarTab.{TAB}')"
            )
        await self.page.wait_for("!document.querySelector('.paco-jobs-body')")

    async def row_text(self, job_id: str) -> str | None:
        return await self.page.evaluate(
            f"document.querySelector('.paco-job-row[data-job-id={js(job_id)}]')?.innerText ?? null"
        )

    async def open_job(self, job_id: str) -> None:
        await self.page.wait_for(f"!!document.querySelector('.paco-job-row[data-job-id={js(job_id)}]')", 60)
        await self.page.evaluate(f"document.querySelector('.paco-job-row[data-job-id={js(job_id)}]').click()")
        await self.page.wait_for(f"!!document.querySelector('.paco-job-view[data-job-id={js(job_id)}]')")

    async def back(self) -> None:
        await self.page.evaluate("document.querySelector('.paco-back')?.click()")
        await self.page.wait_for("!!document.querySelector('.paco-jobs-list')")

    async def view_step(self) -> int:
        return int(await self.page.evaluate("document.querySelector('.paco-job-view')?.dataset.step ?? -1"))

    async def status(self) -> str:
        return await self.page.evaluate(
            "document.querySelector('.paco-job-view .paco-status')?.dataset.status"
        )

    async def click(self, selector: str) -> None:
        await self.page.wait_for(
            f"!!document.querySelector({js(selector)}) && !document.querySelector({js(selector)}).disabled"
        )
        await self.page.evaluate(f"document.querySelector({js(selector)}).click()")

    async def curve_points(self) -> dict[str, dict[str, int]]:
        """{chart title: {reward name: points drawn}}."""
        return await self.page.evaluate(
            """Object.fromEntries([...document.querySelectorAll('.paco-job-view .paco-chart')].map(figure => [
                 figure.querySelector('figcaption').textContent,
                 Object.fromEntries([...figure.querySelectorAll('.paco-line')].map(
                   g => [g.dataset.name, Number(g.dataset.points)]))]))"""
        )

    async def toasts(self) -> list[str]:
        return await self.page.evaluate(
            "[...document.querySelectorAll('.p-toast-message')].map(t => t.innerText.replace(/\\s+/g, ' '))"
        )


async def set_theme(page, palette: str) -> None:
    await page.evaluate(f"app.extensionManager.setting.set('Comfy.ColorPalette', {js(palette)})")
    await page.wait_for(
        f"getComputedStyle(document.documentElement).getPropertyValue('--comfy-menu-bg').trim() !== '' && "
        f"(document.documentElement.classList.contains('dark-theme') === {js(palette == 'dark')})"
    )
    await asyncio.sleep(0.3)


async def panel_colors(page) -> dict[str, str]:
    return await page.evaluate(
        """(() => { const panel = getComputedStyle(document.querySelector('.paco-jobs'));
                    const probe = document.createElement('div'); document.body.append(probe);
                    probe.style.background = 'var(--comfy-menu-bg)'; probe.style.color = 'var(--fg-color)';
                    const want = getComputedStyle(probe); const out = {panel_bg: panel.backgroundColor,
                    panel_fg: panel.color, menu_bg: want.backgroundColor, fg: want.color}; probe.remove(); return out; })()"""
    )


async def clear_toasts(page) -> None:
    await page.evaluate("document.querySelectorAll('.p-toast-close-button').forEach(b => b.click())")
    await asyncio.sleep(0.5)


async def shoot(page, folder: Path, name: str, width: int = 420) -> Path:
    await clear_toasts(page)
    await asyncio.sleep(0.5)
    path = await page.screenshot(folder / name, clip={"x": 0, "y": 0, "width": width, "height": 1000})
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


async def until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} (last seen: {value!r})")


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
    async with Browser.launch(width=1600, height=1000) as browser:
        page = await browser.page()
        for setting, value in (("Comfy.TutorialCompleted", True), ("Comfy.ColorPalette", "dark")):
            post_setting(url, setting, value)  # no first-run templates dialog over the screenshots
        await page.navigate(url)
        try:
            await _scenario(page, url, env, home, model, tmp_path, long_id, shots)
        except BaseException:
            await page.screenshot(tmp_path / "failure.png")
            print("browser console:\n" + "\n".join(page.console[-40:]))
            raise


async def _scenario(page, url, env, home, model, tmp_path, long_id, shots):
    await page.wait_for(
        f"!!window.app?.extensionManager?.sidebarTab?.sidebarTabs?.some(t => t.id === {js(TAB)})",
        PAGE_TIMEOUT_S,
    )
    await page.wait_for("!!window.app?.graph")
    await set_theme(page, "dark")
    await page.evaluate("app.graph.clear()")  # an empty canvas behind the screenshots
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
    await shoot(page, shots, "sidebar-job-dark.png")
    await set_theme(page, "light")
    light = await panel_colors(page)
    assert light["panel_bg"] == light["menu_bg"] and light["panel_fg"] == light["fg"], light
    assert light["panel_bg"] != dark["panel_bg"] and light["panel_fg"] != dark["panel_fg"]
    await shoot(page, shots, "sidebar-job-light.png")
    await set_theme(page, "dark")

    # Cancel stops it: stopping, then stopped (a checkpoint saved), as the store says too
    await sidebar.click(".paco-cancel")
    await until(lambda: _status_in(sidebar, ("stopping", "stopped")), 30, "Cancel did not stop the job")
    await until(lambda: _status_in(sidebar, ("stopped",)), 90, "the cancelled job never ended stopped")
    record = http_json(f"{url}/paco/jobs/{long_id}")
    assert record["status"] == "stopped" and record["last_checkpoint"], record
    await until(lambda: _toast_with(sidebar, "PaCo job stopped"), 20, "no toast for the stopped job")
    await clear_toasts(page)

    # a job that completes and one that fails: each raises a toast, the failure with its reason
    await sidebar.back()
    done_id = submit(env, home, job_config(model, num_iterations=2), "quick", tmp_path)
    broken = job_config(model, num_iterations=2)
    broken["model"] = {**broken["model"], "path": str(tmp_path / "no-such-model")}
    broken_id = submit(env, home, broken, "broken", tmp_path)
    await sidebar.close()  # toasts come from the websocket event, tab open or not
    completed = await until(
        lambda: _toast_with(sidebar, "PaCo job completed"), 180, "no toast for the completed job"
    )
    assert "quick" in completed, completed
    failed = await until(lambda: _toast_with(sidebar, "PaCo job failed"), 120, "no toast for the failed job")
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
    folder.write_progress(state=progress["state"], step=progress["step"], total=progress["total"],
                          **{**progress_fields, "warnings": [{"code": "reward_gaming", "message": message}]})  # fmt: skip
    await sidebar.open()
    await sidebar.open_job(done_id)
    banner = await until(
        lambda: page.evaluate("document.querySelector('.paco-banner[data-warning=reward_gaming]')?.innerText"),
        20, "no reward-gaming banner",
    )  # fmt: skip
    assert "gaming its reward" in banner and message in banner, banner

    # Add LoRA node: a PaCo LoRA node with the job's best LoRA lands on the canvas
    nodes_before = await page.evaluate("app.graph.nodes.length")
    await sidebar.click(".paco-add-lora")
    added = await until(
        lambda: page.evaluate(
            "(() => { const values = app.graph.nodes.filter(n => n.type === 'PaCoLora')"
            "  .map(n => n.widgets.find(w => w.name === 'lora_name').value); return values.every(Boolean) && values })()"
        ),
        20, "no PaCo LoRA node was added",
    )  # fmt: skip
    assert await page.evaluate("app.graph.nodes.length") == nodes_before + 1
    expected = f"paco/quick/{done_id}/quick-best.safetensors"  # exported by ComfyUI's jobs watcher
    assert expected in done_record["lora_files"], done_record["lora_files"]
    assert added == [expected], added
    listed = await page.evaluate(
        "app.graph.nodes.find(n => n.type === 'PaCoLora').widgets.find(w => w.name === 'lora_name')"
        f".options.values.includes({js(expected)})"
    )
    assert listed, "the node's LoRA list should hold the exported best LoRA after the refresh"
    assert await until(lambda: _toast_with(sidebar, "PaCo LoRA node added"), 20, "no toast for the node")
    await shoot(page, shots, "sidebar-job-completed-dark.png", width=1100)

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


async def _toast_with(sidebar: Sidebar, text: str) -> str | None:
    return next((toast for toast in await sidebar.toasts() if text in toast), None)
