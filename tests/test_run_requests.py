"""'Sample now' / 'save now' requests in the run folder: the trainer takes them at a step
boundary, writes a sample grid and a checkpoint, and the run ends bit-identical; per-prompt rewards."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core import run_requests
from paco_core.callbacks import Hooks
from paco_core.errors import InputError
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder


def _config(model, run):
    return tiny_config(
        model,
        run,
        num_iterations=3,
        checkpoint_every=10,
        eval_every=3,
        checkpoints_total_limit=1,
        sampling={"prompts_per_iteration": 2, "group_size": 2, "batch_size": 2},
        optim={"lr": 1e-2, "clip_range": 0.2, "kl_beta": 0.05},
        ema={"use_ema": True, "update_every": 1},
    )


def test_request_files(tmp_path):
    assert run_requests.take_requests(tmp_path) == []
    run_requests.write_request(tmp_path, "sample", instruction="make it blue")
    run_requests.write_request(tmp_path, "save")
    assert run_requests.pending_request(tmp_path, "save")["kind"] == "save"
    taken = run_requests.take_requests(tmp_path)
    assert [r["kind"] for r in taken] == ["save", "sample"] and taken[1]["instruction"] == "make it blue"
    assert (
        run_requests.take_requests(tmp_path) == []
        and run_requests.pending_request(tmp_path, "sample") is None
    )
    with pytest.raises(InputError, match="request kind 'stop'"):
        run_requests.write_request(tmp_path, "stop")
    assert run_requests.read_prompt_rewards(tmp_path) == {"train": {}, "eval": {}}


def test_sample_and_save_now_leave_the_result_unchanged(tiny_models, tmp_path):
    straight = GrpoTrainer(_config(tiny_models["flux"], tmp_path / "straight")).train()
    assert straight.state == "finished"

    run = RunFolder(tmp_path / "asked")

    def on_progress(done: int, total: int) -> None:
        if done == 1:  # during step 2: served at the boundary before step 3
            run_requests.write_request(run.path, "sample")
            run_requests.write_request(run.path, "save")

    result = GrpoTrainer(_config(tiny_models["flux"], run.path), hooks=Hooks(progress=on_progress)).train()
    assert result.state == "finished" and result.step == 3
    done_sample = run_requests.read_done(run.path, "sample")
    done_save = run_requests.read_done(run.path, "save")
    assert done_save["step"] == done_sample["step"] and done_save["step"] in (1, 2)
    step = done_save["step"]
    assert run.checkpoint(step) is not None, "save now wrote no checkpoint, or pruning deleted it"
    assert (run.checkpoint_path(step) / "kept.json").is_file() and run.checkpoint(3) is not None
    run.checkpoint(step).verify()
    assert (tmp_path / "straight" / f"checkpoint-{step}").exists() is False
    assert run_requests.requested_samples(run.path)[0][0] == step
    assert Image.open(run_requests.requested_sample_path(run.path, step)).size[0] > 0
    assert run_requests.pending_request(run.path, "sample") is None

    for name in ("lora.safetensors", "policy.safetensors", "ema.safetensors", "optimizer.safetensors"):
        a = load_file(tmp_path / "straight" / "checkpoint-3" / name)
        b = load_file(run.path / "checkpoint-3" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"a request changed {name}"

    prompts = run_requests.read_prompt_rewards(run.path)
    assert prompts["train"] and prompts["eval"]
    entry = next(iter(prompts["train"].values()))
    assert entry["step"] >= 1 and entry["prompt"]
    reward = next(iter(entry["rewards"].values()))
    assert reward["n"] == 2 and reward["std"] >= 0
    assert all(e["step"] == 3 for e in prompts["eval"].values())


def test_sample_now_with_a_typed_prompt(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "typed")
    rows = [{"prompt": "a red fox, watercolor", "layout": "1x2"}]

    def on_progress(done: int, total: int) -> None:
        if done == 1:
            run_requests.write_request(run.path, "sample", rows=rows)

    GrpoTrainer(_config(tiny_models["flux"], run.path), hooks=Hooks(progress=on_progress)).train()
    done = run_requests.read_done(run.path, "sample")
    assert done["prompts"] == ["a red fox, watercolor"] and "error" not in done
