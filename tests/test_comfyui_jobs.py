"""Training jobs inside a real ComfyUI (skipped unless COMFYUI_DIR names a checkout).

One artist session, end to end, with the tiny FLUX model on the CPU:

1. a graph with PaCo Train LoRA finishes in under 2 s while its job trains;
2. a generation graph queued meanwhile completes (the job yields the CPU to it);
3. the /paco/jobs routes answer and a ``paco.job`` websocket event arrives;
4. ComfyUI is killed (-9) and started again: the trainer kept running, the job is listed,
   followed and completes, and its LoRA appears under models/loras/paco/;
5. PaCo Training Job -> PaCo LoRA -> PaCo Generate Set runs with that LoRA.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python \\
        pytest -m comfyui tests/test_comfyui_jobs.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import free_port, kill_job_processes
from test_comfyui_integration import (
    http_json,
    models_directory_args,
    pack_linked_into,
    queue_prompt,
    wait_until_up,
)

from paco_core.jobs.store import JobStore
from paco_core.run_folder import is_process_alive
from paco_core.testing.training import TINY_TRAINING as TINY_TRAINING_EVERY_STEP

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout"),
]

FIXTURES = Path(__file__).parent / "fixtures"
TINY_TRAINING = {**TINY_TRAINING_EVERY_STEP, "eval_every": 2}


def start_comfyui(comfyui_dir: Path, workdir: Path, models_dir: Path, env: dict, log_name: str):
    """ComfyUI on a free port with its folders under ``workdir``; returns (process, url)."""
    port = free_port()
    command = [
        os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu", "--listen", "127.0.0.1",
        "--port", str(port), "--output-directory", str(workdir / "output"), "--temp-directory",
        str(workdir / "temp"), "--input-directory", str(workdir / "input"), "--user-directory",
        str(workdir / "user"), "--database-url", "sqlite:///:memory:",
        *models_directory_args(comfyui_dir, models_dir, workdir),
    ]  # fmt: skip
    log_path = workdir / log_name
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, url, log_path)
    except BaseException:
        process.kill()
        raise
    return process, url


def wait_for_prompt(url: str, prompt_id: str, timeout: float, poll: float = 0.05) -> tuple[dict, float]:
    """The prompt's history entry once it finished, and the seconds it took to get there."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        history = http_json(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id], time.monotonic() - started
        time.sleep(poll)
    pytest.fail(f"prompt {prompt_id} did not finish within {timeout} s")


class EventListener:
    """Collects the ``paco.job`` websocket events of a ComfyUI in a background thread."""

    def __init__(self, url: str):
        self.url = url.replace("http://", "ws://") + "/ws?clientId=paco-jobs-test"
        self.events: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self._thread.start()

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as socket:
                while not self._stop.is_set():
                    try:
                        message = await socket.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if message.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(message.data)
                        if data.get("type") == "paco.job":
                            self.events.append(data["data"])
                    elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def train_graph(node_classes: dict) -> dict:
    from test_comfyui_integration import node_inputs

    return {
        "1": node_inputs(
            node_classes, "PaCoTrainLora", pipeline="tiny-flux",
            training_prompts="[1x2] a red fox\nThe fox sits.\nThe fox runs.\n\na paper boat\nIt floats.\nIt sinks.",
            rewards="job_rewards:held_brightness=1", iterations=4, group_size=2, train_resolution=32,
            lora_name="tinyfox", advanced_json=json.dumps(TINY_TRAINING),
        ),
    }  # fmt: skip


def generation_graph(node_classes: dict, prefix: str, lora_from_job: str | None = None) -> dict:
    from test_comfyui_integration import node_inputs

    graph = {
        "1": node_inputs(node_classes, "PaCoPipelineLoader", model="tiny-flux"),
        "2": node_inputs(
            node_classes, "PaCoGenerateSet", pipeline=["1", 0], theme="a red fox", panels="sits\nruns",
            layout="1x2", panel_width=32, panel_height=32, steps=2,
        ),
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": prefix}},
    }  # fmt: skip
    if lora_from_job:
        graph["4"] = node_inputs(node_classes, "PaCoTrainingJob", job=lora_from_job)
        graph["5"] = node_inputs(node_classes, "PaCoLora", pipeline=["1", 0], lora_name=["4", 3])
        graph["2"]["inputs"]["pipeline"] = ["5", 0]
    return graph


def kill_jobs(home: Path) -> None:
    if not (home / "jobs.sqlite3").is_file():
        return
    kill_job_processes(JobStore(home))


