"""The training nodes, the /paco/jobs routes and the jobs watcher, through the ComfyUI test double,
with real jobs: real SQLite, real detached `paco train` processes on the tiny FLUX model.

One job trains to completion for the module (2 steps, an evaluation and a checkpoint at each);
the node, route and export tests read it. Other tests start their own short or held jobs.
"""

from __future__ import annotations

import asyncio
import importlib
import io as bytes_io
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import kill_job_processes
from pack_loader import (
    NodeInputError,
    all_node_classes,
    load_pack,
    reset_comfy_stub,
    run_node,
    widget_defaults,
)
from PIL import Image

from paco_core.errors import InputError
from paco_core.jobs import runner
from paco_core.run_folder import RunFolder
from paco_core.testing.training import TINY_TRAINING

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
"""advanced_json for a job that trains in seconds on the tiny model (the preset's sizes are the paper's)."""
COMFY_FILE_FOLDERS = ("diffusion_models", "text_encoders", "vae", "checkpoints", "paco_configs")
TINY_FLUX_FILES = {
    "pipeline": "(ComfyUI files)", "diffusion_model": "tiny-flux-fp8_scaled.safetensors",
    "text_encoder_1": "tiny-flux-clip_l.safetensors", "text_encoder_2": "tiny-flux-t5xxl.safetensors",
    "vae": "tiny-flux-ae.safetensors", "files_config": "tiny-flux",
}  # fmt: skip
"""PaCo Train LoRA's inputs for the tiny FLUX as ComfyUI's split files (scaled fp8 transformer)."""
SETS_TEXT = (
    "[1x2] a red fox in the snow\nThe fox sits.\nThe fox runs.\n\na paper boat\nIt floats.\nIt sinks.\n"
)


def train_inputs(node, **changes) -> dict:
    inputs = {
        **widget_defaults(node), "pipeline": "tiny-flux", "training_prompts": SETS_TEXT,
        "rewards": "job_rewards:held_brightness=1", "iterations": 2, "group_size": 2, "train_resolution": 32,
        "lora_name": "fox", "advanced_json": json.dumps(TINY_TRAINING),
    }  # fmt: skip
    inputs.update(changes)
    return inputs


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, tiny_models):
    """ComfyUI folders with the tiny FLUX in models/diffusers and the tiny models' ComfyUI layout
    (diffusion_models, text_encoders, vae, checkpoints, paco_configs); the test rewards' folder is
    a reward folder (PACO_REWARD_FOLDERS)."""
    base = tmp_path_factory.mktemp("comfy")
    reset_comfy_stub(base)
    (base / "models" / "diffusers").mkdir(parents=True)
    os.symlink(tiny_models["flux"], base / "models" / "diffusers" / "tiny-flux")
    for folder in COMFY_FILE_FOLDERS:
        if folder != "text_encoders":
            os.symlink(tiny_models["comfyui"] / "models" / folder, base / "models" / folder)
    encoders = base / "models" / "text_encoders"
    encoders.mkdir()
    for file in (tiny_models["comfyui"] / "models" / "text_encoders").iterdir():
        os.symlink(file, encoders / file.name)
    # what an artist's folder may hold too: a VAE saved among the text encoders, a cut-off download
    os.symlink(
        tiny_models["comfyui"] / "models" / "vae" / "tiny-flux-ae.safetensors",
        encoders / "ae-here.safetensors",
    )
    whole = (encoders / "tiny-flux-t5xxl.safetensors").read_bytes()
    (encoders / "t5xxl-truncated.safetensors").write_bytes(whole[: len(whole) // 2])
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES / "jobs"), str(REPO)]))
    patch.setenv("PACO_REWARD_FOLDERS", str(FIXTURES / "jobs"))
    patch.setenv("OMP_NUM_THREADS", "1")
    patch.delenv("PACO_TEST_HOLD_FILE", raising=False)
    pack = load_pack()
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    bridge = importlib.import_module(f"{pack.__name__}.nodes.jobs_bridge")
    import server

    yield {
        "base": base,
        "nodes": nodes,
        "bridge": bridge,
        "server": server.PromptServer.instance,
        "pack": pack,
        "patch": patch,
    }
    kill_job_processes(bridge.job_store())
    patch.undo()


@pytest.fixture(scope="module")
def finished(comfy):
    """The module's job, trained to completion through PaCo Train LoRA."""
    node = comfy["nodes"]["PaCoTrainLora"]
    started = time.monotonic()
    output = run_node(node, **train_inputs(node))
    comfy["submit_s"] = time.monotonic() - started
    job = runner.wait(comfy["bridge"].job_store(), output.args[0], timeout=300, poll=0.2)
    assert job.status == "completed", (job.error, (Path(job.run_dir) / "train.log").read_text()[-3000:])
    return job


