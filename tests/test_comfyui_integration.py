"""The pack inside a real ComfyUI server (skipped unless COMFYUI_DIR names a checkout).

Links this repository into ``$COMFYUI_DIR/custom_nodes``, starts ``main.py --cpu`` on a
free 127.0.0.1 port with ``$COMFYUI_PYTHON`` (default: this interpreter), checks that
every PaCo node is listed with the schema the stand-in reports and that the pack
imported cleanly, runs an API-format workflow (core EmptyImage + ImageBatch -> PaCo
Compose Grid / PaCo Split Grid -> core SaveImage, and PaCo Grid Prompt -> core
PreviewAny) and checks the saved files. The server and the link are always removed.
A second test compares the constructor arguments of ``tests/comfy_stub`` with the real
``comfy_api.latest``.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python \\
        pytest -m comfyui tests/test_comfyui_integration.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from pack_loader import REPO_ROOT, STUB_DIR, all_node_classes
from PIL import Image

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]

STARTUP_TIMEOUT_S = 180
WORKFLOW_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 10.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def pack_linked_into(comfyui_dir: Path):
    """Symlink the repository into custom_nodes/ under a unique name; remove it after."""
    link = comfyui_dir / "custom_nodes" / f"paco-integration-{uuid.uuid4().hex[:8]}"
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    try:
        yield link
    finally:
        link.unlink()


@contextmanager
def comfyui_server(comfyui_dir: Path, workdir: Path):
    """Start ComfyUI on a free port with its folders under ``workdir``; always stop it."""
    port = free_port()
    for name in ("output", "temp", "input", "user"):
        (workdir / name).mkdir()
    command = [
        os.environ.get("COMFYUI_PYTHON", sys.executable),
        "main.py",
        "--cpu",
        "--listen", "127.0.0.1",
        "--port", str(port),
        "--output-directory", str(workdir / "output"),
        "--temp-directory", str(workdir / "temp"),
        "--input-directory", str(workdir / "input"),
        "--user-directory", str(workdir / "user"),
        "--database-url", "sqlite:///:memory:",
    ]  # fmt: skip
    log_path = workdir / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, url, log_path)
        yield url, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)


def wait_until_up(server: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"ComfyUI exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            http_json(f"{url}/system_stats", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"ComfyUI did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


RED, BLUE = 0xFF0000, 0x0000FF


def grid_workflow() -> dict:
    """Two red and two blue 64x64 panels -> a 2x2 grid (128x128, red row over blue row)
    -> split 1x2 into two 64x128 halves, and split again with the layout output of a grid
    prompt (2x2) into the four panels; the grid prompt shown as text."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": RED},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": BLUE},
        },
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "PaCoComposeGrid", "inputs": {"panels": ["3", 0], "layout": "2x2"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "paco_grid"}},
        "6": {"class_type": "PaCoSplitGrid", "inputs": {"image": ["4", 0], "layout": "1x2"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "paco_halves"}},
        "8": {
            "class_type": "PaCoGridPrompt",
            "inputs": {
                "theme": "depicting a fox in ink style.",
                "shared_description": "All images keep the same fox.",
                "panel_prompts": "The fox sits.\nThe fox runs.\nThe fox eats.\nThe fox sleeps.",
                "layout": "2x2",
            },
        },
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
        "10": {"class_type": "PaCoSplitGrid", "inputs": {"image": ["4", 0], "layout": ["8", 3]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "paco_panels"}},
    }


def run_workflow(url: str, workflow: dict) -> dict:
    queued = http_json(f"{url}/prompt", {"prompt": workflow, "client_id": "paco-integration"})
    prompt_id = queued["prompt_id"]
    deadline = time.monotonic() + WORKFLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        history = http_json(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.5)
    pytest.fail(f"workflow {prompt_id} did not finish within {WORKFLOW_TIMEOUT_S} s")