def test_a_job_trains_in_the_background_of_real_comfyui_and_survives_its_kill_9(tmp_path, tiny_models):
    from pack_loader import all_node_classes

    node_classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    comfyui_dir = Path(os.environ["COMFYUI_DIR"])
    models = tmp_path / "models"
    (models / "diffusers").mkdir(parents=True)
    (models / "loras").mkdir()
    (models / "diffusers" / "tiny-flux").symlink_to(tiny_models["flux"], target_is_directory=True)
    workdir = tmp_path / "comfy"
    for name in ("output", "temp", "input", "user"):
        (workdir / name).mkdir(parents=True)
    home = workdir / "user" / "paco"
    hold = tmp_path / "hold"  # holds the trainer inside step 2 until the test lets it go
    hold.touch()
    env = {
        **os.environ, "PYTHONPATH": str(FIXTURES / "jobs"), "PACO_REWARD_FOLDERS": str(FIXTURES / "jobs"),
        "PACO_TEST_HOLD_FILE": str(hold),
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    first = second = listener = None
    with pack_linked_into(comfyui_dir):
        try:
            first, url = start_comfyui(comfyui_dir, workdir, models, env, "server-1.log")
            listener = EventListener(url)
            # 1. the training graph returns at once
            entry, seconds = wait_for_prompt(url, queue_prompt(url, train_graph(node_classes)), 60)
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert seconds < 2.0, f"the PaCo Train LoRA graph took {seconds:.2f} s"
            jobs = http_json(f"{url}/paco/jobs")["jobs"]
            assert len(jobs) == 1 and jobs[0]["name"] == "tinyfox"
            job_id = jobs[0]["id"]
            assert jobs[0]["gpu_policy"] == "yield" and jobs[0]["device"] == "cpu"
            # 2. a generation graph queued meanwhile completes
            entry, _ = wait_for_prompt(url, queue_prompt(url, generation_graph(node_classes, "during")), 180)
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert list((workdir / "output").glob("during_*.png"))
            # 3. routes and the websocket event
            eval_name = "eval/rewards/job_rewards:held_brightness/mean"  # step 0's evaluation; then held
            until(
                lambda: eval_name in http_json(f"{url}/paco/jobs/{job_id}/metrics")["series"],
                180,
                "the evaluation of step 0",
            )
            detail = http_json(f"{url}/api/paco/jobs/{job_id}")
            assert detail["status"] == "running" and detail["warnings"] == []
            log = http_json(f"{url}/paco/jobs/{job_id}/log?lines=50")["lines"]
            assert any("paco jobs" in line for line in log)
            metrics = http_json(f"{url}/paco/jobs/{job_id}/metrics")["series"]
            assert metrics[eval_name][0][0] == 0
            until(lambda: any(e.get("id") == job_id for e in listener.events), 30, "a paco.job event")
            assert {"eta_s", "metrics", "status", "step", "total"} <= set(listener.events[-1])
            trainer = JobStore(home).get(job_id)
            assert is_process_alive(trainer.pid, trainer.pid_start)
            # 4. kill -9 ComfyUI: the trainer goes on; a new ComfyUI follows it to the end
            listener.stop()
            first.send_signal(signal.SIGKILL)
            first.wait(20)
            time.sleep(1.0)
            assert is_process_alive(trainer.pid, trainer.pid_start), "the trainer died with ComfyUI"
            second, url = start_comfyui(comfyui_dir, workdir, models, env, "server-2.log")
            listed = http_json(f"{url}/paco/jobs")["jobs"]
            assert [j["id"] for j in listed] == [job_id] and listed[0]["status"] == "running"
            hold.unlink()
            done = until(
                lambda: (
                    (j := http_json(f"{url}/paco/jobs/{job_id}"))["status"]
                    in ("completed", "failed", "interrupted")
                    and j
                ),
                240,
                "the job to end",
            )
            assert done["status"] == "completed", done["error"]
            lora = models / "loras" / "paco" / "tinyfox" / job_id / "tinyfox.safetensors"
            until(lora.is_file, 15, "the exported LoRA")
            assert (Path(done["last_checkpoint"]) / "lora.safetensors").read_bytes() == lora.read_bytes()
            # 5. the job's LoRA into a set
            graph = generation_graph(node_classes, "after", lora_from_job=job_id)
            entry, _ = wait_for_prompt(url, queue_prompt(url, graph), 180)
            assert entry["status"]["status_str"] == "success", entry["status"]
            shown = entry["outputs"]["4"]
            assert shown["text"][0].startswith(f"{job_id} · tinyfox: completed, step 4/4")
            previews = [
                list((workdir / "temp").rglob(i["filename"])) for i in shown["images"]
            ]  # under temp/temp
            assert [len(found) for found in previews] == [1, 1] and shown["images"][0]["type"] == "temp"
            assert list((workdir / "output").glob("after_*.png"))
        finally:
            if listener is not None:
                listener.stop()
            for server in (first, second):
                if server is not None and server.poll() is None:
                    server.kill()
                    server.wait(20)
            kill_jobs(home)


def files_train_graph(node_classes: dict, **changes) -> dict:
    """PaCo Train LoRA on the tiny FLUX as ComfyUI's split files (pipeline "(ComfyUI files)")."""
    graph = train_graph(node_classes)
    graph["1"]["inputs"].update(
        {
            "pipeline": "(ComfyUI files)",
            "iterations": 2,
            "lora_name": "filesfox",
            "diffusion_model": "tiny-flux-fp8_scaled.safetensors",
            "text_encoder_1": "tiny-flux-clip_l.safetensors",
            "text_encoder_2": "tiny-flux-t5xxl.safetensors",
            "vae": "tiny-flux-ae.safetensors",
            "files_config": "tiny-flux",
            "advanced_json": json.dumps({**TINY_TRAINING, "eval_every": 1}),
            **changes,
        }
    )
    return graph


def test_a_job_on_comfyuis_own_files_trains_in_real_comfyui(tmp_path, tiny_models):
    from pack_loader import all_node_classes

    node_classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    comfyui_dir = Path(os.environ["COMFYUI_DIR"])
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    for folder in ("diffusion_models", "text_encoders", "vae", "checkpoints", "paco_configs"):
        (models / folder).symlink_to(tiny_models["comfyui"] / "models" / folder, target_is_directory=True)
    workdir = tmp_path / "comfy"
    for name in ("output", "temp", "input", "user"):
        (workdir / name).mkdir(parents=True)
    home = workdir / "user" / "paco"
    env = {
        **os.environ, "PYTHONPATH": str(FIXTURES / "jobs"), "PACO_REWARD_FOLDERS": str(FIXTURES / "jobs"),
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    env.pop("PACO_TEST_HOLD_FILE", None)
    server = None
    with pack_linked_into(comfyui_dir):
        try:
            server, url = start_comfyui(comfyui_dir, workdir, models, env, "server.log")
            # a missing t5xxl: a node error naming the field, and no job
            bad = files_train_graph(node_classes, text_encoder_2="(none)")
            entry, _ = wait_for_prompt(url, queue_prompt(url, bad), 60)
            assert entry["status"]["status_str"] == "error"
            error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
            assert error["exception_message"].startswith(
                "text_encoder_2: a flux pipeline also needs t5xxl"
            ), "".join(error["traceback"])
            assert http_json(f"{url}/paco/jobs")["jobs"] == []
            # the files the artist has: the job trains on them and exports its LoRA
            entry, _ = wait_for_prompt(url, queue_prompt(url, files_train_graph(node_classes)), 60)
            assert entry["status"]["status_str"] == "success", entry["status"]
            (job,) = http_json(f"{url}/paco/jobs")["jobs"]
            model = JobStore(home).get(job["id"]).config["model"]
            assert model["path"] == "" and model["kind"] == "flux"
            assert model["transformer_file"] == str(
                models / "diffusion_models" / "tiny-flux-fp8_scaled.safetensors"
            )
            assert Path(model["comfyui_dir"]) == (comfyui_dir / "comfy").resolve()  # ComfyUI's tokenizers
            done = until(
                lambda: (
                    (j := http_json(f"{url}/paco/jobs/{job['id']}"))["status"] in ("completed", "failed")
                    and j
                ),
                240,
                "the job to end",
            )
            assert done["status"] == "completed", done["error"]
            lora = models / "loras" / "paco" / "filesfox" / job["id"] / "filesfox.safetensors"
            until(lora.is_file, 15, "the exported LoRA")
            assert (Path(done["last_checkpoint"]) / "lora.safetensors").read_bytes() == lora.read_bytes()
            # the same files through PaCo Pipeline Loader (ComfyUI files), with the job's LoRA
            from test_comfyui_integration import node_inputs

            files = {
                k: v
                for k, v in files_train_graph(node_classes)["1"]["inputs"].items()
                if k in ("diffusion_model", "text_encoder_1", "text_encoder_2", "vae")
            }
            graph = generation_graph(node_classes, "files", lora_from_job=job["id"])
            graph["1"] = node_inputs(node_classes, "PaCoPipelineFromFiles", config="tiny-flux", **files)
            entry, _ = wait_for_prompt(url, queue_prompt(url, graph), 180)
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert list((workdir / "output").glob("files_*.png"))
        finally:
            if server is not None and server.poll() is None:
                server.kill()
                server.wait(20)
            kill_jobs(home)
