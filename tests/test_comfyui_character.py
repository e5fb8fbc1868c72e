"""The shipped workflow "train a LoRA for my character" in a real ComfyUI on the tiny models:
references -> PaCo Prompt Set -> PaCo Train LoRA -> PaCo Training Job (the held-out set made with
the trained LoRA, saved) -> PaCo LoRA -> PaCo Generate Set: a set of new scenes with the trained LoRA,
skipped on the first queue (no checkpoint yet), saved on a later one. Skipped unless COMFYUI_DIR names a ComfyUI checkout (as
tests/test_comfyui_integration.py)."""

from __future__ import annotations

import json
import time

from PIL import Image
from test_comfyui_integration import (
    PANEL_SIZE,
    REFERENCE_IMAGE,
    comfyui_server,
    http_json,
    models_folder_with_tiny_models,
    outputs_of,
    pack_linked_into,
    pytestmark,  # noqa: F401 (comfyui marker, skipped without COMFYUI_DIR)
    run_workflow,
    saved_images,
    tiny_prompt,
)

NAME = "paco-train-character"


def test_character_workflow_trains_on_the_references_then_makes_a_set_with_the_lora(tmp_path, tiny_models):
    import os
    from pathlib import Path

    from tools.workflows.api_prompt import to_api_prompt
    from tools.workflows.node_layouts import node_layouts
    from tools.workflows.specs import WORKFLOWS_DIR

    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    models_dir = models_folder_with_tiny_models(tmp_path / "models", tiny_models)
    workflow = json.loads((WORKFLOWS_DIR / f"{NAME}.json").read_text(encoding="utf-8"))
    prompt = tiny_prompt(to_api_prompt(workflow, node_layouts()))
    for node in prompt.values():  # a 1x2 prompt set of 3 scenes keeps the tiny job short
        if node["class_type"] == "PaCoPromptSet":
            node["inputs"].update(layout="1x2", rows_per_scene=1, scenes="a park\na kitchen\na beach")
    with pack_linked_into(comfyui_dir), comfyui_server(comfyui_dir, tmp_path, models_dir) as server:
        url, log_path = server
        Image.new("RGBA", (48, 64), (200, 90, 40, 255)).save(tmp_path / "input" / REFERENCE_IMAGE)
        first = run_workflow(url, prompt)
        (job,) = http_json(f"{url}/paco/jobs")["jobs"]
        deadline = time.monotonic() + 300
        while job["status"] in ("queued", "running", "stopping") and time.monotonic() < deadline:
            time.sleep(1)
            job = http_json(f"{url}/paco/jobs/{job['id']}")
        second = run_workflow(url, prompt)
        metrics = http_json(f"{url}/paco/jobs/{job['id']}/metrics")
        log = log_path.read_text()
    assert first["status"]["status_str"] == "success", json.dumps(first["status"])[-3000:]
    assert second["status"]["status_str"] == "success", json.dumps(second["status"])[-3000:]
    assert job["status"] == "completed", job.get("error")
    assert "Traceback" not in log, log[-4000:]
    assert "rewards/reference/mean" in json.dumps(metrics) and "eval/rewards/reference/mean" in json.dumps(
        metrics
    )
    held_out_id, set_id = saved_from(prompt, "PaCoTrainingJob"), saved_from(prompt, "PaCoGenerateSet")
    (status,) = outputs_of(prompt, first, "PaCoTrainingJob")
    assert "has no checkpoint yet" in status["text"][0], "the first queue only starts the job"
    assert held_out_id in first["outputs"], "the job's (grey) sample is saved at once"
    assert set_id not in first["outputs"], "no LoRA yet: the set is skipped, not failed"
    (status,) = outputs_of(prompt, second, "PaCoTrainingJob")
    assert "my-character: completed, step 2/2" in status["text"][0], status["text"][0]
    (held_out,) = saved_images(second["outputs"][held_out_id], tmp_path / "output")
    assert len(set(held_out.convert("L").getdata())) > 1, (
        "the held-out sample made with the trained LoRA, not the grey placeholder"
    )
    lora = next(node["inputs"] for node in prompt.values() if node["class_type"] == "PaCoLora")
    assert prompt[lora["lora_name"][0]]["class_type"] == "PaCoTrainingJob", "the job's LoRA, not a file"
    (grid,) = saved_images(second["outputs"][set_id], tmp_path / "output")
    assert grid.size == (2 * PANEL_SIZE, 2 * PANEL_SIZE), "a 2x2 set of new scenes made with the trained LoRA"
    assert (
        models_dir / "loras" / "paco" / "my-character" / job["id"] / "my-character-best.safetensors"
    ).is_file()


def saved_from(prompt: dict, producer: str) -> str:
    """The id of the SaveImage node whose images come from the one ``producer`` node."""
    (node_id,) = [
        i
        for i, node in prompt.items()
        if node["class_type"] == "SaveImage" and prompt[node["inputs"]["images"][0]]["class_type"] == producer
    ]
    return node_id
