"""Check the shipped workflows in a running ComfyUI's own frontend and write their thumbnails.

ComfyUI's Templates browser shows ``workflows/<name>.jpg`` beside ``workflows/<name>.json``:
a thumbnail shows what the workflow makes (a result image), not its graph. Give each
workflow's result with ``--result <name>=<image>`` (the result card that
``tools/workflow_results.py`` composes from a real run, or an image a run saved in
ComfyUI's output folder); it is scaled to the thumbnail width and written as JPEG.
``--graph-thumbnails`` writes the rendered graph instead, for a workflow without a result.

This script opens an ALREADY RUNNING ComfyUI (with this pack in its ``custom_nodes/``) in
headless Chromium, checks that ``/api/workflow_templates`` lists every shipped workflow
and serves it unchanged, loads each one as the Templates browser does (which fits the
view to the nodes) and screenshots the graph. It also prints what a person would
notice on load: console warnings and errors, open dialogs and toasts, and every node that
the frontend had to enlarge because its saved size was below the least size it draws
(the estimate in ``tools/workflows/builder.py`` was too small).

It never installs or starts ComfyUI, and writes nothing to the server: the frontend's
settings requests are answered in the browser (no minimap, no canvas info, no
first-run template browser), so the user's settings stay as they were. Nodes that the
frontend outlines in red because this server lacks their model files are listed, and the
outline is left out of the picture: a thumbnail shows the workflow with its models in place.

Needs Playwright for Python and Pillow in the interpreter that runs it, a Chromium
binary (``apt-get install chromium``; ``playwright install`` is not needed). Usage:

    python -m tools.workflow_results --url http://127.0.0.1:8188 --out /tmp/results
    python -m tools.workflow_thumbnails --url http://127.0.0.1:8188 \\
        --result paco-consistent-set=/tmp/results/paco-consistent-set.png ...
    python -m tools.workflow_thumbnails --url http://127.0.0.1:8188 \\
        --screenshots /tmp/shots --no-thumbnails      # full-size PNGs to look at only
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from paco_core.io import atomic_write_bytes

WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETTING_OVERRIDES = {
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.TutorialCompleted": True,
}
"""Answered in the browser instead of the server's values; writes are dropped."""
APP_READY = "window.app?.graph && window.app.extensionManager?.workflow?.activeWorkflow"
"""The app is up and has opened its startup workflow (a later load would be replaced by it)."""
IMAGES_LOADED = "window.app.graph._nodes.every(n => !n.imgs || n.imgs.every(i => i.complete))"
NODE_SIZES = (
    "() => window.app.graph._nodes.map(n => ({id: n.id, type: n.type, size: [n.size[0], n.size[1]]}))"
)
GRAPH_BOUNDS = """() => {
    const canvas = window.app.canvas, [offsetX, offsetY] = canvas.ds.offset, scale = canvas.ds.scale;
    const boxes = window.app.graph._nodes.map(n => [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30])
        .concat(window.app.graph._groups.map(g => [...g._bounding]));
    const left = Math.min(...boxes.map(b => b[0])), top = Math.min(...boxes.map(b => b[1]));
    const right = Math.max(...boxes.map(b => b[0] + b[2])), bottom = Math.max(...boxes.map(b => b[1] + b[3]));
    const rect = canvas.canvas.getBoundingClientRect();
    return {x: rect.left + (left + offsetX) * scale, y: rect.top + (top + offsetY) * scale,
            width: (right - left) * scale, height: (bottom - top) * scale};
}"""
"""The graph's nodes and groups on the page, in CSS pixels."""
VISIBLE_TEXT = """selector => [...document.querySelectorAll(selector)]
    .filter(e => e.offsetParent !== null).map(e => e.innerText.replace(/\\s+/g, ' ').trim()).filter(t => t)"""
DIALOGS = "[role=dialog]"
TOASTS = "[role=status], [role=alert]"
"""Frontend 1.49 reports a missing node type in a toast ("Missing node: ...")."""
MISSING_MODEL_TOASTS = ("a required model file", "model files are missing")
"""Toasts that only say this server lacks a model file: expected on a development server."""
SHOWN_GRAPH = """() => ({
    workflow: window.app.extensionManager.workflow.activeWorkflow?.filename,
    nodes: window.app.graph._nodes.map(n => n.type).sort(),
})"""
TAKE_ERROR_FLAGS = """() => window.app.graph._nodes.filter(n => n.has_errors).map(n => {
    n.has_errors = false;
    return `${n.id} ${n.type}`;
})"""
"""Nodes drawn with a red outline (here: a model file this server lacks); the flags are
cleared for the picture, since a thumbnail shows the workflow with its models in place."""
FOCUS_MODE = "window.app.extensionManager.command.execute('Workspace.ToggleFocusMode')"
FIT_VIEW = "window.app.extensionManager.command.execute('Comfy.Canvas.FitView')"
LOW_DETAIL_SCALE = 8 / 14
"""Below this zoom the frontend draws nodes without their text (14 px text under 8 px)."""
QUIET_CONSOLE = ("legacy queue/history menu", "Autofocus processing", "net::ERR_NAME_NOT_RESOLVED")
"""Console lines that ComfyUI prints whatever the workflow (the last: a host that an offline
machine cannot reach; the failed request itself is logged with its URL)."""