# --------------------------------------------------------------------------- PaCo Train LoRA


def test_train_lora_returns_at_once_and_the_same_graph_returns_the_same_job(comfy, finished):
    node = comfy["nodes"]["PaCoTrainLora"]
    assert comfy["submit_s"] < 1.5, comfy["submit_s"]  # the trainer runs elsewhere; this only queues it
    store = comfy["bridge"].job_store()
    config = finished.config
    assert config["model"]["path"].endswith("tiny-flux") and config["model"]["kind"] == "flux"
    assert config["model"]["device"] == "cpu" and config["num_iterations"] == 2
    assert config["sampling"]["group_size"] == 2 and config["sampling"]["train_resolution"] == 32
    assert config["rewards"]["rewards"] == [{"name": "job_rewards:held_brightness", "weight": 1.0}]
    rows = [json.loads(line) for line in Path(config["data"]["train_file"]).read_text().splitlines()]
    assert [row["layout"] for row in rows] == ["1x2", "1x2"]
    assert rows[0]["prompt"].startswith("TWO-PANEL Images with a 1x2 grid layout a red fox in the snow")
    assert "[LEFT]:The fox sits. [RIGHT]:The fox runs." in rows[0]["prompt"]

    again = run_node(node, **train_inputs(node))
    assert again.args[0] == finished.id and len(store.list()) == 1
    assert "already exists" in comfy["server"].stub_progress_texts()[-1][1]
    assert node.fingerprint_inputs() != node.fingerprint_inputs()  # it always runs (the job may be gone)


