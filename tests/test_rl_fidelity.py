"""The released run's options on the tiny models: optimizer steps per iteration, the released
EMA cadence, the KL form, Qwen's true-CFG switch and the eval step count."""

from __future__ import annotations

import functools

import numpy as np
import torch
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.rl.trainer import GrpoTrainer


def _trainer(config) -> GrpoTrainer:
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    return trainer


def test_released_cadence_applies_the_ema_per_micro_batch_of_two_optimizer_steps(
    tiny_models, tmp_path, monkeypatch
):
    # 2 prompts x 2 images, one image per micro-batch: 4 micro-batches, 2 optimizer steps.
    config = tiny_config(
        tiny_models["flux"],
        tmp_path / "run",
        sampling={"prompts_per_iteration": 2, "batch_size": 1},
        optim={"lr": 1e-2, "clip_range": 0.2, "optimizer_steps_per_iteration": 2},
        ema={"use_ema": True, "update_every": 2, "cadence": "released"},
    )
    trainer = _trainer(config)
    initial = {name: shadow.clone() for name, shadow in trainer.ema.shadow.items()}
    after_steps: list[dict[str, torch.Tensor]] = []
    original_step = trainer.updater.optimizer_step

    def recording_step(step: int) -> float:
        norm = original_step(step)
        after_steps.append({n: p.detach().float().clone() for n, p in trainer.named_trainable})
        return norm

    monkeypatch.setattr(trainer.updater, "optimizer_step", recording_step)
    metrics = trainer.run_iteration(0)
    assert metrics["policy/optimizer_steps"] == 2 and trainer.updater.optimizer_steps == 2

    # The released loop, replayed: windows [0, 1] and [2, 3]; after every micro-batch (after
    # the optimizer step that closes a window) the EMA applies when (g + 1) % 2 == 0.
    expected, weights, g, applied = initial, None, 0, []
    for position in range(4):
        if position in (1, 3):
            weights, g = after_steps[g], g + 1
        if (g + 1) % 2 == 0:
            decay = min((1 + g) / (10 + g), 0.9)
            expected = {n: decay * expected[n] + (1 - decay) * weights[n] for n in expected}
            applied.append(decay)
    assert applied == [2 / 11, 2 / 11]  # g = 1 for micro-batches 1 and 2
    assert metrics["ema/updates"] == 2 and metrics["ema/decay"] == 2 / 11
    for name, shadow in trainer.ema.shadow.items():
        torch.testing.assert_close(shadow, expected[name], rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(trainer.ema.shadow[n], initial[n]) for n in initial)


def test_optimizer_step_count_survives_a_resume(tiny_models, tmp_path):
    config = tiny_config(
        tiny_models["flux"],
        tmp_path / "run",
        num_iterations=2,
        optim={"lr": 1e-2, "clip_range": 0.2, "optimizer_steps_per_iteration": 1},
        ema={"use_ema": True, "update_every": 2, "cadence": "released"},
    )
    first = GrpoTrainer(config)
    first.train()
    assert first.updater.optimizer_steps == 2
    again = GrpoTrainer(config)
    again.check_config()
    again.setup()
    again.load(tmp_path / "run" / "checkpoint-1")
    assert again.updater.optimizer_steps == 1


def test_kl_form_flow_grpo_is_the_exact_kl_times_minus_dt(tiny_models, tmp_path):
    kl = {}
    for form in ("flow_grpo", "exact"):
        config = tiny_config(
            tiny_models["flux"],
            tmp_path / form,
            optim={"lr": 1e-2, "clip_range": 0.2, "kl_beta": 1.0, "kl_form": form},
        )
        trainer = _trainer(config)
        with torch.no_grad():  # a LoRA that moves the mean away from the reference's
            generator = torch.Generator().manual_seed(0)
            for name, param in trainer.named_trainable:
                if "lora_B" in name:
                    param.copy_(0.05 * torch.randn(param.shape, generator=generator))
        rollout = trainer.collect_rollouts(trainer.sampler.next_rows(1), step=0, sde_steps=(1,))[0]
        loss = trainer.updater.micro_batch_loss(rollout, 0, torch.zeros(2), torch.ones(2, dtype=torch.bool))
        kl[form] = float(loss.kl)
        sigmas = rollout.schedule.sigmas
        dt = float(sigmas[2] - sigmas[1])
    assert kl["flow_grpo"] > 0
    assert np.isclose(kl["flow_grpo"], kl["exact"] * -dt, rtol=1e-4)


def _transformer_calls(trainer: GrpoTrainer, action) -> int:
    calls = []
    handle = trainer.transformer.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        action()
    finally:
        handle.remove()
    return len(calls)


def test_qwen_without_true_cfg_calls_the_transformer_once_per_step(tiny_models, tmp_path):
    # The released Qwen run passes no negative prompt: its guidance 4.0 never runs true CFG.
    counts = {}
    for true_cfg in (True, False):
        config = tiny_config(
            tiny_models["qwen-image-edit"],
            tmp_path / str(true_cfg),
            kind="qwen-image-edit",
            sampling={"guidance_scale": 4.0, "true_cfg": true_cfg},
        )
        trainer = _trainer(config)
        assert trainer.rollout_adapter.use_true_cfg is true_cfg
        rollout = functools.partial(trainer.collect_rollouts, trainer.sampler.next_rows(1), 0, (0, 1))
        counts[true_cfg] = _transformer_calls(trainer, rollout)
    assert counts == {True: 4, False: 2}  # 2 steps, one micro-batch


def test_evaluation_samples_with_eval_num_steps(tiny_models, tmp_path):
    config = tiny_config(
        tiny_models["flux"], tmp_path / "run", sampling={"eval_num_steps": 3}, data={"eval_fraction": 0.5}
    )
    trainer = _trainer(config)
    assert trainer.eval_rows
    assert _transformer_calls(trainer, lambda: trainer.evaluate(0)) == 3 * len(trainer.eval_rows)
