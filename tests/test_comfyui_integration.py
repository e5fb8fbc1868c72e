"""The pack inside a real ComfyUI server (skipped unless COMFYUI_DIR names a checkout).

Links this repository into ``$COMFYUI_DIR/custom_nodes``, starts ``main.py --cpu`` on a
free 127.0.0.1 port with ``$COMFYUI_PYTHON`` (default: this interpreter), checks that
every PaCo node is listed and the pack imported cleanly, runs an API-format workflow
(core EmptyImage -> PaCo Compose Grid / PaCo Split Grid -> core SaveImage, and PaCo Grid
Prompt -> core PreviewAny) and checks the saved files. The server and the link are
always removed.

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
from pack_loader import REPO_ROOT, all_node_classes
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


def grid_workflow() -> dict:
    """Four 64x64 panels -> a 2x2 grid (128x128) -> split 1x2 into two 64x128 halves."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 0x3366CC},
        },
        "2": {"class_type": "PaCoComposeGrid", "inputs": {"panels": ["1", 0], "layout": "2x2"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "paco_grid"}},
        "4": {"class_type": "PaCoSplitGrid", "inputs": {"image": ["2", 0], "layout": "1x2"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "paco_halves"}},
        "6": {
            "class_type": "PaCoGridPrompt",
            "inputs": {
                "theme": "depicting a fox in ink style.",
                "shared_description": "All images keep the same fox.",
                "panel_prompts": "The fox sits.\nThe fox runs.\nThe fox eats.\nThe fox sleeps.",
                "layout": "2x2",
            },
        },
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
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


def saved_sizes(entry: dict, output_dir: Path) -> list[tuple[int, int]]:
    sizes = []
    for image in entry["images"]:
        path = output_dir / image["subfolder"] / image["filename"]
        assert image["type"] == "output" and path.is_file(), f"missing saved file {path}"
        with Image.open(path) as saved:
            sizes.append(saved.size)
    return sizes


def test_pack_loads_and_runs_a_grid_workflow_in_real_comfyui(tmp_path):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    node_ids = sorted(cls.GET_SCHEMA().node_id for cls in all_node_classes())

    with pack_linked_into(comfyui_dir) as link, comfyui_server(comfyui_dir, tmp_path) as (url, log_path):
        object_info = http_json(f"{url}/object_info", timeout=60)
        assert [n for n in node_ids if n not in object_info] == [], "PaCo nodes missing from /object_info"
        assert object_info["PaCoSplitGrid"]["category"] == "PaCo/Image"

        internal_logs = http_json(f"{url}/internal/logs")
        logs = (
            internal_logs if isinstance(internal_logs, str) else json.dumps(internal_logs)
        ) + log_path.read_text()
        failed = [line for line in logs.splitlines() if "IMPORT FAILED" in line and link.name in line]
        assert failed == [], f"the pack failed to import:\n{logs[-4000:]}"

        result = run_workflow(url, grid_workflow())
        assert result["status"]["status_str"] == "success", json.dumps(result["status"], indent=1)
        outputs = result["outputs"]
        assert saved_sizes(outputs["3"], tmp_path / "output") == [(128, 128)]
        assert saved_sizes(outputs["5"], tmp_path / "output") == [(64, 128), (64, 128)]
        assert outputs["7"]["text"][0].startswith("FOUR-PANEL Images with a 2x2 grid layout depicting a fox")

    assert not link.exists(), "the custom_nodes link should be removed"