def test_new_run_queues_another_job(comfy, finished):
    node = comfy["nodes"]["PaCoTrainLora"]
    store = comfy["bridge"].job_store()
    # another device is not free: the new job only waits in the queue (no trainer started here)
    blocker = store.create(name="blocker", config={}, run_dir=comfy["base"] / "blocker", device="cpu")
    store.update(blocker.id, status="running", started_at=time.time())
    try:
        output = run_node(node, **train_inputs(node, new_run=True))
        assert output.args[0] != finished.id
        assert store.get(output.args[0]).status == "queued"
        assert "submitted" in comfy["server"].stub_progress_texts()[-1][1]
    finally:
        runner.cancel(store, output.args[0])
        runner.delete(store, output.args[0])
        store.delete(blocker.id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training_prompts": ""}, "training_prompts is empty"),
        ({"training_prompts": "a theme without panels"}, "block 1 .* has a theme but no panel lines"),
        ({"training_prompts": "[2x2] a fox\none\ntwo"}, "layout 2x2 has 4 panels, got 2"),
        ({"advanced_json": "{not json"}, "advanced_json is not valid JSON"),
        ({"advanced_json": "[1, 2]"}, "advanced_json should be a JSON object"),
        ({"advanced_json": json.dumps({**TINY_TRAINING, "optim": {"lr": -1.0}})}, "optim.lr"),
        ({"rewards": "consistency=lots"}, "rewards: the weight of 'consistency'"),
        ({"rewards": "consistency=1"}, "connect a PaCo Judge Loader to the judge input"),
        ({"preset": "edit-kontext"}, "trains a flux-kontext model, but the pipeline"),
        ({"lora_name": "  "}, "lora_name is empty"),
        ({"pipeline": "(model_path)"}, "type one"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_field_and_creates_no_job(comfy, changes, message):
    node = comfy["nodes"]["PaCoTrainLora"]
    store = comfy["bridge"].job_store()
    before = store.ids()
    with pytest.raises(InputError, match=message):
        run_node(node, hidden={"unique_id": "9"}, **train_inputs(node, new_run=True, **changes))
    assert store.ids() == before
    node_id, shown = comfy["server"].stub_progress_texts()[-1]  # the error stays on the node
    assert node_id == "9" and shown.startswith("\u26a0 ") and re.search(message, shown)


def test_the_pipeline_dropdown_offers_comfyuis_files_after_the_existing_widgets(comfy):
    node = comfy["nodes"]["PaCoTrainLora"]
    inputs = {item.id: item for item in node.GET_SCHEMA().inputs}
    assert inputs["pipeline"].options == ["tiny-flux", "(ComfyUI files)", "(model_path)"]
    assert inputs["pipeline"].default == "tiny-flux"
    # the same dropdowns as PaCo Pipeline Loader (ComfyUI files), listing ComfyUI's own folders
    assert "tiny-flux-fp8_scaled.safetensors" in inputs["diffusion_model"].options
    assert inputs["text_encoder_1"].options == inputs["text_encoder_2"].options
    assert "tiny-flux-t5xxl.safetensors" in inputs["text_encoder_2"].options
    assert "tiny-flux-ae.safetensors" in inputs["vae"].options
    assert "tiny-flux-aio.safetensors" in inputs["checkpoint"].options
    assert "tiny-flux" in inputs["files_config"].options
    assert inputs["files_kind"].options == ["auto", "flux", "flux-kontext", "qwen-image-edit", "z-image"]
    # optional and after every existing input: saved workflows keep their widget positions
    names = list(inputs)
    new = [
        "files_kind",
        "diffusion_model",
        "text_encoder_1",
        "text_encoder_2",
        "vae",
        "checkpoint",
        "files_config",
    ]
    # saved workflows keep their widget values' positions: sockets (judge, references, prompt_set) hold
    # none, and every widget added later comes after the older ones
    sockets = {"judge", "references", "prompt_set"}
    widgets = [name for name in names if name not in sockets]
    assert widgets[-len(new) - 1 : -1] == new and all(inputs[name].optional for name in new)
    assert widgets[-1] == "dry_run" and inputs["dry_run"].optional
    assert widgets[: -len(new) - 1] == [
        "pipeline",
        "model_path",
        "preset",
        "training_prompts",
        "prompts_file",
        "rewards",
        "iterations",
        "learning_rate",
        "group_size",
        "train_resolution",
        "lora_name",
        "advanced_json",
        "new_run",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"diffusion_model": "(checkpoint's)"},
            "diffusion_model: pipeline is .* no diffusion model or checkpoint",
        ),
        (
            {"text_encoder_2": "ae-here.safetensors"},
            "text_encoder_2: text encoder file ae-here.safetensors is "
            "not CLIP-L, T5-XXL, Qwen2.5-VL( or [^:]+)?: it looks like the ae VAE",
        ),
        (
            {"text_encoder_2": "t5xxl-truncated.safetensors"},
            "text_encoder_2: .*t5xxl-truncated.safetensors .*truncated",
        ),
        ({"text_encoder_2": "(none)"}, "text_encoder_2: a flux pipeline also needs t5xxl"),
        ({"vae": "(checkpoint's)"}, "^vae: a flux pipeline also needs ae"),
        ({"vae": "tiny-qwen-image-edit-qwen_image_vae.safetensors"}, "vae: .* belong to another model"),
        (
            {
                "diffusion_model": "tiny-flux-kontext.safetensors",
                "files_kind": "flux-kontext",
                "text_encoder_1": "tiny-qwen-image-edit-qwen_2.5_vl.safetensors",
                "preset": "edit-kontext",
            },
            "text_encoder_1: tiny-qwen-image-edit-qwen_2.5_vl.safetensors .* belong to another model: "
            "a flux-kontext pipeline needs",
        ),
        (
            {"files_kind": "qwen-image-edit"},
            "diffusion_model, files_kind: transformer .* needs a qwen-image one",
        ),
        (
            {"preset": "edit-kontext"},
            "files_kind: preset 'edit-kontext' trains a flux-kontext model, but the "
            "ComfyUI files make a flux pipeline",
        ),
        ({"files_config": "tiny-qwen-image-edit"}, "files_config: config folder .* is for qwen-image-edit"),
        ({"model_path": "tiny-flux"}, "model_path: 'tiny-flux' is typed, but pipeline is"),
        (
            {"pipeline": "tiny-flux"},
            "diffusion_model: 'tiny-flux-fp8_scaled.safetensors' is chosen, but the "
            "pipeline is a diffusers folder",
        ),
    ],
)
def test_a_wrong_comfyui_files_combination_is_an_error_naming_the_field_and_creates_no_job(
    comfy, changes, message
):
    node = comfy["nodes"]["PaCoTrainLora"]
    store = comfy["bridge"].job_store()
    before = store.ids()
    with pytest.raises(InputError, match=message):
        run_node(node, **train_inputs(node, new_run=True, **{**TINY_FLUX_FILES, **changes}))
    assert store.ids() == before


def test_a_file_name_outside_comfyuis_model_folders_is_refused(comfy, tmp_path):
    # past the dropdown (an API prompt): the names are resolved as the ComfyUI-files loader does
    training = importlib.import_module(f"{comfy['pack'].__name__}.nodes.training")
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"")
    for name in ("../../secret.safetensors", str(outside)):
        with pytest.raises(InputError, match=r"^diffusion_model .* node inputs resolve only inside"):
            training.comfy_files_model(
                preset="t2is-flux",
                preset_kind="flux",
                **{**training.default_comfy_files(), "diffusion_model": name},
            )


