"""Training for a character through the nodes (ComfyUI test double, real jobs on the tiny models):
PaCo Prompt Set -> PaCo Train LoRA with reference images -> a job whose reference reward is logged;
bad references and prompt descriptions fail at submit with one line and create no job."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import kill_job_processes
from pack_loader import all_node_classes, load_pack, reset_comfy_stub, run_node, widget_defaults

from paco_core.errors import ConfigError, InputError
from paco_core.jobs import runner
from paco_core.run_folder import RunFolder
from paco_core.testing.training import TINY_TRAINING

pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, tiny_models):
    base = tmp_path_factory.mktemp("comfy")
    reset_comfy_stub(base)
    (base / "models" / "diffusers").mkdir(parents=True)
    os.symlink(tiny_models["flux"], base / "models" / "diffusers" / "tiny-flux")
    (base / "models" / "text_encoders").mkdir()  # advanced_json's judge_path: inside the models folders
    os.symlink(tiny_models["judge"], base / "models" / "text_encoders" / "tiny-judge")
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", str(REPO))
    patch.setenv("OMP_NUM_THREADS", "1")
    pack = load_pack()
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    bridge = importlib.import_module(f"{pack.__name__}.nodes.jobs_bridge")
    yield {"nodes": nodes, "bridge": bridge, "judge": str(base / "models" / "text_encoders" / "tiny-judge")}
    kill_job_processes(bridge.job_store())
    patch.undo()


def _prompt_set(comfy, **changes):
    node = comfy["nodes"]["PaCoPromptSet"]
    inputs = {**widget_defaults(node), "subject": "a girl with a green scarf", "scenes": "a park\na beach\na library",
              "rows_per_scene": 1, "layout": "1x2", **changes}  # fmt: skip
    return run_node(node, **inputs)


def _train_inputs(comfy, **changes):
    node = comfy["nodes"]["PaCoTrainLora"]
    advanced = {**TINY_TRAINING, "rewards": {**TINY_TRAINING["rewards"], "judge_path": comfy["judge"]},
                "data": {"num_eval_prompts": 1}}  # fmt: skip
    return {**widget_defaults(node), "pipeline": "tiny-flux", "rewards": "", "iterations": 2, "group_size": 2,
            "train_resolution": 32, "lora_name": "girl", "advanced_json": json.dumps(advanced), **changes}  # fmt: skip


def _references() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 40, 24, 4, generator=generator)  # RGBA, not square


def test_prompt_set_and_references_make_a_self_contained_job_that_logs_the_reference_reward(comfy):
    prompt_set = _prompt_set(comfy).args[0]
    assert Path(prompt_set["train_file"]).is_file() and Path(prompt_set["eval_file"]).is_file()
    node = comfy["nodes"]["PaCoTrainLora"]
    output = run_node(
        node, **_train_inputs(comfy, references=_references(), prompt_set=prompt_set, rewards="reference=1")
    )
    store = comfy["bridge"].job_store()
    job = runner.wait(store, output.args[0], timeout=300, poll=0.2)
    assert job.status == "completed", (job.error, (Path(job.run_dir) / "train.log").read_text()[-3000:])
    rewards = job.config["rewards"]
    assert [r["name"] for r in rewards["rewards"]] == ["reference"] and len(rewards["references"]) == 2
    assert all(
        Path(p).is_file() and Path(p).parent.parent.name == "references" for p in rewards["references"]
    )
    assert job.config["data"]["eval_file"] == prompt_set["eval_file"]
    run = RunFolder(job.run_dir)
    train = [v for _, v in run.metric_series("rewards/reference/mean")]
    held_out = [v for _, v in run.metric_series("eval/rewards/reference/mean")]
    assert len(train) == 2 and all(0.0 <= v <= 1.0 for v in train + held_out) and held_out


def test_bad_references_and_descriptions_fail_at_submit_and_create_no_job(comfy):
    store = comfy["bridge"].job_store()
    before = len(store.list())
    node = comfy["nodes"]["PaCoTrainLora"]
    prompt_set = _prompt_set(comfy).args[0]
    with pytest.raises(ConfigError, match="reward reference needs reference images") as error:
        run_node(node, **_train_inputs(comfy, prompt_set=prompt_set, rewards="reference=1"))
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="IMAGE|empty|image") as error:
        run_node(node, **_train_inputs(comfy, prompt_set=prompt_set, references=torch.zeros(0, 8, 8, 3)))
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="yields no rows") as error:
        _prompt_set(comfy, poses="", expressions="calm")
    assert "\n" not in str(error.value)
    assert len(store.list()) == before