@dataclass
class WorkflowRender:
    """What loading one workflow in the frontend showed."""

    name: str
    png: bytes
    """The screenshot of the graph (PNG)."""
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    toasts: list[str] = field(default_factory=list)
    enlarged: list[str] = field(default_factory=list)
    """Nodes the frontend drew larger than their saved size: ``"id type: saved -> drawn"``."""
    flagged: list[str] = field(default_factory=list)
    """Nodes the frontend outlined in red on load (``"id type"``)."""
    opened_scale: float = 1.0
    """The zoom the Templates browser opened the workflow at (it fits the view to the nodes)."""


@dataclass
class Thumbnail:
    name: str
    path: Path
    width: int
    height: int
    num_bytes: int
    quality: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a running ComfyUI, e.g. http://127.0.0.1:8188")
    parser.add_argument("--workflows", type=Path, default=WORKFLOWS_DIR, help="the shipped .json files")
    parser.add_argument("--width", type=int, default=768, help="thumbnail width in pixels")
    parser.add_argument("--max-kb", type=int, default=150, help="largest thumbnail file size (KB)")
    parser.add_argument(
        "--viewport", default="2400x1350", help="browser size WxH; large, so nodes keep their detail"
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    parser.add_argument("--screenshots", type=Path, help="also save full-size PNG screenshots here")
    parser.add_argument("--no-thumbnails", action="store_true", help="write no .jpg files")
    parser.add_argument(
        "--result",
        action="append",
        default=[],
        metavar="NAME=IMAGE",
        help="the result image a run of workflow NAME made: its thumbnail (repeat per workflow)",
    )
    parser.add_argument(
        "--graph-thumbnails",
        action="store_true",
        help="a workflow without --result gets its rendered graph as thumbnail (else it keeps its .jpg)",
    )
    return parser.parse_args(argv)


def parse_results(items: list[str], names: list[str]) -> dict[str, Path]:
    """``["name=path", ...]`` -> {name: path}; every name a shipped workflow, every path a file."""
    results = {}
    for item in items:
        name, separator, path = item.partition("=")
        if not separator or name not in names:
            raise SystemExit(f"--result {item!r}: give NAME=IMAGE with NAME one of {names}")
        if not Path(path).is_file():
            raise SystemExit(f"--result {item!r}: {path} is not a file")
        results[name] = Path(path)
    return results


def fetch_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def find_pack_templates(base_url: str, workflows: Path, names: list[str]) -> str:
    """The custom-node folder under which the server lists all of ``names`` as templates.

    Raises:
        SystemExit: no folder lists them all (the pack is not in custom_nodes/, or a file
            is missing or stale on the server).
    """
    listing = fetch_json(f"{base_url}/api/workflow_templates")
    for folder, served in listing.items():
        if set(names) <= set(served):
            for name in names:
                served_json = fetch_json(f"{base_url}/api/workflow_templates/{folder}/{name}.json")
                local = json.loads((workflows / f"{name}.json").read_text(encoding="utf-8"))
                if served_json != local:
                    raise SystemExit(f"{base_url} serves a different {folder}/{name}.json than {workflows}")
            return folder
    raise SystemExit(
        f"{base_url}/api/workflow_templates lists no folder with all of {names}: it lists {listing}. "
        "Link this repository into ComfyUI's custom_nodes/ and restart the server."
    )


async def answer_settings_in_browser(route) -> None:
    """Serve the server's settings with SETTING_OVERRIDES applied; drop every write."""
    request = route.request
    if request.method != "GET":
        await route.fulfill(status=200, json={})
        return
    response = await route.fetch()
    setting_id = request.url.split("/api/settings", 1)[1].lstrip("/")
    if not setting_id:
        await route.fulfill(response=response, json={**await response.json(), **SETTING_OVERRIDES})
    elif setting_id in SETTING_OVERRIDES:
        await route.fulfill(response=response, json=SETTING_OVERRIDES[setting_id])
    else:
        await route.fulfill(response=response)


async def render_workflows(args: argparse.Namespace, folder: str, names: list[str]) -> list[WorkflowRender]:
    """Open the frontend once, then render each template in turn."""
    from playwright.async_api import async_playwright

    viewport = dict(zip(("width", "height"), (int(part) for part in args.viewport.split("x")), strict=True))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport=viewport)
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("response", lambda response: console.append(f"HTTP {response.status}: {response.url}"))
        page.on("requestfailed", lambda request: console.append(f"failed: {request.url} ({request.failure})"))
        await page.route("**/api/settings**", answer_settings_in_browser)
        await page.goto(args.url)
        await page.wait_for_function(APP_READY, timeout=120_000)
        renders = []
        for name in names:
            console.clear()
            template_url = f"{args.url}/api/workflow_templates/{folder}/{name}.json"
            renders.append(await render_workflow(page, template_url, name, viewport))
            renders[-1].console = [line for line in console if is_worth_a_look(line, args.url)]
        await browser.close()
    return renders


