"""The real-frontend browser tests' shared set-up: a ComfyUI page in headless Chromium, the
PaCo Jobs sidebar seen as a user sees it, the theme, toasts, screenshots, and the tiny jobs
the sidebar tests submit.

Written for the frontends users have (1.27 with ComfyUI 0.3.64, 1.49 with 0.33, and the
newest on PyPI, 1.58), so it reads what the page shows rather than one frontend's internals:

- the theme is the lightness of the page's ``--comfy-menu-bg`` (1.27 marks a dark palette
  with ``body.dark-theme``, 1.49 with ``html.dark-theme``, 1.58 with neither: it sets
  ``html { color-scheme }``);
- a toast is an element with ``role="alert"`` (PrimeVue's ``.p-toast-message`` up to 1.49,
  a ``<li data-testid="toast">`` in 1.58);
- the palette is chosen in the page (``app.extensionManager.setting.set``), once the app is up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cdp import Browser, find_chromium
from helpers import offline_env
from pack_loader import REPO_ROOT

BROWSER_MARKS = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
    pytest.mark.skipif(find_chromium() is None, reason="no headless Chromium (chromium-headless-shell)"),
]

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_TIMEOUT_S = 120
TAB = "paco-jobs"


def js(value) -> str:
    return json.dumps(value)


# --- the page -----------------------------------------------------------------------------


def post_setting(url: str, setting: str, value) -> None:
    request = urllib.request.Request(
        f"{url}/settings/{setting}",
        data=json.dumps(value).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, setting


@asynccontextmanager
async def comfyui_page(url: str, tmp_path: Path, width: int = 1600, height: int = 1000):
    """A page on ``url`` with the app and the PaCo Jobs tab up, the dark palette and an empty
    canvas. When the body fails: a screenshot (``failure.png``) and the page's console."""
    async with Browser.launch(width=width, height=height) as browser:
        page = await browser.page()
        post_setting(url, "Comfy.TutorialCompleted", True)  # no first-run templates dialog
        await page.navigate(url)
        try:
            await page.wait_for(
                f"!!window.app?.extensionManager?.sidebarTab?.sidebarTabs?.some(t => t.id === {js(TAB)})",
                PAGE_TIMEOUT_S,
            )
            await page.wait_for("!!window.app?.graph")
            await set_theme(page, "dark")
            await page.evaluate("app.graph.clear()")  # an empty canvas behind the screenshots
            yield page
        except BaseException:
            await page.screenshot(tmp_path / "failure.png")
            print("browser console:\n" + "\n".join(page.console[-40:]))
            raise


THEME = """(() => { const probe = document.createElement('div'); probe.style.background = 'var(--comfy-menu-bg)';
  document.body.append(probe); const rgb = getComputedStyle(probe).backgroundColor.match(/[\\d.]+/g).map(Number);
  probe.remove(); return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255 > 0.5 ? 'light' : 'dark'; })()"""
"""``'light'`` or ``'dark'``: the lightness of the menu background the page shows."""


async def set_theme(page, palette: str) -> None:
    """Choose the ``dark`` or ``light`` palette as the settings dialog does; wait until the page
    shows it and the sidebar (when open) has taken its colours."""
    await page.evaluate(
        f"app.extensionManager.setting.set('Comfy.ColorPalette', {js(palette)}).then(() => true)"
    )
    await page.wait_for(f"{THEME} === {js(palette)}")
    await page.wait_for(
        "(() => { const panel = document.querySelector('.paco-jobs'); if (!panel) return true;"
        " const probe = document.createElement('div'); probe.style.background = 'var(--comfy-menu-bg)';"
        " document.body.append(probe); const want = getComputedStyle(probe).backgroundColor; probe.remove();"
        " return getComputedStyle(panel).backgroundColor === want; })()"
    )
    await asyncio.sleep(0.3)


async def panel_colors(page) -> dict[str, str]:
    """The sidebar's background, text and accent colour next to the frontend's own: its menu
    colours and its accent (PrimeVue's ``--p-primary-color`` up to 1.49, ``--primary`` in 1.58)."""
    return await page.evaluate(
        """(() => { const panel = getComputedStyle(document.querySelector('.paco-jobs'));
                    const root = getComputedStyle(document.documentElement);
                    const probe = document.createElement('div'); document.body.append(probe);
                    probe.style.background = 'var(--comfy-menu-bg)'; probe.style.color = 'var(--fg-color)';
                    const want = getComputedStyle(probe); const out = {panel_bg: panel.backgroundColor,
                    panel_fg: panel.color, menu_bg: want.backgroundColor, fg: want.color,
                    accent: panel.getPropertyValue('--paco-accent').trim(),
                    frontend_accent: (root.getPropertyValue('--p-primary-color') || root.getPropertyValue('--primary')).trim()}; probe.remove(); return out; })()"""
    )


TOASTS = "[...document.querySelectorAll('[role=alert]')].map(t => t.innerText.replace(/\\s+/g, ' ').trim()).filter(Boolean)"
"""The texts of the toasts on screen (summary and detail on one line)."""


async def toasts(page) -> list[str]:
    return await page.evaluate(TOASTS)


async def toast_with(page, text: str) -> str | None:
    return next((toast for toast in await toasts(page) if text in toast), None)


async def clear_toasts(page) -> None:
    await page.evaluate(
        "(() => { const t = app.extensionManager.toast; const clear = t.removeAll ?? t.dismissAll;"
        " if (clear) clear.call(t); })()"
    )
    await asyncio.sleep(0.5)


async def shoot(page, folder: Path, name: str, width: int = 420) -> Path:
    await clear_toasts(page)
    await asyncio.sleep(0.5)
    path = await page.screenshot(folder / name, clip={"x": 0, "y": 0, "width": width, "height": 1000})
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


def screenshot_dir(tmp_path: Path) -> Path:
    """``$PACO_SCREENSHOTS`` (relative to the repository, e.g. docs/images), else the test's folder."""
    wanted = os.environ.get("PACO_SCREENSHOTS")
    return (REPO_ROOT / wanted) if wanted else tmp_path / "shots"


async def until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} (last seen: {value!r})")


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
        return await toasts(self.page)

    async def overflow_x(self) -> int:
        """How many pixels the panel's content is wider than the panel (0: nothing cut off)."""
        return await self.page.evaluate(
            "(() => { const body = document.querySelector('.paco-jobs-body');"
            " return body.scrollWidth - body.clientWidth; })()"
        )


# --- the jobs the sidebar tests submit ------------------------------------------------------


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
        [
            sys.executable,
            "-m",
            "paco_core.cli",
            "jobs",
            "submit",
            "--config",
            str(config_path),
            "--home",
            str(home),
            "--name",
            name,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
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
