"""The pack inside a real ComfyUI server (skipped unless COMFYUI_DIR names a checkout).

Links this repository into ``$COMFYUI_DIR/custom_nodes``, starts ``main.py --cpu`` on a
free 127.0.0.1 port with ``$COMFYUI_PYTHON`` (default: this interpreter), checks that
every PaCo node is listed with the schema the stand-in reports and that the pack
imported cleanly, runs an API-format workflow (core EmptyImage + ImageBatch -> PaCo
Compose Grid / PaCo Split Grid -> core SaveImage, and PaCo Grid Prompt -> core
PreviewAny) and checks the saved files. The server and the link are always removed.

A second test runs the workflow an artist would: tiny FLUX, Kontext and judge models and a
LoRA saved by our own helper in a temporary ``--models-directory`` (ComfyUI's own models
folder is not read or touched); PaCo Pipeline Loader -> PaCo LoRA -> PaCo Generate Set ->
SaveImage of grid and panels; PaCo Judge Loader -> PaCo Set Consistency -> SaveImage of the
heatmap and PreviewAny of the score; PaCo Edit Chain (Kontext) on one panel -> SaveImage;
PaCo Edit Score, PaCo Rank Sets and PaCo Judge Reasons on those images. It queues again
with the LoRA at strength 0, then cancels a long run with POST /interrupt. A third checks that everything ``tests/comfy_stub`` offers exists in the real
ComfyUI with the same signatures.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python \\
        pytest -m comfyui tests/test_comfyui_integration.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import free_port
from pack_loader import REPO_ROOT, STUB_DIR, all_node_classes
from PIL import Image

from paco_core.testing.comfyui_models import save_tiny_flux_lora

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]

STARTUP_TIMEOUT_S = 180
WORKFLOW_TIMEOUT_S = 120


def http_json(url: str, payload: dict | None = None, timeout: float = 10.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


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
def comfyui_server(comfyui_dir: Path, workdir: Path, models_dir: Path | None = None):
    """Start ComfyUI on a free port with its folders under ``workdir``; always stop it.

    With ``models_dir``, ComfyUI reads its models from there (``--models-directory``)
    instead of its own ``models/`` folder, which stays untouched."""
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
    if models_dir is not None:
        command += models_directory_args(comfyui_dir, models_dir, workdir)
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


MODEL_FOLDERS = (
    "checkpoints", "clip", "clip_vision", "configs", "controlnet", "diffusers", "diffusion_models",
    "embeddings", "loras", "text_encoders", "unet", "upscale_models", "vae", "vae_approx", "paco_configs",
)  # fmt: skip


def models_directory_args(comfyui_dir: Path, models_dir: Path, workdir: Path) -> list[str]:
    """ComfyUI's arguments that make it read models from ``models_dir``: ``--models-directory``
    where it exists (0.3.6x has none: there, an extra_model_paths file naming each folder)."""
    if "--models-directory" in (comfyui_dir / "comfy" / "cli_args.py").read_text(encoding="utf-8"):
        return ["--models-directory", str(models_dir)]
    lines = ["paco_test:", f"    base_path: {models_dir}", "    is_default: true"]  # first: exports go there
    lines += [f"    {folder}: {folder}" for folder in MODEL_FOLDERS]
    config = workdir / "extra_model_paths.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["--extra-model-paths-config", str(config)]


def comfyui_version(comfyui_dir: Path) -> tuple[int, ...]:
    """The checkout's version from comfyui_version.py, e.g. (0, 33, 0)."""
    text = (comfyui_dir / "comfyui_version.py").read_text(encoding="utf-8")
    found = re.search(r'__version__ = "(\d+)\.(\d+)\.(\d+)', text)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


def linked_output_slots(workflows, node_type: str) -> set[int]:
    """Output slots of ``node_type`` nodes that a link in the (UI-format) workflows starts from."""
    slots: set[int] = set()
    for workflow in workflows:
        types = {node["id"]: node["type"] for node in workflow.get("nodes", [])}
        slots |= {link[2] for link in workflow.get("links", []) if types.get(link[1]) == node_type}
    return slots


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
                "judge_theme_source": "preamble",
            },
        },
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
        "10": {"class_type": "PaCoSplitGrid", "inputs": {"image": ["4", 0], "layout": ["8", 3]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "paco_panels"}},
    }


