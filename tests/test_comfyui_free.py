"""ComfyUI's "Unload models" / POST /free releases PaCo's pipelines and judges, in a real
ComfyUI server (skipped unless COMFYUI_DIR names a checkout; see test_comfyui_integration).

A workflow loads the tiny FLUX pipeline and the tiny judge and uses both; POST /free (what
the frontend's "Unload models" button sends) must make the pack release them (its log line
says how many), a graph input pointing outside the models folder must fail with PaCo's
message, and the workflow must run again afterwards.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python \\
        pytest -m comfyui tests/test_comfyui_free.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pack_loader import all_node_classes
from test_comfyui_integration import (
    comfyui_server,
    http_json,
    models_folder_with_tiny_models,
    node_inputs,
    pack_linked_into,
    run_workflow,
)

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]


def pipeline_and_judge_workflow(node_classes: dict) -> dict:
    def paco(node_id: str, **inputs) -> dict:
        return node_inputs(node_classes, node_id, **inputs)

    return {
        "1": paco("PaCoPipelineLoader", model="tiny-flux"),
        "2": paco(
            "PaCoGenerateSet", pipeline=["1", 0], theme="a fox", panels="sits\nruns", layout="1x2",
            panel_width=32, panel_height=32, steps=1,
        ),
        "3": paco("PaCoJudgeLoader", judge_name="tiny-judge"),
        "4": paco("PaCoSetConsistency", judge=["3", 0], images=["2", 0], theme="a fox", layout="batch"),
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }  # fmt: skip


def free_until_logged(url: str, log_path: Path, text: str, timeout: float = 60.0) -> str:
    """POST /free until ``text`` shows in the log. ComfyUI's prompt worker acts on /free when
    it wakes; a /free arriving while it is busy after a prompt (garbage collection) waits for
    its next wake-up, up to 1000 s, so a second press is what a user would do too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        http_json(f"{url}/free", {"unload_models": True, "free_memory": True})
        for _ in range(12):
            log = log_path.read_text()
            if text in log:
                return log
            time.sleep(0.25)
    pytest.fail(f"{text!r} not in the ComfyUI log within {timeout} s:\n{log_path.read_text()[-3000:]}")


def test_free_releases_paco_models_and_outside_paths_are_refused(tmp_path, tiny_models):
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    node_classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    models_dir = models_folder_with_tiny_models(tmp_path / "models", tiny_models)
    workflow = pipeline_and_judge_workflow(node_classes)
    outside = dict(
        workflow,
        **{
            "1": node_inputs(
                node_classes,
                "PaCoPipelineLoader",
                model=typed_path_choice(node_classes),
                model_path=str(tiny_models["flux"]),
            )
        },
    )

    with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path, models_dir) as (url, log_path):
        first = run_workflow(url, workflow)
        log = free_until_logged(url, log_path, "PaCo released 1 pipeline(s) and 1 judge(s)")
        again = run_workflow(url, workflow)
        refused = run_workflow(url, outside)

    assert first["status"]["status_str"] == "success", first["status"]
    assert again["status"]["status_str"] == "success", again["status"]
    assert refused["status"]["status_str"] == "error"
    (error,) = [data for kind, data in refused["status"]["messages"] if kind == "execution_error"]
    assert "is outside ComfyUI's models folders" in error["exception_message"], error
    assert error["exception_type"].endswith("InputError")
    assert "Traceback" not in log, log[-3000:]


def typed_path_choice(node_classes) -> str:
    """The Pipeline Loader's dropdown entry that means "use the typed model_path"."""
    import sys

    return sys.modules[node_classes["PaCoPipelineLoader"].__module__].TYPED_PATH_CHOICE
