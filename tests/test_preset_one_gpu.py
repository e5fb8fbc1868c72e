"""The one-GPU T2IS preset: the released t2is-flux run with a memory layout for one GPU."""

from __future__ import annotations

import json

from helpers import flatten

from paco_core import cli
from paco_core.config import config_to_dict
from paco_core.rl.presets import PRESETS, preset_config, preset_names


def test_one_gpu_preset_is_the_released_run_with_a_one_gpu_memory_layout():
    assert "t2is-flux-1gpu" in preset_names() and "t2is-flux-1gpu" not in PRESETS  # not a released run
    released = flatten(config_to_dict(preset_config("t2is-flux")))
    one_gpu = flatten(config_to_dict(preset_config("t2is-flux-1gpu")))
    changed = {key: (released[key], one_gpu[key]) for key in released if released[key] != one_gpu[key]}
    assert changed == {
        "sampling.batch_size": (4, 1),
        "optim.gradient_checkpointing": (False, True),
        "rewards.judge_offload": (False, True),
    }
    # the same samples per optimizer step as the released run
    for key in (
        "sampling.group_size",
        "sampling.prompts_per_iteration",
        "optim.optimizer_steps_per_iteration",
    ):
        assert one_gpu[key] == released[key]


def test_paco_train_prints_the_one_gpu_preset(capsys):
    assert cli.main(["train", "--preset", "t2is-flux-1gpu", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rewards"]["judge_offload"] is True and printed["optim"]["gradient_checkpointing"] is True