def run_workflow(url: str, workflow: dict) -> dict:
    return wait_for_history(url, queue_prompt(url, workflow))


def queue_prompt(url: str, workflow: dict) -> str:
    return http_json(f"{url}/prompt", {"prompt": workflow, "client_id": "paco-integration"})["prompt_id"]


def interrupt_once_running(url: str, prompt_id: str) -> None:
    """Press Cancel (POST /interrupt for this prompt) once the prompt is running, again every
    half second while it still runs: ComfyUI clears the interrupt flag when it starts executing a
    prompt, so a press between "in queue_running" and that start is lost (as an artist would press
    again). A node that never checks the flag still runs to success, and the test says so."""
    deadline = time.monotonic() + WORKFLOW_TIMEOUT_S
    started = False
    while time.monotonic() < deadline:
        running = any(item[1] == prompt_id for item in http_json(f"{url}/queue")["queue_running"])
        if started and not running:
            return
        if running:
            started = True
            http_json(f"{url}/interrupt", {"prompt_id": prompt_id})
            time.sleep(0.5)
        else:
            time.sleep(0.05)
    pytest.fail(f"workflow {prompt_id} did not start (or end) within {WORKFLOW_TIMEOUT_S} s")


def wait_for_history(url: str, prompt_id: str) -> dict:
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
    compared = {key: info.get(key) for key in COMPARED_INFO_KEYS}
    # ComfyUI 0.3.6x writes a combo output as its list of options and an unset flag as None
    if isinstance(compared.get("output"), list):
        compared["output"] = ["COMBO" if isinstance(kind, list) else kind for kind in compared["output"]]
    for flag in ("is_input_list",):
        if compared.get(flag) is None and flag in compared:
            compared[flag] = False
    if compared.get("output_name") == compared.get("output") and "output_name" in compared:
        compared.pop("output_name")  # 0.3.6x names an output by its type
    return {"input": inputs, **compared}


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
            served, ours = (
                comparable_info(object_info[node_id]),
                comparable_info(node_class.GET_NODE_INFO_V1()),
            )
            if "output_name" not in served:  # ComfyUI 0.3.6x names outputs by their types
                ours.pop("output_name", None)
            elif served.get("output_name") != ours.get("output_name"):  # ... where no display name is given
                ours["output_name"] = [
                    kind if name == kind else mine
                    for name, kind, mine in zip(
                        served["output_name"], served["output"], ours["output_name"], strict=True
                    )
                ]
            assert served == ours, node_id

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


PANEL_SIZE = 32
THEME = "a red fox in ink style"
LORA_NAME = "paco_tiny.safetensors"
JUDGE_NAME = "tiny-judge"
EDIT_STEP_1 = "Give the fox a hat."


def models_folder_with_tiny_models(models_dir: Path, tiny_models) -> Path:
    """ComfyUI's folder layout: pipelines in diffusers/, the judge in text_encoders/ (where
    PaCo Judge Loader looks), the LoRA in loras/."""
    for folder in ("diffusers", "text_encoders", "loras"):
        (models_dir / folder).mkdir(parents=True)
    for name in ("flux", "flux-kontext"):
        (models_dir / "diffusers" / f"tiny-{name}").symlink_to(tiny_models[name], target_is_directory=True)
    (models_dir / "text_encoders" / JUDGE_NAME).symlink_to(tiny_models["judge"], target_is_directory=True)
    save_tiny_flux_lora(tiny_models["flux"], models_dir / "loras" / LORA_NAME)
    return models_dir


def node_inputs(node_classes: dict, node_id: str, **inputs) -> dict:
    """An API-format node: the node's widget defaults, overridden by ``inputs``."""
    from pack_loader import widget_defaults

    return {"class_type": node_id, "inputs": {**widget_defaults(node_classes[node_id]), **inputs}}