def test_kind_and_config_of_the_files_are_ignored_with_a_warning_for_a_diffusers_folder(comfy, caplog):
    training = importlib.import_module(f"{comfy['pack'].__name__}.nodes.training")
    files = {**training.default_comfy_files(), "files_kind": "flux-kontext"}
    with caplog.at_level("WARNING"):
        model = training.base_model(
            pipeline="tiny-flux", model_path="", preset="t2is-flux", preset_kind="flux", comfy_files=files
        )
    assert model["kind"] == "flux" and model["path"].endswith("tiny-flux")
    assert "files_kind='flux-kontext' only apply to pipeline (ComfyUI files)" in caplog.text


def test_edit_blocks_name_input_images_and_a_jsonl_file_can_be_chosen(comfy):
    from paco_core.jobs.training_prompts import edit_rows_from_text

    input_dir = comfy["base"] / "input"
    input_dir.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "rl" / "images" / "cube.png", input_dir / "cube.png")
    rows = edit_rows_from_text("cube.png\nmake it blue\nmake it red\n", input_dir)
    assert rows == [
        {"image": "cube.png", "instruction": "make it blue"},
        {"image": "cube.png", "instruction": "make it red"},
    ]
    with pytest.raises(InputError, match="outside the input folder"):
        edit_rows_from_text("../secret.png\nmake it blue", input_dir)
    with pytest.raises(InputError, match="not in the input folder"):
        edit_rows_from_text("missing.png\nmake it blue", input_dir)

    (input_dir / "sets").mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "rl" / "sets.jsonl", input_dir / "sets" / "mine.jsonl")
    training = importlib.import_module(f"{comfy['pack'].__name__}.nodes.training")
    assert "sets/mine.jsonl" in training.prompt_file_choices()
    node = comfy["nodes"]["PaCoTrainLora"]
    schema_files = next(i for i in node.GET_SCHEMA().inputs if i.id == "prompts_file").options
    assert "sets/mine.jsonl" in schema_files


def test_the_judge_input_passes_its_source_never_the_object(comfy):
    training = importlib.import_module(f"{comfy['pack'].__name__}.nodes.training")
    from paco_core.reward.judge_client import JudgeClient

    client = JudgeClient("http://127.0.0.1:9", "paco-reward")
    assert training.judge_settings(client) == {
        "judge_url": "http://127.0.0.1:9",
        "judge_path": "",
        "judge_server_model": "paco-reward",
    }

    class Local:  # what open_judge returns for a local folder records where it came from
        source, lora = "/models/PaCo-Reward-7B", None

    assert training.judge_settings(Local()) == {"judge_path": "/models/PaCo-Reward-7B", "judge_url": ""}
    Local.lora = "/models/adapter"
    with pytest.raises(InputError, match="base model plus a LoRA"):
        training.judge_settings(Local())


def test_open_judge_records_a_local_judge_source(tiny_models):
    from paco_core.reward import open_judge

    judge = open_judge(str(tiny_models["judge"]), device="cpu", dtype="fp32")
    assert judge.source == str(tiny_models["judge"]) and judge.lora is None


# --------------------------------------------------------------------------- PaCo Training Job