def saved_images(entry: dict, output_dir: Path) -> list[Image.Image]:
    images = []
    for saved in entry["images"]:
        path = output_dir / saved["subfolder"] / saved["filename"]
        assert saved["type"] == "output" and path.is_file(), f"missing saved file {path}"
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def top_and_bottom_colours(image: Image.Image) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width, height = image.size
    return image.getpixel((width // 2, height // 4)), image.getpixel((width // 2, 3 * height // 4))


COMPARED_INFO_KEYS = (
    "input_order", "is_input_list", "output", "output_is_list", "output_name", "output_tooltips",
    "name", "display_name", "description", "category", "output_node",
)  # fmt: skip


def comparable_info(info: dict) -> dict:
    """An /object_info entry without what depends on the machine (dropdowns of model
    files, the module path), with tuples as lists as JSON has them."""
    info = json.loads(json.dumps(info))
    inputs = {
        section: {
            name: [
                spec[0],
                {
                    k: v
                    for k, v in (spec[1] if len(spec) > 1 else {}).items()
                    if k not in ("options", "default")
                },
            ]
            if spec[0] == "COMBO"
            else spec
            for name, spec in entries.items()
        }
        for section, entries in info["input"].items()
    }
    return {"input": inputs, **{key: info.get(key) for key in COMPARED_INFO_KEYS}}


def test_pack_loads_and_runs_a_grid_workflow_in_real_comfyui(tmp_path):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    node_classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    node_ids = sorted(node_classes)

    with pack_linked_into(comfyui_dir) as link, comfyui_server(comfyui_dir, tmp_path) as (url, log_path):
        internal_logs = http_json(f"{url}/internal/logs")
        logs = (
            internal_logs if isinstance(internal_logs, str) else json.dumps(internal_logs)
        ) + log_path.read_text()
        failed = [line for line in logs.splitlines() if "IMPORT FAILED" in line and link.name in line]
        assert failed == [], f"the pack failed to import:\n{logs[-4000:]}"

        object_info = http_json(f"{url}/object_info", timeout=60)
        assert [n for n in node_ids if n not in object_info] == [], "PaCo nodes missing from /object_info"
        for node_id, node_class in node_classes.items():
            assert comparable_info(object_info[node_id]) == comparable_info(node_class.GET_NODE_INFO_V1()), (
                node_id
            )

        result = run_workflow(url, grid_workflow())
        assert result["status"]["status_str"] == "success", json.dumps(result["status"], indent=1)
        outputs = result["outputs"]
        (grid,) = saved_images(outputs["5"], tmp_path / "output")
        halves = saved_images(outputs["7"], tmp_path / "output")
        assert grid.size == (128, 128) and [h.size for h in halves] == [(64, 128), (64, 128)]
        red, blue = (255, 0, 0), (0, 0, 255)
        assert top_and_bottom_colours(grid) == (red, blue), "panels should be placed row-major"
        assert [top_and_bottom_colours(h) for h in halves] == [(red, blue), (red, blue)]
        panels = saved_images(outputs["11"], tmp_path / "output")
        assert [(p.size, p.getpixel((32, 32))) for p in panels] == [
            ((64, 64), c) for c in (red, red, blue, blue)
        ]
        assert outputs["9"]["text"][0].startswith("FOUR-PANEL Images with a 2x2 grid layout depicting a fox")

    assert not link.exists(), "the custom_nodes link should be removed"


SIGNATURE_SCRIPT = """
import dataclasses, inspect, json, sys
sys.path.insert(0, ".")
from comfy_api.latest import io, ComfyExtension
def params(fn):
    return [p.name for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
report = {"Schema": [f.name for f in dataclasses.fields(io.Schema)], "NodeOutput": params(io.NodeOutput.__init__),
          "Output": params(io.Output.__init__), "Combo.Output": params(io.Combo.Output.__init__),
          "Hidden": [h.name for h in io.Hidden], "ComfyExtension": sorted(n for n in vars(ComfyExtension) if not n.startswith("_"))}
for name in ("Boolean", "Int", "Float", "String", "Combo", "MultiCombo", "Image", "Mask", "Latent", "Model"):
    report[name + ".Input"] = params(getattr(io, name).Input.__init__)
    report[name + ".io_type"] = getattr(io, name).io_type
report["Custom.io_type"] = io.Custom("PACO_X").io_type
print(json.dumps(report))
"""


def test_the_comfy_stand_in_has_the_real_v3_signatures():
    """tests/comfy_stub must accept exactly the arguments real ComfyUI accepts."""
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)

    def signatures(cwd: Path) -> dict:
        done = subprocess.run(
            [python, "-c", SIGNATURE_SCRIPT], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    real, stand_in = signatures(comfyui_dir), signatures(STUB_DIR)
    assert {k: v for k, v in stand_in.items() if real.get(k) != v} == {}