def save_image(source: list, filename_prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": filename_prefix}}


def artist_workflow(node_classes: dict) -> dict:
    """Generate a 2x2 set with a LoRA (and the same set without it, from the same loaded
    pipeline), judge the LoRA set's consistency, edit one of its panels twice."""

    def paco(node_id: str, **inputs) -> dict:
        return node_inputs(node_classes, node_id, **inputs)

    set_request = {
        "theme": THEME,
        "description": "The same fox in every panel.",
        "panels": "The fox sits.\nThe fox runs.\nThe fox eats.\nThe fox sleeps.",
        "layout": "2x2",
        "panel_width": PANEL_SIZE,
        "panel_height": PANEL_SIZE,
        "steps": 2,
        "seed": 0,
        "num_sets": 1,
    }
    return {
        "1": paco("PaCoPipelineLoader", model="tiny-flux"),
        "2": paco("PaCoLora", pipeline=["1", 0], lora_name=LORA_NAME, strength=1.0),
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": paco("PaCoGenerateSet", pipeline=["2", 0], **set_request),
        "5": save_image(["4", 1], "paco_set_grid"),
        "6": save_image(["4", 0], "paco_set_panels"),
        "7": paco("PaCoJudgeLoader", judge_name=JUDGE_NAME),
        "8": paco("PaCoSetConsistency", judge=["7", 0], images=["4", 0], theme=THEME, layout="batch"),
        "9": save_image(["8", 3], "paco_heatmap"),
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
        "11": paco("PaCoPipelineLoader", model="tiny-flux-kontext"),
        "12": {"class_type": "ImageFromBatch", "inputs": {"image": ["4", 0], "batch_index": 0, "length": 1}},
        "13": paco(
            "PaCoEditChain",
            pipeline=["11", 0],
            image=["12", 0],
            instructions=f"{EDIT_STEP_1}\nMake it night.",
            include_reference=True,
            steps=2,
        ),
        "14": save_image(["13", 0], "paco_chain"),
        "15": paco("PaCoGenerateSet", pipeline=["1", 0], **set_request),
        "16": save_image(["15", 1], "paco_base_grid"),
        # The other judge nodes: the first edit's score, best-of-2 sets, the judge's reasons.
        "17": {"class_type": "ImageFromBatch", "inputs": {"image": ["13", 0], "batch_index": 1, "length": 1}},
        "18": paco(
            "PaCoEditScore", judge=["7", 0], original=["12", 0], edited=["17", 0], instruction=EDIT_STEP_1
        ),
        "19": {"class_type": "PreviewAny", "inputs": {"source": ["18", 2]}},
        "20": {"class_type": "ImageBatch", "inputs": {"image1": ["4", 1], "image2": ["15", 1]}},
        "21": paco("PaCoRankSets", judge=["7", 0], images=["20", 0], theme=THEME, layout="2x2"),
        "22": save_image(["21", 0], "paco_best_grid"),
        "23": {"class_type": "PreviewAny", "inputs": {"source": ["21", 1]}},
        "24": {"class_type": "ImageFromBatch", "inputs": {"image": ["4", 0], "batch_index": 1, "length": 1}},
        "25": paco(
            "PaCoJudgeReasons",
            judge=["7", 0],
            first=["12", 0],
            second=["24", 0],
            text=THEME,
            max_new_tokens=8,
        ),
        "26": {"class_type": "PreviewAny", "inputs": {"source": ["25", 0]}},
        "27": {"class_type": "PreviewAny", "inputs": {"source": ["21", 2]}},
    }


def long_set_workflow(artist: dict) -> dict:
    """Eight sets of 200 steps from the artist's (already loaded) pipeline: long enough to cancel."""
    long_set = {**artist["4"]["inputs"], "pipeline": ["1", 0], "steps": 200, "num_sets": 8}
    return {
        "1": artist["1"],
        "2": {"class_type": "PaCoGenerateSet", "inputs": long_set},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }


def test_an_artist_workflow_generates_judges_and_edits_in_real_comfyui(tmp_path, tiny_models):
    """Tiny models in a temporary models folder, driven over HTTP like the frontend does:
    run, turn the LoRA off and run again, then cancel a long run."""
    from paco_core.reward.report import CELL_SIZE, LABEL_SIZE

    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    node_classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    models_dir = models_folder_with_tiny_models(tmp_path / "models", tiny_models)
    workflow = artist_workflow(node_classes)
    used = {node["class_type"] for node in workflow.values()}
    assert not used & {"LoraLoader", "LoraLoaderModelOnly"}, "PaCo LoRA should need no native LoRA loader"

    with pack_linked_into(comfyui_dir) as link, comfyui_server(comfyui_dir, tmp_path, models_dir) as server:
        url, log_path = server
        result = run_workflow(url, workflow)
        workflow["2"]["inputs"]["strength"] = 0.0  # the artist turns the LoRA off and queues again
        rerun = run_workflow(url, workflow)
        long_set = queue_prompt(url, long_set_workflow(workflow))
        interrupt_once_running(url, long_set)
        interrupted = wait_for_history(url, long_set)
        log = log_path.read_text()
    assert not link.exists(), "the custom_nodes link should be removed"

    for run in (result, rerun):
        assert run["status"]["status_str"] == "success", json.dumps(run["status"], indent=1)[-4000:]
    assert "Traceback" not in log, log[-4000:]
    outputs, output_dir = result["outputs"], tmp_path / "output"
    assert outputs["3"]["text"][0] == f"{LORA_NAME}: diffusers format, 8 of 8 keys matched, strength 1"

    (grid,) = saved_images(outputs["5"], output_dir)
    panels = saved_images(outputs["6"], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE)
    assert [panel.size for panel in panels] == [(PANEL_SIZE, PANEL_SIZE)] * 4
    bottom_right = grid.crop((PANEL_SIZE, PANEL_SIZE, 2 * PANEL_SIZE, 2 * PANEL_SIZE))
    assert panels[3].tobytes() == bottom_right.tobytes(), "panels should be the grid's cells, row-major"

    # The LoRA acts on its own branch only; at strength 0 it gives the base pipeline's set.
    (base_grid,) = saved_images(outputs["16"], output_dir)
    (grid_at_strength_0,) = saved_images(rerun["outputs"]["5"], output_dir)
    assert grid.tobytes() != base_grid.tobytes(), "the LoRA should change the set"
    assert grid_at_strength_0.tobytes() == base_grid.tobytes(), "strength 0 should give the base set"

    score = float(outputs["10"]["text"][0])
    assert 0.0 < score < 1.0
    report = outputs["8"]["text"][0]
    assert f"{score:.3f}" in report and "6 pairs of 4 images" in report, report
    (heatmap,) = saved_images(outputs["9"], output_dir)
    assert heatmap.size == (LABEL_SIZE + 4 * CELL_SIZE,) * 2

    chain = saved_images(outputs["14"], output_dir)
    assert [image.size for image in chain] == [(PANEL_SIZE, PANEL_SIZE)] * 3
    assert chain[0].tobytes() == panels[0].tobytes(), "the chain should start with the reference panel"
    assert chain[1].tobytes() != chain[0].tobytes(), "the first edit should change the panel"

    overall = float(outputs["19"]["text"][0])
    consistency, following = edit_report_scores(outputs["18"]["text"][0], EDIT_STEP_1, overall)
    assert 0.0 < consistency < 1.0 and 0.0 < following < 1.0
    assert overall == pytest.approx((consistency * following) ** 0.5, abs=2e-3)

    # Rank Sets on [LoRA grid, base grid]: the LoRA set scores as Set Consistency scored it.
    set_scores = json.loads(outputs["27"]["text"][0])
    best_index = int(outputs["23"]["text"][0])
    assert set_scores[0] == pytest.approx(score, abs=1e-4) and 0.0 < set_scores[1] < 1.0
    assert best_index == max(range(2), key=set_scores.__getitem__)
    (best,) = saved_images(outputs["22"], output_dir)
    assert best.tobytes() == (grid, base_grid)[best_index].tobytes()
    assert outputs["21"]["text"][0].startswith(f"best: set {best_index + 1}, consistency ")

    reasons = outputs["26"]["text"][0]
    assert reasons.strip() and outputs["25"]["text"] == [reasons], "the judge should write some reasons"

    assert interrupted["status"]["status_str"] == "error", json.dumps(interrupted["status"], indent=1)
    (stop,) = [data for kind, data in interrupted["status"]["messages"] if kind == "execution_interrupted"]
    assert stop["node_type"] == "PaCoGenerateSet", stop


SURFACE_SCRIPT = r'''
"""Describe the ComfyUI API surface named on stdin (real ComfyUI or the double, by argv)."""
import asyncio, enum, inspect, json, sys, tempfile
sys.path.insert(0, ".")
MODULES = ("comfy_api.latest", "comfy_api.latest._io", "comfy_api.latest._ui", "comfy.model_management",
           "comfy.utils", "comfy_execution.graph_utils", "folder_paths", "server")
side = sys.argv[1]
if side == "real":
    sys.argv = [sys.argv[0], "--cpu", "--base-directory", tempfile.mkdtemp()]  # leave the checkout alone
    import comfy.options
    comfy.options.enable_args_parsing()
import importlib
modules = {name: importlib.import_module(name) for name in MODULES}
if side == "real":
    modules["server"].PromptServer(asyncio.new_event_loop())

def public(name):
    return not name.startswith("_") and not name.startswith("stub_")

def params(function):
    described = []
    for p in inspect.signature(function).parameters.values():
        if p.name in ("self", "cls"):
            continue
        default = "-" if p.default is p.empty else p.default
        default = default if isinstance(default, (str, int, float, bool, type(None))) else type(default).__name__
        described.append([p.name, p.kind.name, default])
    return described

def describe(parent, name):
    static = inspect.getattr_static(parent, name)
    value = getattr(parent, name)
    if isinstance(static, property):
        return {"property": True}
    if inspect.isclass(value) and issubclass(value, enum.Enum):
        return {"enum": {member.name: member.value for member in value}}
    if inspect.isclass(value):
        return {"class": params(value.__init__) if value.__init__ is not object.__init__ else None}
    if callable(value):
        return {"callable": params(value)}
    if inspect.isclass(parent) and isinstance(value, (str, int)):
        return {"value": value}
    return {"type": None if value is None else type(value).__name__}

def resolve(path):
    module, _, dotted = path.partition(":")
    parent, names = modules[module], dotted.split(".")
    for name in names[:-1]:
        parent = getattr(parent, name)
    return parent, names[-1]

def members(obj):
    """Public names of a class or instance defined in the double (not inherited from Python)."""
    cls = obj if inspect.isclass(obj) else type(obj)
    if issubclass(cls, enum.Enum):
        return []
    own = [] if inspect.isclass(obj) else [n for n in vars(obj) if public(n)]
    for klass in cls.__mro__:
        if klass.__module__ in MODULES:
            own += [n for n in vars(klass) if public(n)]
    return sorted(set(own))

def surface():
    """Every path the double exposes: module names in __all__, their members, nested
    Input/Output classes, PromptServer.instance and the objects it holds."""
    paths = []
    def walk(path, obj, depth):
        paths.append(path)
        if depth == 0 or not (inspect.isclass(obj) or type(obj).__module__ in MODULES):
            return
        for name in members(obj):
            child = getattr(obj, name)
            if child is obj:  # PromptServer.instance.instance
                continue
            nested = name in ("Input", "Output", "instance") or (
                not inspect.isclass(child) and type(child).__module__ in MODULES)
            walk(f"{path}.{name}", child, depth - 1 if nested else 0)
    for module_name, module in modules.items():
        for name in module.__all__:
            walk(f"{module_name}:{name}", getattr(module, name), 3)
    return paths

if side == "stub":
    paths = surface()
else:
    paths = json.load(sys.stdin)
report = {}
for path in paths:
    try:
        report[path] = describe(*resolve(path))
    except AttributeError:
        report[path] = "missing"
custom = modules["comfy_api.latest._io"].Custom("PACO_X")
report["Custom('PACO_X')"] = [custom.io_type, params(custom.Input.__init__), params(custom.Output.__init__)]
print(json.dumps(report))
'''


def api_surface(python: str, cwd: Path, side: str, paths: list[str] | None = None) -> dict:
    done = subprocess.run(
        [python, "-c", SURFACE_SCRIPT, side],
        cwd=cwd,
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_everything_the_comfy_double_offers_exists_in_real_comfyui_with_the_same_signature():
    """Each name of tests/comfy_stub (io types and their Input/Output constructors, ui,
    ComfyExtension, PromptServer and what its instance holds, folder_paths, comfy.utils,
    comfy.model_management) exists in the real ComfyUI, with the same parameters (names,
    kinds, defaults), enum members and class constants; so what passes against the double
    passes in ComfyUI, and a misspelt argument fails in both."""
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    if comfyui_version(comfyui_dir) < (0, 33, 0):
        pytest.skip("the double copies ComfyUI 0.33's API surface; older versions differ in it by design")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    stand_in = api_surface(python, STUB_DIR, "stub")
    real = api_surface(python, comfyui_dir, "real", [path for path in stand_in if ":" in path])

    unset = {"type": None}  # e.g. PromptServer.loop before serving, PROGRESS_BAR_HOOK before a prompt

    def compatible(ours, theirs) -> bool:
        if theirs in (None, "missing"):
            return False
        if unset in (ours, theirs):
            return True
        if "enum" in ours and "enum" in theirs:
            return ours["enum"].items() <= theirs["enum"].items()
        return ours == theirs

    assert len(stand_in) > 100, "the surface walk found too little to compare"
    mismatches = [
        f"{path}:\n  double  {ours}\n  ComfyUI {real.get(path)}"
        for path, ours in stand_in.items()
        if not compatible(ours, real.get(path))
    ]
    assert not mismatches, "the double differs from ComfyUI:\n" + "\n".join(mismatches)


TINY_PIPELINES = {"FLUX.1-dev": "tiny-flux", "FLUX.1-Kontext-dev": "tiny-flux-kontext"}
REFERENCE_IMAGE = "paco_reference.png"
SET_IMAGE = "paco_set.png"
"""A 2x2 grid of PANEL_SIZE panels for PaCo Repair Odd Panel (three alike, one odd)."""


def tiny_training() -> dict:
    """PaCo Train LoRA's advanced_json for a 2-step job on the tiny models."""
    from test_comfyui_jobs import TINY_TRAINING

    return {**TINY_TRAINING, "eval_every": 1}


def tiny_prompt(prompt: dict) -> dict:
    """A shipped workflow's prompt on the tiny models: tiny model choices, 32-pixel panels,
    2 steps, the edit at the reference's own size, our own reference picture, a 2-step training job."""
    overrides = {
        "PaCoPipelineLoader": lambda i: {"model": TINY_PIPELINES[i["model"]]},
        "PaCoLora": lambda i: {} if isinstance(i["lora_name"], list) else {"lora_name": LORA_NAME},
        "PaCoTrainLora": lambda i: {
            "pipeline": "tiny-flux",
            "iterations": 2,
            "group_size": 2,
            "train_resolution": 32,
            "advanced_json": json.dumps(tiny_training()),
        },
        "PaCoJudgeLoader": lambda i: {"judge_name": JUDGE_NAME},
        "PaCoGenerateSet": lambda i: {"panel_width": PANEL_SIZE, "panel_height": PANEL_SIZE, "steps": 2},
        "PaCoEditChain": lambda i: {"steps": 2, "max_area": 0},
        "PaCoReferenceSet": lambda i: {"panel_width": PANEL_SIZE, "panel_height": PANEL_SIZE, "steps": 2},
        "PaCoRepairSet": lambda i: {"steps": 2},
        "LoadImage": lambda i: {"image": REFERENCE_IMAGE},
    }
    for node in prompt.values():
        if node["class_type"] in overrides:
            node["inputs"].update(overrides[node["class_type"]](node["inputs"]))
    for node in prompt.values():  # the repair cuts its picture into a 2x2 set: give it a grid
        source = node["inputs"].get("images") if node["class_type"] == "PaCoRepairSet" else None
        if source and prompt[source[0]]["class_type"] == "LoadImage":
            prompt[source[0]]["inputs"]["image"] = SET_IMAGE
    return prompt


def edit_report_scores(report: str, instruction: str, overall: float | None = None) -> tuple[float, float]:
    """(consistency, following) from PaCo Edit Score's one-edit report, which names the
    instruction (wired from the chain) and, when given, the overall score."""
    found = re.fullmatch(
        rf'edit 1 "{re.escape(instruction)}": overall (0\.\d{{3}}) \(consistency (0\.\d{{3}}), following (0\.\d{{3}})\)',
        report,
    )
    assert found, report
    if overall is not None:
        assert found.group(1) == f"{overall:.3f}", report
    return float(found.group(2)), float(found.group(3))


def only(prompt: dict, class_type: str) -> dict:
    (inputs,) = [node["inputs"] for node in prompt.values() if node["class_type"] == class_type]
    return inputs


def outputs_of(prompt: dict, result: dict, class_type: str) -> list[dict]:
    return [result["outputs"][i] for i, node in prompt.items() if node["class_type"] == class_type]


def test_shipped_workflows_run_in_real_comfyui(tmp_path, tiny_models):
    """Every workflows/*.json, converted as the frontend queues it, runs on the tiny models;
    ComfyUI lists the files as the pack's templates and serves them unchanged."""
    from tools.workflows.api_prompt import to_api_prompt
    from tools.workflows.core_nodes import CORE_NODE_LAYOUTS
    from tools.workflows.node_layouts import node_layouts
    from tools.workflows.specs import NATIVE_WORKFLOWS, WORKFLOWS_DIR

    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    models_dir = models_folder_with_tiny_models(tmp_path / "models", tiny_models)
    layouts = node_layouts()
    shipped = {
        path.stem: json.loads(path.read_text(encoding="utf-8")) for path in WORKFLOWS_DIR.glob("*.json")
    }
    prompts = {  # the native-node workflows run in tests/test_comfyui_native.py, the character one in
        name: tiny_prompt(to_api_prompt(workflow, layouts))  # tests/test_comfyui_character.py
        for name, workflow in shipped.items()
        if name not in NATIVE_WORKFLOWS and name != "paco-train-character"
    }
    assert sorted(prompts) == [
        "paco-best-of-n",
        "paco-character-set",
        "paco-consistent-set",
        "paco-edit-chain",
        "paco-pool",
        "paco-repair-odd-panel",
        "paco-train-lora",
    ]

    with pack_linked_into(comfyui_dir) as link, comfyui_server(comfyui_dir, tmp_path, models_dir) as server:
        url, log_path = server
        object_info = http_json(f"{url}/object_info", timeout=60)
        for node_type, layout in CORE_NODE_LAYOUTS.items():
            if layout.is_virtual:
                continue
            info = object_info[node_type]
            order = info["input_order"]
            names = [*order.get("required", []), *order.get("optional", [])]
            served = [item.name for item in layout.input_slots if getattr(item, "in_prompt", True)]
            if comfyui_version(comfyui_dir) < (0, 33, 0):  # core nodes gained (optional) inputs since
                served = [name for name in served if name in names]
            sockets = {slot.name for slot in layout.sockets}
            # The UI lists sockets before widgets; each kind keeps the server's order.
            assert [n for n in names if n in sockets] == [n for n in served if n in sockets], node_type
            assert [n for n in names if n not in sockets] == [n for n in served if n not in sockets], (
                node_type
            )
            assert sorted(names) == sorted(served), node_type
            expected = [slot.io_type for slot in layout.outputs]
            linked = linked_output_slots(shipped.values(), node_type)
            # ComfyUI 0.3.6x lists fewer outputs for some core nodes (SaveImage: none): those
            # the shipped workflows link from must be there, with the table's types
            assert info["output"] == expected or (
                info["output"] == expected[: len(info["output"])]
                and max(linked, default=-1) < len(info["output"])
            ), node_type

        extensions = http_json(f"{url}/extensions")
        assert f"/extensions/{link.name}/text_labels.js" in extensions, (
            "the pack's frontend extension is served"
        )
        templates = http_json(f"{url}/workflow_templates")
        assert sorted(templates[link.name]) == sorted(shipped), templates
        for name, workflow in shipped.items():
            assert http_json(f"{url}/api/workflow_templates/{link.name}/{name}.json") == workflow, name

        Image.new("RGB", (PANEL_SIZE, PANEL_SIZE), (200, 90, 40)).save(tmp_path / "input" / REFERENCE_IMAGE)
        odd_set = Image.new("RGB", (2 * PANEL_SIZE, 2 * PANEL_SIZE), (200, 90, 40))
        odd_set.paste((30, 60, 200), (PANEL_SIZE, PANEL_SIZE, 2 * PANEL_SIZE, 2 * PANEL_SIZE))
        odd_set.save(tmp_path / "input" / SET_IMAGE)
        results = {name: run_workflow(url, prompt) for name, prompt in prompts.items()}
        # the training job trains in the background; once it completed, the same graph makes a set with its LoRA
        (job,) = http_json(f"{url}/paco/jobs")["jobs"]
        deadline = time.monotonic() + 300
        while job["status"] in ("queued", "running", "stopping") and time.monotonic() < deadline:
            time.sleep(1)
            job = http_json(f"{url}/paco/jobs/{job['id']}")
        results["trained"] = run_workflow(url, prompts["paco-train-lora"])
        log = log_path.read_text()
    assert not link.exists(), "the custom_nodes link should be removed"

    for name, result in results.items():
        assert result["status"]["status_str"] == "success", (
            name,
            json.dumps(result["status"], indent=1)[-4000:],
        )
    assert "Traceback" not in log, log[-4000:]
    output_dir = tmp_path / "output"

    prompt, result = prompts["paco-consistent-set"], results["paco-consistent-set"]
    (grid,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE)
    previews = outputs_of(prompt, result, "PreviewImage")
    assert sorted(len(preview["images"]) for preview in previews) == [1, 4], "the heatmap and the 4 panels"
    (report,) = outputs_of(prompt, result, "PreviewAny")
    assert "6 pairs of 4 images" in report["text"][0]

    prompt, result = prompts["paco-best-of-n"], results["paco-best-of-n"]
    (best,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert best.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE)
    (ranking,) = outputs_of(prompt, result, "PreviewAny")
    best_line, *places = ranking["text"][0].splitlines()
    seed = only(prompt, "PaCoGenerateSet")["seed"]
    winner = re.fullmatch(
        r"best: set (\d) \(seed (\d+)\), consistency 0\.\d{3} of 4 candidate sets", best_line
    )
    assert winner and int(winner.group(2)) == seed + int(winner.group(1)) - 1, best_line
    assert [line.split(".")[0] for line in places] == ["1", "2", "3", "4"], places
    (candidates,) = outputs_of(prompt, result, "PreviewImage")
    (shown,) = candidates["images"]
    assert shown["type"] == "temp"
    (path,) = (tmp_path / "temp").rglob(shown["filename"])  # ComfyUI keeps previews under --temp-directory
    side_by_side = Image.open(path)
    assert side_by_side.size == (4 * PANEL_SIZE, 4 * PANEL_SIZE), "all 4 candidate grids in one picture"

    prompt, result = prompts["paco-train-lora"], results["paco-train-lora"]
    (status,) = outputs_of(prompt, result, "PaCoTrainingJob")
    assert "has no checkpoint yet" in status["text"][0], "the first run only starts the job"
    (save_id,) = [i for i, node in prompt.items() if node["class_type"] == "SaveImage"]
    assert save_id not in result["outputs"], "no LoRA yet: the set is skipped, not failed"
    assert job["status"] == "completed", job["error"]
    result = results["trained"]
    (status,) = outputs_of(prompt, result, "PaCoTrainingJob")
    assert status["text"][0].startswith(f"{job['id']} · paco-sets: completed, step 2/2"), status["text"][0]
    (grid,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE), "a set made with the job's best LoRA"
    assert (models_dir / "loras" / "paco" / "paco-sets" / job["id"] / "paco-sets-best.safetensors").is_file()

    prompt, result = prompts["paco-character-set"], results["paco-character-set"]
    (grid,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE)
    assert grid.getpixel((5, 5)) == (200, 90, 40), "the reference sits in cell 1"
    (report,) = outputs_of(prompt, result, "PreviewAny")
    assert "reference cells #1" in report["text"][0] and "keep the identity" in report["text"][0]

    prompt, result = prompts["paco-repair-odd-panel"], results["paco-repair-odd-panel"]
    (grid,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE)
    (log,) = outputs_of(prompt, result, "PreviewAny")
    before, after = re.search(r"set consistency (\d\.\d{3}) -> (\d\.\d{3})", log["text"][0]).groups()
    assert float(after) >= float(before), log["text"][0]
    assert len(outputs_of(prompt, result, "PreviewImage")) == 2, "the pair heatmaps before and after"

    prompt, result = prompts["paco-pool"], results["paco-pool"]
    (grid,) = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE), "the assembled set"
    (report,) = outputs_of(prompt, result, "PreviewAny")
    assert report["text"][0].startswith("assembled set consistency"), report["text"][0]

    prompt, result = prompts["paco-edit-chain"], results["paco-edit-chain"]
    chain = saved_images(outputs_of(prompt, result, "SaveImage")[0], output_dir)
    assert [image.size for image in chain] == [(PANEL_SIZE, PANEL_SIZE)] * 4, "the reference and 3 edits"
    assert chain[0].getpixel((5, 5)) == (200, 90, 40), "the chain starts with the reference"
    (edit_report,) = outputs_of(prompt, result, "PreviewAny")
    instruction = only(prompt, "PaCoEditChain")["instructions"].splitlines()[0]
    consistency, following = edit_report_scores(edit_report["text"][0], instruction)
    assert 0.0 < consistency < 1.0 and 0.0 < following < 1.0