def test_training_job_shows_status_sample_curves_and_the_exported_lora(comfy, finished):
    node = comfy["nodes"]["PaCoTrainingJob"]
    loras = comfy["base"] / "models" / "loras" / "paco" / "fox" / finished.id  # one folder per job
    output = run_node(node, **{**widget_defaults(node), "job": finished.id})
    status, sample, curve, lora_name = output.args
    assert status.startswith(f"{finished.id} · fox: completed, step 2/2")
    assert "eval job_rewards:held_brightness = " in status and "train job_rewards:held_brightness" in status
    assert f"paco/fox/{finished.id}/fox.safetensors" in status
    assert tuple(sample.shape) == (1, 32, 32, 3)  # the evaluation grid: one 32x32 panel per eval prompt
    expected = Image.open(RunFolder(finished.run_dir).latest_sample()).convert("RGB")
    assert abs(float(sample[0, 5, 5, 0]) * 255 - expected.getpixel((5, 5))[0]) <= 1
    assert tuple(curve.shape) == (1, 432, 768, 3) and float(curve.std()) > 0.05
    # the node shows the status, the sample and the curves (saved in ComfyUI's temp folder)
    shown = output.ui
    assert shown["text"] == (status,) and [i["type"] for i in shown["images"]] == ["temp", "temp"]
    temp = comfy["base"] / "temp"
    assert Image.open(temp / shown["images"][0]["filename"]).size == (32, 32)
    assert Image.open(temp / shown["images"][1]["filename"]).size == (768, 432)
    # best: the trainer's best LoRA by the held-out evaluation (progress.json's best_lora)
    assert lora_name == f"paco/fox/{finished.id}/fox-best.safetensors"
    best = Path(RunFolder(finished.run_dir).read_progress()["best_lora"])
    assert (loras / "fox-best.safetensors").read_bytes() == best.read_bytes()
    latest = run_node(node, **{**widget_defaults(node), "job": finished.id, "lora": "latest checkpoint"})
    assert latest.args[3] == f"paco/fox/{finished.id}/fox.safetensors"
    assert sorted(p.name for p in loras.iterdir()) == [
        "fox-best.safetensors",
        "fox-step1.safetensors",
        "fox-step2.safetensors",
        "fox.safetensors",
    ]
    checkpoint = RunFolder(finished.run_dir).latest_checkpoint()
    assert (loras / "fox.safetensors").read_bytes() == checkpoint.lora_path.read_bytes()
    # ComfyUI's LoRA list (PaCo LoRA, LoraLoader) shows them after a refresh
    import folder_paths

    assert f"paco/fox/{finished.id}/fox-step1.safetensors" in folder_paths.get_filename_list("loras")
    lora_input = [i for i in comfy["nodes"]["PaCoLora"].GET_SCHEMA().inputs if i.id == "lora_name"][0]
    assert f"paco/fox/{finished.id}/fox.safetensors" in lora_input.options  # where lora_name is wired


def test_training_job_picks_from_the_dropdown_and_refreshes_when_the_job_changes(comfy, finished):
    node = comfy["nodes"]["PaCoTrainingJob"]
    pick = next(i for i in node.GET_SCHEMA().inputs if i.id == "pick")
    assert pick.options[0] == "(latest job)" and f"{finished.id} · fox" in pick.options
    output = run_node(node, **{**widget_defaults(node), "pick": f"{finished.id} · fox"})
    assert output.args[0].startswith(finished.id)
    store = comfy["bridge"].job_store()
    before = node.fingerprint_inputs(pick="(latest job)", lora="best", job=finished.id)
    assert node.fingerprint_inputs(pick="(latest job)", lora="best", job=finished.id) == before
    store.update(finished.id, step=2)  # a new updated_at: ComfyUI must run the node again
    assert node.fingerprint_inputs(pick="(latest job)", lora="best", job=finished.id) != before
    with pytest.raises(InputError, match="no job 'job-00000000'"):
        run_node(node, **{**widget_defaults(node), "job": "job-00000000"})


def test_training_job_without_a_checkpoint_shows_its_status_and_blocks_the_lora_users(comfy):
    node = comfy["nodes"]["PaCoTrainingJob"]
    store = comfy["bridge"].job_store()
    job = store.create(name="empty", config={}, run_dir=comfy["base"] / "empty-run", device="cpu:9")
    try:
        runner.cancel(store, job.id)
        output = run_node(node, **{**widget_defaults(node), "job": job.id})
        # the status shows; the nodes that need the LoRA are skipped (ComfyUI's ExecutionBlocker)
        from comfy_execution.graph_utils import ExecutionBlocker

        assert f"job {job.id} has no checkpoint yet (stopped, step 0/0)" in output.args[0]
        assert isinstance(output.args[3], ExecutionBlocker) and output.args[3].message is None
        assert tuple(output.args[1].shape) == (1, 64, 64, 3)
        # ... and the node itself says why they were skipped, where the artist looks
        shown = comfy["server"].stub_progress_texts()[-1][1]
        assert shown.startswith("no LoRA yet (step 0/0): LoRA nodes skipped") and len(shown) <= 64
    finally:
        store.delete(job.id)


def test_node_inputs_are_checked_like_comfyui(comfy):
    node = comfy["nodes"]["PaCoTrainLora"]
    with pytest.raises(NodeInputError, match="group_size: 1 is below the minimum 2"):
        run_node(node, **train_inputs(node, group_size=1))


# --------------------------------------------------------------------------- routes


def call_routes(server, requests):
    """Run (method, path, kwargs) requests against the stand-in server; [(status, body)]."""

    async def go():
        answers = []
        async with TestServer(server.stub_app(), host="127.0.0.1") as test_server:
            async with TestClient(test_server) as client:
                for method, path, kwargs in requests:
                    response = await client.request(method, path, **kwargs)
                    if response.content_type == "application/json":
                        answers.append((response.status, await response.json()))
                    else:
                        answers.append((response.status, await response.read()))
        return answers

    return asyncio.run(go())