async def render_workflow(page, template_url: str, name: str, viewport: dict) -> WorkflowRender:
    """Load one template as the Templates browser would, note what shows up, fit the view
    with the menus hidden, and screenshot the graph."""
    workflow = await page.evaluate("url => fetch(url).then(r => r.json())", template_url)
    await page.evaluate(
        "([w, name]) => window.app.loadGraphData(w, true, true, name, {openSource: 'template'})",
        [workflow, name],
    )
    await page.wait_for_function(IMAGES_LOADED, timeout=30_000)
    check_shown_graph(await page.evaluate(SHOWN_GRAPH), workflow, name)
    await page.wait_for_timeout(1000)  # toasts and dialogs come a moment after the graph
    render = WorkflowRender(name, b"")
    render.dialogs = await page.evaluate(VISIBLE_TEXT, DIALOGS)
    render.toasts = await page.evaluate(VISIBLE_TEXT, TOASTS)
    render.flagged = await page.evaluate(TAKE_ERROR_FLAGS)
    render.enlarged = enlarged_nodes(workflow, await page.evaluate(NODE_SIZES))
    render.opened_scale = await page.evaluate("() => window.app.canvas.ds.scale")
    await page.evaluate(f"() => {FOCUS_MODE}")
    await page.wait_for_timeout(500)  # the canvas takes the freed room
    await page.evaluate(f"() => {FIT_VIEW}")
    await page.wait_for_timeout(1000)  # the DOM text widgets follow the canvas a frame later
    bounds = with_margin(await page.evaluate(GRAPH_BOUNDS), viewport["width"], viewport["height"])
    render.png = await page.screenshot(clip=bounds)
    await page.evaluate(f"() => {FOCUS_MODE}")
    return render


def is_worth_a_look(console_line: str, server_url: str) -> bool:
    """A console warning or error, or a failed request to the ComfyUI server. Requests to
    other hosts (release checks, model downloads of the startup workflow) are left out:
    they fail on an offline machine whatever the workflow."""
    if console_line.startswith("HTTP "):
        status, url = console_line.removeprefix("HTTP ").split(": ", 1)
        return int(status) >= 400 and url.startswith(server_url)
    if console_line.startswith("failed: "):
        return console_line.removeprefix("failed: ").startswith(server_url)
    is_problem = console_line.startswith(("warning:", "error:"))
    return is_problem and not any(quiet in console_line for quiet in QUIET_CONSOLE)


def check_shown_graph(shown: dict, workflow: dict, name: str) -> None:
    """Raises SystemExit unless the frontend shows ``workflow`` under ``name``."""
    expected = sorted(node["type"] for node in workflow["nodes"])
    if shown["workflow"] != name or shown["nodes"] != expected:
        raise SystemExit(f"the frontend shows {shown} after loading {name} (nodes {expected})")


def enlarged_nodes(workflow: dict, drawn: list[dict]) -> list[str]:
    """Nodes whose drawn size exceeds the saved one (the frontend's least size was larger)."""
    saved = {str(node["id"]): node["size"] for node in workflow["nodes"]}
    return [
        f"{node['id']} {node['type']}: saved {saved[str(node['id'])]} -> drawn {node['size']}"
        for node in drawn
        if node["size"][0] > saved[str(node["id"])][0] + 0.5
        or node["size"][1] > saved[str(node["id"])][1] + 0.5
    ]


