"""PaCo-GRPO training on the tiny models: on-policy ratio, frozen base, resume, learning, edit kinds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import merge_sections
from PIL import Image
from safetensors.torch import load_file

from paco_core.config import config_from_dict
from paco_core.errors import ConfigError, RewardError, TrainingError
from paco_core.rl.config import TrainConfig
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder

FIXTURES = Path(__file__).parent / "fixtures" / "rl"
BRIGHTNESS = "toy_rewards:mean_brightness"


@pytest.fixture(autouse=True)
def toy_rewards_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def tiny_config(model_path: Path, output_dir: Path, kind: str = "flux", **sections) -> TrainConfig:
    """A seconds-long run on a tiny model: 32x32, 2 sampling steps, G=2."""
    edit = kind != "flux"
    data = {
        "model": {"kind": kind, "path": str(model_path), "device": "cpu"},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 2, "noise_steps": [0, 1], "train_resolution": 32, "eval_resolution": 32,
                     "reference_resolution": 32 if edit else 1024, "group_size": 2, "batch_size": 2,
                     "prompts_per_iteration": 1, "max_sequence_length": 16, "guidance_scale": 2.0},
        "data": {"train_file": str(FIXTURES / ("edits.jsonl" if edit else "sets.jsonl")), "num_eval_prompts": 1},
        "rewards": {"rewards": [{"name": BRIGHTNESS, "weight": 1.0}], "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "ema": {"use_ema": False},
        "num_iterations": 1, "output_dir": str(output_dir), "checkpoint_every": 1, "eval_every": 0,
    }  # fmt: skip
    return config_from_dict(TrainConfig, merge_sections(data, sections))


def test_first_step_is_on_policy_and_only_lora_weights_change(tiny_models, tmp_path):
    trainer = GrpoTrainer(tiny_config(tiny_models["flux"], tmp_path / "run"))
    trainer.check_config()
    trainer.setup()
    base_before = {
        n: p.detach().clone() for n, p in trainer.transformer.named_parameters() if "lora_" not in n
    }
    lora_before = {n: p.detach().clone() for n, p in trainer.named_trainable}
    assert lora_before and all("lora_" in name for name in lora_before)
    assert any("ff_context.net.2" in name for name in lora_before)

    rows = trainer.sampler.next_rows(1)
    rollouts = trainer.collect_rollouts(rows, step=0, sde_steps=(0, 1))
    assert rollouts[0].log_probs.shape == (2, 2) and rollouts[0].log_probs.dtype == torch.float32
    assert [image.size for image in rollouts[0].images] == [(32, 32), (32, 32)]  # the train resolution
    advantages = torch.tensor([1.0, -1.0])
    for k in range(2):
        terms = trainer.updater.micro_batch_loss(rollouts[0], k, advantages, torch.tensor([True, True]))
        assert torch.equal(terms.ratio, torch.ones(2)), "the first on-policy ratio must be exactly 1"
    trainer.optimizer.zero_grad(set_to_none=True)

    metrics = trainer.run_iteration(0)
    assert metrics["policy/ratio_first"] == 1.0
    base_after = {n: p.detach() for n, p in trainer.transformer.named_parameters() if "lora_" not in n}
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before), (
        "base weights must stay bit-identical"
    )
    changed = [n for n, p in trainer.named_trainable if not torch.equal(lora_before[n], p.detach())]
    assert any("lora_B" in n for n in changed)


def _lora_tensors(run: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run / f"checkpoint-{step}"
    return {**load_file(folder / "policy.safetensors"), **{f"ema.{k}": v for k, v in load_file(folder / "ema.safetensors").items()},
            **{f"file.{k}": v for k, v in load_file(folder / "lora.safetensors").items()}}  # fmt: skip


def test_resume_continues_exactly(tiny_models, tmp_path):
    settings = {
        "ema": {"use_ema": True, "update_every": 1},
        "optim": {"lr": 1e-2, "clip_range": 0.2, "kl_beta": 0.05, "gradient_accumulation_steps": 2},
        "sampling": {"prompts_per_iteration": 2, "group_size": 2, "batch_size": 2, "eval_resolution": 64},
        "rewards": {"eval_rewards": [{"name": "toy_rewards:red_share"}]},
        "checkpoint_every": 2, "eval_every": 2,
    }  # fmt: skip
    straight = tmp_path / "straight"
    result = GrpoTrainer(tiny_config(tiny_models["flux"], straight, num_iterations=4, **settings)).train()
    assert result.state == "finished" and result.step == 4

    split = tmp_path / "split"
    GrpoTrainer(tiny_config(tiny_models["flux"], split, num_iterations=2, **settings)).train()
    resumed = GrpoTrainer(tiny_config(tiny_models["flux"], split, num_iterations=4, **settings)).train(
        resume="latest"
    )
    assert resumed.step == 4

    expected, actual = _lora_tensors(straight, 4), _lora_tensors(split, 4)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected), (
        "resumed weights differ from the straight run"
    )
    assert not all(torch.equal(expected[k], _lora_tensors(straight, 2)[k]) for k in expected)

    # the LoRA file holds the EMA weights (scale alpha / r = 2 folded into lora_B), not the live policy
    ema, policy = (
        load_file(split / "checkpoint-4" / "ema.safetensors"),
        load_file(split / "checkpoint-4" / "policy.safetensors"),
    )
    lora_file = load_file(split / "checkpoint-4" / "lora.safetensors")
    assert len(lora_file) == len(ema) and not all(torch.equal(ema[k], policy[k]) for k in ema)
    for name, shadow in ema.items():
        saved = lora_file["transformer." + name.replace(".default.weight", ".weight")]
        assert torch.equal(saved, shadow * 2 if ".lora_B." in name else shadow)
    with Image.open(split / "samples" / "step-000004.png") as sample:
        assert sample.size == (64, 64)  # evaluation at eval_resolution 64, rollouts at 32

    train_lines = [m for m in RunFolder(split).read_metrics() if "policy/loss" in m]
    expected_keys = {"step", f"rewards/{BRIGHTNESS}/mean", f"rewards/{BRIGHTNESS}/std", "advantages/mean",
                     "advantages/std", "advantages/abs_max", "policy/ratio_first", "policy/ratio_mean",
                     "policy/clip_fraction", "policy/kl", "policy/loss", "lr", "time/step_s", "memory/peak_gb"}  # fmt: skip
    assert all(expected_keys <= line.keys() for line in train_lines)
    assert all(line["memory/peak_gb"] > 0 and line["time/step_s"] > 0 for line in train_lines)
    # evaluation has its own rewards
    assert [
        m["step"] for m in RunFolder(split).read_metrics() if "eval/rewards/toy_rewards:red_share/mean" in m
    ] == [
        0,
        2,
        4,
    ]
    assert not any(f"eval/rewards/{BRIGHTNESS}/mean" in m for m in RunFolder(split).read_metrics())
    train_steps = [m["step"] for m in RunFolder(split).read_metrics() if "policy/loss" in m]
    assert train_steps == [1, 2, 3, 4]
    # 2 micro-batches per step, accumulated over 2 -> one optimizer step per iteration
    assert {m["policy/optimizer_steps"] for m in RunFolder(split).read_metrics() if "policy/loss" in m} == {1}
    assert (
        RunFolder(split).read_progress()["state"] == "finished"
        and RunFolder(split).read_progress()["step"] == 4
    )
    assert sorted(p.name for p in (split / "samples").iterdir()) == [
        "step-000000.png",
        "step-000002.png",
        "step-000004.png",
    ]
    state = json.loads((split / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["config"]["optim"]["kl_beta"] == 0.05
    assert any(m.get("policy/kl", 0) > 0 for m in RunFolder(split).read_metrics())


def test_resume_errors(tiny_models, tmp_path):
    config = tiny_config(tiny_models["flux"], tmp_path / "empty")
    with pytest.raises(TrainingError, match="no complete checkpoint"):
        GrpoTrainer(config).train(resume="latest")
    with pytest.raises(TrainingError, match="not a complete checkpoint folder"):
        GrpoTrainer(config).train(resume=str(tmp_path))


def test_learning_raises_brightness_and_the_lora_reproduces_it(tiny_models, tmp_path):
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.lora import LoraSpec, apply_loras
    from paco_core.models.pipelines import load_pipeline

    run = tmp_path / "learn"
    config = tiny_config(
        tiny_models["flux"],
        run,
        num_iterations=10,
        checkpoint_every=10,
        eval_every=10,
        eval_group_size=4,
        sampling={"prompts_per_iteration": 2, "group_size": 4, "batch_size": 4, "noise_level": 1.0},
        optim={"lr": 5e-2, "clip_range": 0.2},
    )
    GrpoTrainer(config).train()
    metrics = RunFolder(run).read_metrics()
    evals = [m[f"eval/rewards/{BRIGHTNESS}/mean"] for m in metrics if f"eval/rewards/{BRIGHTNESS}/mean" in m]
    train = [m[f"rewards/{BRIGHTNESS}/mean"] for m in metrics if f"rewards/{BRIGHTNESS}/mean" in m]
    group_std = np.mean([m[f"rewards/{BRIGHTNESS}/std"] for m in metrics if f"rewards/{BRIGHTNESS}/std" in m])
    assert evals[-1] - evals[0] > 0.015 and evals[-1] - evals[0] > 2 * group_std
    assert np.mean(train[-3:]) > train[0] + 0.015
    with Image.open(run / "samples" / "step-000010.png") as grid:
        assert grid.size == (64, 64)  # 4 eval images of 32x32 in a 2x2 grid

    def brightness(loaded) -> float:
        request = SetRequest(
            theme="a red fox in a snowy forest",
            panels=("sits", "leaps", "sleeps", "watches"),
            layout="2x2",
            panel_width=16,
            panel_height=16,
            steps=2,
            guidance=2.0,
            seed=11,
            max_sequence_length=16,
        )
        grids = [generated.grid for generated in generate_sets(loaded, request, num_sets=4)]
        return float(np.mean([np.asarray(g.convert("L"), dtype=np.float64).mean() / 255 for g in grids]))

    base = load_pipeline(tiny_models["flux"], device="cpu")
    with_lora = apply_loras(base, [LoraSpec(str(run / "checkpoint-10" / "lora.safetensors"))])
    assert with_lora.loras[0].num_matched == with_lora.loras[0].num_keys
    lora_gain = brightness(with_lora) - brightness(base)
    assert lora_gain > 0.015 and lora_gain > 0.5 * (evals[-1] - evals[0])


@pytest.mark.parametrize("kind", ["flux-kontext", "qwen-image-edit"])
def test_edit_kinds_roll_out_and_update(kind, tiny_models, tmp_path):
    config = tiny_config(tiny_models[kind], tmp_path / kind, kind=kind, optim={"kl_beta": 0.1})
    result = GrpoTrainer(config).train()
    assert result.state == "finished"
    last = RunFolder(tmp_path / kind).read_metrics()[-1]
    assert last["policy/ratio_first"] == 1.0 and last["advantages/num_valid"] == 2
    keys = load_file(tmp_path / kind / "checkpoint-1" / "lora.safetensors").keys()
    if kind == "qwen-image-edit":
        assert any(".img_mlp.net.0.proj.lora_A" in key for key in keys)
        assert any(".txt_mlp.net.2.lora_B" in key for key in keys)
    else:
        assert any(".ff_context.net.0.proj.lora_A" in key for key in keys)


def test_unknown_kind_is_refused():
    from paco_core.rl.rollout_adapters import build_rollout_adapter

    with pytest.raises(
        ConfigError, match="training supports the pipeline kinds flux, flux-kontext, qwen-image-edit"
    ):
        build_rollout_adapter("sdxl", pipe=None, guidance_scale=1.0, max_sequence_length=8)


def test_setup_errors_are_clear(tiny_models, tmp_path):
    wrong_rows = tiny_config(
        tiny_models["flux"], tmp_path / "a", data={"train_file": str(FIXTURES / "edits.jsonl")}
    )
    with pytest.raises(ConfigError, match="flux trains on set rows"):
        GrpoTrainer(wrong_rows).train()
    wrong_kind = tiny_config(tiny_models["flux"], tmp_path / "b", kind="flux-kontext")
    with pytest.raises(ConfigError, match="kind` is 'flux-kontext' but the pipeline"):
        GrpoTrainer(wrong_kind).train()
    no_targets = tiny_config(tiny_models["flux"], tmp_path / "c", lora={"target_modules": ["nothing_here"]})
    with pytest.raises(ConfigError, match="match no layer"):
        GrpoTrainer(no_targets).train()
    failing = tiny_config(
        tiny_models["flux"],
        tmp_path / "e",
        rewards={"rewards": [{"name": "toy_rewards:none_for_all"}], "max_invalid_share": 0.5},
    )
    with pytest.raises(RewardError, match="2 of 2 images could not be scored"):
        GrpoTrainer(failing).train()
    assert RunFolder(tmp_path / "e").read_progress()["state"] == "failed"


def test_cancel_hook_stops_with_a_checkpoint_and_options_take_effect(tiny_models, tmp_path):
    from paco_core.callbacks import Hooks
    from paco_core.errors import CancelledError

    seen: list[int] = []

    def check_cancel() -> None:
        if len(seen) >= 3:
            raise CancelledError("cancelled by the user")

    run = tmp_path / "run"
    config = tiny_config(
        tiny_models["flux"],
        run,
        num_iterations=10,
        checkpoint_every=1,
        checkpoints_total_limit=2,
        use_tensorboard=True,
        sampling={"noise_steps": [0, 1], "num_noise_steps_per_iteration": 1},
        optim={"gradient_checkpointing": True},
    )
    trainer = GrpoTrainer(
        config, hooks=Hooks(progress=lambda done, total: seen.append(done), check_cancel=check_cancel)
    )
    result = trainer.train()
    assert result.state == "stopped" and result.step == 3 and seen == [1, 2, 3]
    assert [checkpoint.step for checkpoint in RunFolder(run).checkpoints()] == [2, 3]  # pruned to the limit
    assert RunFolder(run).read_progress()["state"] == "stopped"
    assert trainer.transformer.is_gradient_checkpointing
    chosen = [tuple(m["sde_steps"]) for m in RunFolder(run).read_metrics()]
    assert all(len(steps) == 1 for steps in chosen)
    assert chosen == [trainer.choose_sde_steps(step) for step in range(3)]
    assert len({trainer.choose_sde_steps(step) for step in range(20)}) == 2  # both subsets occur
    assert any(path.name.startswith("events.out.tfevents") for path in (run / "tb").iterdir())


def _flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[name].flatten() for name in sorted(tensors)])


def test_each_optimizer_step_averages_the_micro_batches_it_accumulated(tiny_models, tmp_path, monkeypatch):
    # 3 micro-batches with accumulation 2: steps over [0, 1] and over [2] alone. The partial
    # last step must average over its one micro-batch, not divide by 2.
    from paco_core.rl.advantages import compute_advantages

    config = tiny_config(
        tiny_models["flux"],
        tmp_path / "run",
        sampling={"prompts_per_iteration": 3},
        optim={"lr": 1e-2, "clip_range": 0.2, "gradient_accumulation_steps": 2},
    )
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    rollouts = trainer.collect_rollouts(trainer.sampler.next_rows(3), step=0, sde_steps=(0, 1))
    scores = np.array([[0.1], [0.7], [0.4], [0.2], [0.9], [0.3]])
    advantages = compute_advantages(scores, [1.0], np.repeat(np.arange(3), 2), aggregation="weighted_sum")

    updater = trainer.updater
    seen: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
    original_step = updater.optimizer_step

    def recording_step(step: int) -> float:
        grads = {n: p.grad.detach().clone() for n, p in trainer.named_trainable if p.grad is not None}
        weights = {n: p.detach().clone() for n, p in trainer.named_trainable}
        seen.append((grads, weights))
        return original_step(step)

    monkeypatch.setattr(updater, "optimizer_step", recording_step)
    metrics = updater.update(rollouts, advantages, step=0)
    assert metrics["policy/optimizer_steps"] == 2 and len(seen) == 2

    values, valid = torch.from_numpy(advantages.values).float(), torch.from_numpy(advantages.valid)
    for window, (grads, weights) in zip(([0, 1], [2]), seen, strict=True):
        with torch.no_grad():
            for name, param in trainer.named_trainable:
                param.copy_(weights[name])
                param.grad = None
        mean_loss = 0.0
        for index in window:
            ids = torch.tensor(rollouts[index].sample_ids)
            for k in range(2):
                mean_loss = (
                    mean_loss + updater.micro_batch_loss(rollouts[index], k, values[ids], valid[ids]).total
                )
        (mean_loss / (2 * len(window))).backward()
        expected = _flat({n: p.grad for n, p in trainer.named_trainable if p.grad is not None})
        actual = _flat(grads)
        assert expected.norm() > 0 and grads.keys() == {
            n for n, p in trainer.named_trainable if p.grad is not None
        }
        assert (actual - expected).norm() <= 1e-4 * expected.norm(), f"window {window}: gradient scale is off"


def test_sample_grid_is_near_square_and_fits_rows_of_other_sizes():
    from paco_core.rl.evaluation import sample_grid

    images = [Image.new("RGB", (32, 32), (200, 0, 0))] * 4 + [Image.new("RGB", (64, 32), (0, 0, 200))]
    grid = sample_grid(images)
    assert grid.size == (3 * 64, 2 * 32)  # 5 images: 3 columns, 2 rows, cells of the largest size
    pixels = np.asarray(grid)
    assert tuple(pixels[16, 32]) == (200, 0, 0)  # a square image centred in its wide cell
    assert tuple(pixels[16, 5]) == (0, 0, 0)  # with black bars beside it
    assert tuple(pixels[48, 64 + 32]) == (0, 0, 200)  # the fifth image fills row 2, column 2
    assert not pixels[32:, 128:].any()  # the empty last cell stays black


def test_bf16_autocast_only_on_cuda():
    import contextlib
    import warnings

    from paco_core.rl.device_contexts import autocast_factory, training_attention

    assert autocast_factory("cpu", "bf16") is contextlib.nullcontext
    assert autocast_factory("cuda", "no") is contextlib.nullcontext
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" where there is no GPU
        context = autocast_factory("cuda:0", "auto")()
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    assert isinstance(training_attention("cpu"), contextlib.nullcontext)