def test_routes_list_show_metrics_sample_and_log(comfy, finished):
    job_id = finished.id
    answers = call_routes(
        comfy["server"],
        [
            ("GET", "/paco/jobs", {}),
            ("GET", f"/api/paco/jobs/{job_id}", {}),
            ("GET", f"/paco/jobs/{job_id}/metrics", {}),
            ("GET", f"/paco/jobs/{job_id}/sample", {}),
            ("GET", f"/paco/jobs/{job_id}/sample?step=1", {}),
            ("GET", f"/paco/jobs/{job_id}/log?lines=3", {}),
            ("POST", f"/paco/jobs/{job_id}/export", {}),
        ],
    )
    (
        (s_list, listed),
        (s_one, one),
        (s_metrics, metrics),
        (s_sample, png),
        (s_step, png1),
        (s_log, log),
        (s_export, exported),
    ) = answers
    assert s_list == 200 and [j["id"] for j in listed["jobs"]] == [job_id]
    assert listed["jobs"][0] == {**finished.to_record(), "update_time": listed["jobs"][0]["update_time"]}
    assert s_one == 200 and one["status"] == "completed" and one["progress"]["state"] == "finished"
    assert one["warnings"] == [] and one["eta_s"] is None
    assert one["lora_files"] == [
        f"paco/fox/{job_id}/{name}"
        for name in (
            "fox-best.safetensors",
            "fox-step1.safetensors",
            "fox-step2.safetensors",
            "fox.safetensors",
        )
    ]
    folder = RunFolder(finished.run_dir)
    name = "rewards/job_rewards:held_brightness/mean"
    assert s_metrics == 200 and metrics["series"][name] == [[s, v] for s, v in folder.metric_series(name)]
    assert [step for step, _ in metrics["series"]["eval/rewards/job_rewards:held_brightness/mean"]] == [
        0,
        1,
        2,
    ]
    assert s_sample == 200 and png == folder.latest_sample().read_bytes()
    assert Image.open(bytes_io.BytesIO(png)).size == (32, 32)
    assert s_step == 200 and png1 == folder.sample_path(1).read_bytes()
    lines = (Path(finished.run_dir) / "train.log").read_text().splitlines()
    assert s_log == 200 and log == {"lines": lines[-3:]}
    assert s_export == 200 and exported["id"] == job_id and len(exported["lora_files"]) == 4


def test_routes_refuse_unknown_ids_bad_values_and_paths_out_of_the_run_folder(comfy, finished):
    job_id = finished.id
    answers = call_routes(
        comfy["server"],
        [
            ("GET", "/paco/jobs/job-00000000", {}),
            ("GET", "/paco/jobs/..%2F..%2Fjobs.sqlite3/log", {}),
            ("GET", "/paco/jobs/%2Fetc%2Fpasswd/sample", {}),
            ("GET", f"/paco/jobs/{job_id}/sample?step=../../etc/passwd", {}),
            ("GET", f"/paco/jobs/{job_id}/sample?step=999", {}),
            ("GET", f"/paco/jobs/{job_id}/log?lines=0", {}),
            ("GET", f"/paco/jobs/{job_id}/log?lines=ten", {}),
            ("POST", f"/paco/jobs/{job_id}/cancel", {}),
            ("POST", f"/paco/jobs/{job_id}/resume", {}),
            ("POST", f"/paco/jobs/{job_id}/resume", {"data": "not json"}),
            ("POST", "/paco/jobs/job-00000000/cancel", {}),
            ("DELETE", "/paco/jobs/job-00000000", {}),
        ],
    )
    statuses = [status for status, _ in answers]
    assert statuses == [404, 404, 404, 400, 404, 400, 400, 409, 409, 400, 404, 404]
    assert all(isinstance(body, dict) and set(body) == {"error"} for _, body in answers)
    assert answers[0][1]["error"].startswith("no job 'job-00000000'")
    assert "has already ended (completed)" in answers[7][1]["error"]
    assert "only stopped, failed, interrupted jobs can be resumed" in answers[8][1]["error"]


