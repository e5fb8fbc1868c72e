"""A small Chrome DevTools Protocol client for browser tests (headless Chromium, aiohttp).

Starts the system's headless Chromium (``chromium-headless-shell``, Debian's package; no
browser download) with a throw-away profile on a free port, opens its page's websocket and
offers the few calls the tests need:

    async with Browser.launch() as browser:
        page = await browser.page()
        await page.navigate("http://127.0.0.1:8188")
        await page.wait_for("!!window.app?.extensionManager")
        title = await page.evaluate("document.title")
        await page.screenshot(Path("shot.png"))

``evaluate`` awaits promises and returns the value as JSON; a JavaScript exception becomes a
``BrowserError`` with the page's message. ``console`` keeps the page's console messages and
uncaught exceptions, so a test can show them when something fails.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from helpers import free_port

CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",
    "chromium-headless-shell",
    "chromium",
    "chromium-browser",
)


class BrowserError(RuntimeError):
    """A CDP call failed or a page expression threw."""


def find_chromium() -> str | None:
    """The headless Chromium to use: $PACO_CHROMIUM, else the first system one found."""
    for candidate in (os.environ.get("PACO_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if not candidate:
            continue
        found = (
            candidate
            if os.path.isabs(candidate) and os.access(candidate, os.X_OK)
            else shutil.which(candidate)
        )
        if found:
            return found
    return None


class Page:
    """One browser tab, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._events: dict[str, list[asyncio.Future]] = {}
        self.console: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future and not future.done():
                    future.set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
                self.console.append(f"{params['type']}: {text}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                self.console.append(
                    f"exception: {details.get('exception', {}).get('description', details['text'])}"
                )
            for waiter in self._events.pop(method, []):
                if not waiter.done():
                    waiter.set_result(params)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the connection"))

    async def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def next_event(self, method: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(future)
        return future

    async def navigate(self, url: str, timeout: float = 60) -> None:
        loaded = self.next_event("Page.loadEventFired")
        await self.send("Page.navigate", {"url": url})
        await asyncio.wait_for(loaded, timeout)

    async def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression[:80]!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.2) -> Any:
        """Evaluate ``expression`` until it is truthy; return that value."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
                if value:
                    return value
            except BrowserError as error:
                last_error = error
            await asyncio.sleep(interval)
        raise TimeoutError(
            f"{expression!r} stayed false for {timeout} s"
            + (f" (last error: {last_error})" if last_error else "")
            + ("\nconsole:\n" + "\n".join(self.console[-20:]) if self.console else "")
        )

    async def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": clip.get("scale", 1)}
        data = await self.send("Page.captureScreenshot", params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()


class Browser:
    """A headless Chromium process with a throw-away profile."""

    def __init__(self, process: subprocess.Popen, port: int, session: aiohttp.ClientSession):
        self.process = process
        self.port = port
        self._session = session
        self._pages: list[Page] = []

    @classmethod
    @asynccontextmanager
    async def launch(cls, width: int = 1600, height: int = 1000, executable: str | None = None):
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError("no headless Chromium found (apt-get install chromium-headless-shell)")
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="paco-chromium-") as profile:
            process = subprocess.Popen(
                [
                    executable,
                    f"--remote-debugging-port={port}",
                    "--remote-debugging-address=127.0.0.1",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    f"--window-size={width},{height}",
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                async with aiohttp.ClientSession() as session:
                    browser = cls(process, port, session)
                    await browser._wait_until_up()
                    try:
                        yield browser
                    finally:
                        for page in browser._pages:
                            await page.close()
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)

    async def _wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with {self.process.returncode}")
            try:
                async with self._session.get(f"http://127.0.0.1:{self.port}/json/version") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise BrowserError(f"Chromium did not open its DevTools port within {timeout} s")

    async def page(self) -> Page:
        """The first open tab, with the Page and Runtime domains enabled."""
        async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as response:
            targets = await response.json()
        (target, *_) = [t for t in targets if t["type"] == "page"]
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        self._pages.append(page)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page
