"""The job-action routes (sample, save, continue, move, lineage, prompts, queue, compare) through
the ComfyUI test double's server: answers, and 4xx with one line for every bad input."""

from __future__ import annotations

import importlib
import io
import json
import os
from pathlib import Path

import pytest
from pack_loader import all_node_classes, load_pack, reset_comfy_stub
from PIL import Image
from test_jobs_ux import _finished_run, _job
from test_training_nodes import call_routes

from paco_core import run_requests


@pytest.fixture
def comfy(tmp_path):
    reset_comfy_stub(tmp_path / "comfy")
    pack = load_pack()
    all_node_classes()  # runs the extension's on_load: the routes
    bridge = importlib.import_module(f"{pack.__name__}.nodes.jobs_bridge")
    import server

    return {"server": server.PromptServer.instance, "store": bridge.job_store(), "tmp": tmp_path}


def test_action_routes_answer(comfy):
    store, tmp = comfy["store"], comfy["tmp"]
    running = _job(store, tmp, "live", "running")
    done = _job(store, tmp, "done", "completed")
    _finished_run(Path(done.run_dir))
    run_requests.write_prompt_rewards(
        done.run_dir,
        {
            "train": {
                "0": {"prompt": "a fox", "step": 4, "rewards": {"toy": {"mean": 0.9, "std": 0.1, "n": 2}}},
                "1": {"prompt": "a boat", "step": 3, "rewards": {"toy": {"mean": 0.2, "std": 0.3, "n": 2}}},
            },
            "eval": {},
        },
    )
    grid = run_requests.requested_sample_path(running.run_dir, 3)
    grid.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(grid)
    queued = [_job(store, tmp, name, "queued") for name in ("q1", "q2")]
    answers = call_routes(
        comfy["server"],
        [
            ("POST", f"/paco/jobs/{running.id}/sample", {"json": {"prompt": "a fox\nsits\nruns"}}),
            ("POST", f"/paco/jobs/{running.id}/save", {}),
            ("GET", f"/paco/jobs/{running.id}/requests", {}),
            ("GET", f"/paco/jobs/{running.id}/requested-sample", {}),
            ("POST", f"/paco/jobs/{done.id}/continue", {"json": {"iterations": 2, "name": "more"}}),
            ("POST", f"/paco/jobs/{queued[1].id}/move", {"json": {"where": "front"}}),
            ("GET", f"/paco/jobs/{done.id}/prompts", {}),
            ("GET", "/paco/job-queue", {}),
            ("GET", f"/paco/job-compare?ids={done.id},{running.id}", {}),
        ],
    )
    assert [status for status, _ in answers] == [200] * 9, answers
    (
        (_, sample),
        (_, save),
        (_, state),
        (_, png),
        (_, child),
        (_, moved),
        (_, prompts),
        (_, queue),
        (_, compared),
    ) = answers
    assert sample["kind"] == "sample" and sample["requested"]["rows"][0]["layout"] == "1x2"
    assert (
        save["kind"] == "save"
        and state["save"]["pending"]["kind"] == "save"
        and state["sample"]["done"] is None
    )
    assert Image.open(io.BytesIO(png)).getpixel((0, 0)) == (200, 10, 10)
    assert child["parent_id"] == done.id and child["name"] == "more" and child["total"] == 6
    assert moved["positions"][queued[1].id] == 1 and moved["job"]["id"] == queued[1].id
    assert [row["prompt"] for row in prompts["train"]] == ["a boat", "a fox"], "the least learned first"
    assert queue["positions"][child["id"]] == 3
    assert [row["id"] for row in compared["rows"]] == [done.id, running.id]
    assert compared["curves"][0]["train"][-1][0] == 4
    ((status, lineage),) = call_routes(comfy["server"], [("GET", f"/paco/jobs/{child['id']}/lineage", {})])
    assert status == 200 and [r["id"] for r in lineage["lineage"]] == [done.id, child["id"]]


def test_action_routes_refuse_bad_input_and_change_nothing(comfy):
    store, tmp = comfy["store"], comfy["tmp"]
    running = _job(store, tmp, "live", "running")
    done = _job(store, tmp, "done", "completed")
    _finished_run(Path(done.run_dir))
    edit = _job(store, tmp, "edit", "completed", kind="qwen-image-edit")
    before = [job.to_dict() for job in store.list()]
    answers = call_routes(
        comfy["server"],
        [
            ("POST", f"/paco/jobs/{done.id}/sample", {}),
            ("POST", f"/paco/jobs/{done.id}/save", {}),
            ("POST", f"/paco/jobs/{running.id}/sample", {"json": {"prompt": 7}}),
            ("POST", f"/paco/jobs/{running.id}/sample", {"data": "not json"}),
            ("POST", f"/paco/jobs/{running.id}/continue", {"json": {"iterations": 5}}),
            ("POST", f"/paco/jobs/{done.id}/continue", {"json": {"iterations": 0}}),
            ("POST", f"/paco/jobs/{done.id}/continue", {"json": {"iterations": "5"}}),
            ("POST", f"/paco/jobs/{done.id}/continue", {"json": {"iterations": 5, "from": "middle"}}),
            ("POST", f"/paco/jobs/{running.id}/move", {"json": {"where": "up"}}),
            ("GET", f"/paco/job-compare?ids={done.id}", {}),
            ("GET", f"/paco/job-compare?ids={done.id},{edit.id}", {}),
            ("GET", "/paco/job-compare?ids=job-00000000,job-11111111", {}),
            ("GET", "/paco/jobs/job-00000000/requested-sample", {}),
            ("GET", f"/paco/jobs/{running.id}/requested-sample", {}),
        ],
    )
    statuses = [status for status, _ in answers]
    assert statuses == [409, 409, 400, 400, 409, 400, 400, 400, 409, 400, 400, 404, 404, 404], answers
    for _, body in answers:
        assert isinstance(body, dict) and body["error"] and "\n" not in body["error"]
    assert "sample now needs a running job" in answers[0][1]["error"]
    assert "only queued jobs can be moved" in answers[8][1]["error"]
    assert [job.to_dict() for job in store.list()] == before
    assert run_requests.pending_request(done.run_dir, "sample") is None
    assert not os.path.exists(run_requests.request_path(running.run_dir, "sample"))
    assert json.dumps(before)  # records stay plain JSON


def test_training_job_status_says_what_the_toast_says_and_names_the_parent(comfy):
    store, tmp = comfy["store"], comfy["tmp"]
    training = importlib.import_module(f"{load_pack().__name__}.nodes.training")
    _job(store, tmp, "busy", "running")  # holds the cpu queue: the continued job stays queued
    done = _job(store, tmp, "faces", "completed")
    _finished_run(Path(done.run_dir))
    store.update(done.id, step=4, total=4)
    assert training.status_text(store.get(done.id)).splitlines()[-1] == "PaCo job completed: faces: 4 steps"
    failed = _job(store, tmp, "broken", "failed")
    store.update(failed.id, error="Traceback ...\nTrainingError: the judge server is down")
    assert "PaCo job failed: broken: TrainingError: the judge server is down" in training.status_text(
        store.get(failed.id)
    )
    ((status, child),) = call_routes(
        comfy["server"], [("POST", f"/paco/jobs/{done.id}/continue", {"json": {"iterations": 1}})]
    )
    assert status == 200
    assert f"continues {done.id} (faces) from step 4" in training.status_text(store.get(child["id"]))