def test_routes_on_a_job_whose_run_folder_was_deleted_and_delete(comfy, tmp_path):
    store = comfy["bridge"].job_store()
    run_dir = tmp_path / "gone"
    run_dir.mkdir()
    job = store.create(name="gone", config={}, run_dir=run_dir, device="cpu:9")
    runner.cancel(store, job.id)
    shutil.rmtree(run_dir)
    answers = call_routes(
        comfy["server"],
        [
            ("GET", f"/paco/jobs/{job.id}", {}),
            ("GET", f"/paco/jobs/{job.id}/metrics", {}),
            ("GET", f"/paco/jobs/{job.id}/sample", {}),
            ("GET", f"/paco/jobs/{job.id}/log", {}),
            ("DELETE", f"/paco/jobs/{job.id}?files=1", {}),
            ("GET", f"/paco/jobs/{job.id}", {}),
        ],
    )
    (s_one, one), (s_m, metrics), (s_sample, sample), (s_log, log), (s_delete, deleted), (s_after, _) = (
        answers
    )
    assert s_one == 200 and one["status"] == "stopped" and one["progress"] == {}
    assert [w["code"] for w in one["warnings"]] == ["run_folder_missing"]
    assert (s_m, metrics) == (200, {"series": {}})
    assert s_sample == 404 and "no sample yet" in sample["error"]
    assert (s_log, log) == (200, {"lines": []})
    assert s_delete == 200 and deleted["id"] == job.id
    assert s_after == 404


# --------------------------------------------------------------------------- watcher, events, GPU yield, cancel


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_watcher_sends_events_exports_checkpoints_and_routes_cancel_a_running_job(comfy, finished, tmp_path):
    watch = importlib.import_module(f"{comfy['pack'].__name__}.nodes.jobs_watch")
    server = comfy["server"]
    server.stub_reset()
    hold = tmp_path / "hold"
    hold.touch()
    comfy["patch"].setenv("PACO_TEST_HOLD_FILE", str(hold))
    node = comfy["nodes"]["PaCoTrainLora"]
    job_id = run_node(node, **train_inputs(node, iterations=50, lora_name="held", new_run=True)).args[0]
    comfy["patch"].delenv("PACO_TEST_HOLD_FILE")
    store = comfy["bridge"].job_store()
    watcher = watch.JobsWatcher(server, interval=0.2)
    watcher.start()
    try:
        wait_for(
            lambda: any(
                e.event == "paco.job" and e.data["id"] == job_id and e.data["status"] == "running"
                for e in server.stub_events
            ),
            30,
            "a running event",
        )
        event = next(e.data for e in server.stub_events if e.event == "paco.job" and e.data["id"] == job_id)
        assert {"eta_s", "metrics", "progress", "step", "total", "lora"} <= set(event)
        # the trainer evaluates step 0, then is held inside step 1; cancel through the route, then let it go
        folder = RunFolder(store.get(job_id).run_dir)
        wait_for(lambda: folder.read_metrics(), 120, "the evaluation of step 0")
        ((status, record),) = call_routes(server, [("POST", f"/paco/jobs/{job_id}/cancel", {})])
        assert status == 200 and record["status"] == "stopping"
        hold.unlink()
        wait_for(lambda: store.get(job_id).status == "stopped", 60, "the job to stop")
        wait_for(
            lambda: any(
                e.event == "paco.job" and e.data["id"] == job_id and e.data["status"] == "stopped"
                for e in server.stub_events
            ),
            10,
            "a stopped event",
        )
        # the checkpoint saved on stop is exported by the watcher
        exported = comfy["base"] / "models" / "loras" / "paco" / "held" / job_id / "held-step1.safetensors"
        wait_for(exported.is_file, 10, "the exported LoRA")
        ((status, deleted),) = call_routes(server, [("DELETE", f"/paco/jobs/{job_id}?files=1", {})])
        assert status == 200 and not Path(deleted["run_dir"]).exists()
        wait_for(
            lambda: any(
                e.event == "paco.job" and e.data == {"id": job_id, "status": "deleted"}
                for e in server.stub_events
            ),
            10,
            "a deleted event",
        )
    finally:
        watcher.stop()
        kill_job_processes(store)