def with_margin(box: dict, page_width: int, page_height: int, margin: float = 16) -> dict:
    """``box`` grown by ``margin`` on every side, kept on the page."""
    left, top = max(0.0, box["x"] - margin), max(0.0, box["y"] - margin)
    right = min(page_width, box["x"] + box["width"] + margin)
    bottom = min(page_height, box["y"] + box["height"] + margin)
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def encode_thumbnail(png: bytes, width: int, max_bytes: int) -> tuple[bytes, tuple[int, int], int]:
    """A picture (PNG, JPEG ...) scaled to ``width`` as the best-quality JPEG under ``max_bytes``.

    Returns:
        (JPEG bytes, (width, height), JPEG quality used).
    """
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    scaled = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    for quality in range(88, 40, -6):
        buffer = io.BytesIO()
        scaled.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
        if buffer.tell() <= max_bytes:
            return buffer.getvalue(), scaled.size, quality
    raise SystemExit(
        f"no JPEG quality down to 46 fits {max_bytes} bytes at {width} px wide: pass a smaller --width"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.url = args.url.rstrip("/")
    names = sorted(path.stem for path in args.workflows.glob("*.json"))
    if not names:
        raise SystemExit(f"no workflows in {args.workflows}")
    results = parse_results(args.result, names)
    folder = find_pack_templates(args.url, args.workflows, names)
    print(f"{args.url}/api/workflow_templates lists {folder}: {names}")
    start = time.perf_counter()
    renders = asyncio.run(render_workflows(args, folder, names))
    print(f"rendered {len(renders)} workflows in {time.perf_counter() - start:.1f} s")
    num_problems = 0
    for render in renders:
        num_problems += report(render)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(args.screenshots / f"{render.name}.png", render.png)
        if not args.no_thumbnails:
            if render.name in results:
                picture = results[render.name].read_bytes()
            elif args.graph_thumbnails:
                picture = render.png
            else:
                print(f"  no --result for {render.name}: its thumbnail is left as it is")
                continue
            thumbnail = write_thumbnail(render.name, picture, args.workflows, args.width, args.max_kb * 1000)
            print(
                f"  {thumbnail.path}: {thumbnail.width}x{thumbnail.height}, "
                f"{thumbnail.num_bytes / 1000:.0f} KB, JPEG quality {thumbnail.quality}"
            )
            served = f"{args.url}/api/workflow_templates/{folder}/{render.name}.jpg"
            with urllib.request.urlopen(served, timeout=30) as response:
                print(
                    f"  served at {served}: {response.headers.get('Content-Type')}, {len(response.read())} bytes"
                )
    print(
        f"\n{num_problems} things to look at"
        if num_problems
        else "\nno console warnings, dialogs, toasts (but missing models) or enlarged nodes"
    )
    return 1 if num_problems else 0


def report(render: WorkflowRender) -> int:
    """Print what loading the workflow showed; returns how many things need a look."""
    print(f"\n{render.name}")
    expected = [text for text in render.toasts if is_missing_model_toast(text)]
    for text in expected:
        print(f"  toast (a model this server lacks): {text[:300]}")
    for node in render.flagged:
        print(f"  outlined in red on load (left out of the picture): {node}")
    print(f"  opened at zoom {render.opened_scale:.2f}")
    problems = [
        *(
            [
                f"opened at zoom {render.opened_scale:.2f}: below {LOW_DETAIL_SCALE:.2f} nodes draw as blank boxes"
            ]
            if render.opened_scale < LOW_DETAIL_SCALE
            else []
        ),
        *(f"console: {line[:300]}" for line in render.console),
        *(f"dialog: {text[:300]}" for text in render.dialogs),
        *(f"toast: {text[:300]}" for text in render.toasts if text not in expected),
        *(f"enlarged by the frontend: {node}" for node in render.enlarged),
    ]
    for problem in problems:
        print(f"  {problem}")
    return len(problems)


def is_missing_model_toast(text: str) -> bool:
    return any(phrase in text for phrase in MISSING_MODEL_TOASTS)


def write_thumbnail(name: str, picture: bytes, folder: Path, width: int, max_bytes: int) -> Thumbnail:
    """``picture`` (PNG, JPEG ...) as ``folder/<name>.jpg``."""
    jpeg, (out_width, out_height), quality = encode_thumbnail(picture, width, max_bytes)
    path = atomic_write_bytes(folder / f"{name}.jpg", jpeg)
    path.chmod(0o644)  # a shipped file, readable by whoever runs ComfyUI
    return Thumbnail(name, path, out_width, out_height, len(jpeg), quality)


if __name__ == "__main__":
    sys.exit(main())