def test_a_yield_job_pauses_within_one_step_while_comfyui_runs_a_prompt(comfy, finished):
    watch = importlib.import_module(f"{comfy['pack'].__name__}.nodes.jobs_watch")
    server = comfy["server"]
    server.stub_reset()
    node = comfy["nodes"]["PaCoTrainLora"]
    tiny = {**TINY_TRAINING, "eval_every": 0, "checkpoint_every": 1000}
    job_id = run_node(
        node,
        **train_inputs(
            node, iterations=400, lora_name="yielding", new_run=True, advanced_json=json.dumps(tiny)
        ),
    ).args[0]
    store = comfy["bridge"].job_store()
    job = store.get(job_id)
    assert job.config["gpu_policy"] == "yield"  # the job shares ComfyUI's device (the CPU here)
    folder = RunFolder(job.run_dir)
    watcher = watch.JobsWatcher(server, interval=0.1)
    watcher.start()
    try:
        wait_for(lambda: folder.read_progress().get("step", 0) >= 2, 120, "two steps")
        step_s = max(v for _, v in folder.metric_series("time/step_s"))
        server.prompt_queue.put((0, "prompt-1", {}, {}, [], {}))  # ComfyUI starts a prompt
        asked = time.monotonic()
        request = wait_for(lambda: folder.pause_requests(), 10, "ComfyUI's pause request")
        assert (
            request[0]["holder"] == f"comfyui-{os.getpid()}" and request[0]["pid"] == os.getpid()
        )  # lapses with it
        wait_for(lambda: folder.read_progress().get("state") == "paused", 60, "the pause")
        latency = time.monotonic() - asked
        progress = folder.read_progress()
        paused_at, trainer_latency = progress["step"], progress["pause_latency_s"]  # request file -> paused
        time.sleep(3 * step_s + 0.5)
        assert folder.read_progress()["step"] == paused_at  # no step while ComfyUI works
        item, item_id = server.prompt_queue.get()
        server.prompt_queue.task_done(item_id, {}, None)  # the queue is idle again
        wait_for(lambda: folder.read_progress().get("step", 0) > paused_at + 1, 60, "training to go on")
        step_s = max(v for _, v in folder.metric_series("time/step_s"))  # the slowest step of the run
        print(
            f"pause latency: queue -> paused {latency:.2f} s, request -> paused {trainer_latency:.2f} s; "
            f"step {step_s:.2f} s, watcher interval 0.1 s"
        )
        assert trainer_latency <= step_s * 1.5 + 0.2, (trainer_latency, step_s)  # at most one step
        assert latency <= step_s * 1.5 + 0.1 + 1.0, (latency, step_s)  # + the watcher's poll
        assert [what for _, jid, what in watcher.pause_log if jid == job_id] == ["pause", "release"]
    finally:
        watcher.stop()
        runner.cancel(store, job_id)
        kill_job_processes(store)


# --------------------------------------------------------------------------- ComfyUI's own files


def test_a_job_on_comfyuis_files_trains_to_completion_and_exports_its_lora(comfy):
    node = comfy["nodes"]["PaCoTrainLora"]
    store = comfy["bridge"].job_store()
    models = comfy["base"] / "models"
    output = run_node(node, **train_inputs(node, lora_name="fox-files", new_run=True, **TINY_FLUX_FILES))
    job = store.get(output.args[0])
    import comfy as comfy_package

    assert job.config["model"] == {
        **job.config["model"],
        "path": "",
        "kind": "flux",
        "device": "cpu",
        "transformer_file": str(models / "diffusion_models" / "tiny-flux-fp8_scaled.safetensors"),
        "text_encoder_files": [
            str(models / "text_encoders" / "tiny-flux-clip_l.safetensors"),
            str(models / "text_encoders" / "tiny-flux-t5xxl.safetensors"),
        ],
        "vae_file": str(models / "vae" / "tiny-flux-ae.safetensors"),
        "checkpoint_file": "",
        "config_folder": str(models / "paco_configs" / "tiny-flux"),
        "comfyui_dir": os.path.dirname(os.path.abspath(comfy_package.__file__)),
    }
    try:
        job = runner.wait(store, job.id, timeout=300, poll=0.2)
        assert job.status == "completed", (job.error, (Path(job.run_dir) / "train.log").read_text()[-3000:])
        watch = comfy["nodes"]["PaCoTrainingJob"]
        status, _, _, lora_name = run_node(watch, **{**widget_defaults(watch), "job": job.id}).args
        assert status.startswith(f"{job.id} · fox-files: completed, step 2/2")
        assert lora_name == f"paco/fox-files/{job.id}/fox-files-best.safetensors"
        exported = models / "loras" / "paco" / "fox-files" / job.id
        final = RunFolder(job.run_dir).latest_checkpoint().lora_path
        assert (exported / "fox-files.safetensors").read_bytes() == final.read_bytes()
        from safetensors.torch import load_file

        lora = load_file(str(exported / "fox-files-best.safetensors"))
        assert any("single_transformer_blocks" in key for key in lora) and all(
            float(t.abs().sum()) > 0 for key, t in lora.items() if "lora_B" in key or "lora_up" in key
        )
    finally:
        kill_job_processes(store)
        runner.delete(store, job.id)
