"""The presets reproduce the released PaCo-GRPO runs: every value pinned against the fixture
of released values (tests/fixtures/released_presets.json, each with its source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import flatten

from paco_core.config import config_to_dict
from paco_core.rl.presets import PRESETS, VARIANT_PRESETS, preset_config, preset_dict

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "released_presets.json").read_text())
RELEASED = FIXTURE["presets"]


def config_value(config_dict: dict[str, Any], dotted: str) -> Any:
    value: Any = config_dict
    for part in dotted.split("."):
        value = value[part]
    return value


def test_every_preset_has_its_released_values():
    assert {*PRESETS, *VARIANT_PRESETS} == set(RELEASED)


def test_qwen_trains_step_one_as_released_and_the_variant_every_noise_step():
    released, variant = (
        preset_config("edit-qwen").sampling,
        preset_config("edit-qwen-all-noise-steps").sampling,
    )
    assert (released.noise_steps, released.trained_steps) == ((1, 2, 3, 4), (1,))
    assert (variant.noise_steps, variant.trained_steps) == ((1, 2, 3, 4), (1, 2, 3, 4))
    changed = {
        k
        for k, v in flatten(preset_dict("edit-qwen-all-noise-steps")).items()
        if flatten(preset_dict("edit-qwen")).get(k) != v
    }
    assert changed == {"sampling.trained_steps"}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_preset_holds_every_pinned_value(name):
    values = config_to_dict(preset_config(name))
    wrong = {
        key: (config_value(values, key), entry["value"])
        for key, entry in RELEASED[name].items()
        if config_value(values, key) != entry["value"]
    }
    assert not wrong, f"{name}: (preset, pinned) differ for {wrong}"


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_every_preset_value_is_pinned_with_a_source(name):
    unpinned = sorted(set(flatten(preset_dict(name))) - set(RELEASED[name]))
    assert not unpinned, f"{name}: preset values without a released value in the fixture: {unpinned}"
    for key, entry in RELEASED[name].items():
        assert entry["source"].strip(), f"{name}.{key} has no source"
        if "released" in entry:  # a named difference: it differs and says why
            assert entry["released"] != entry["value"] and entry["why"].strip(), f"{name}.{key}"


def test_the_paper_variant_differs_from_the_released_run_only_in_aggregation():
    released, paper = flatten(preset_dict("t2is-flux")), flatten(preset_dict("t2is-flux-paper"))
    changed = {key for key in paper if released.get(key) != paper[key]}
    assert changed == {"rewards.aggregation", "rewards.log_tame_threshold", "rewards.log_tame_rewards"}
    config = preset_config("t2is-flux-paper").rewards
    assert (config.aggregation, config.log_tame_threshold, config.log_tame_rewards) == (
        "log_tamed",
        0.2,
        ("consistency", "clip_t"),
    )


def test_released_qwen_targets_adapt_the_same_modules_as_the_preset(tiny_models):
    # The released Qwen trainer lists FLUX's names (attn.* and ff.*); on Qwen-Image only the
    # attention names exist, so its LoRA is attention-only: the preset's list adapts exactly
    # the same modules of a real Qwen-Image transformer.
    from diffusers import QwenImageTransformer2DModel

    transformer = QwenImageTransformer2DModel.from_pretrained(
        tiny_models["qwen-image-edit"], subfolder="transformer"
    )
    names = [name for name, _ in transformer.named_modules()]

    def matched(targets):  # peft's rule for a list of names: the module name ends with ".target"
        return {n for n in names if any(n == t or n.endswith(f".{t}") for t in targets)}

    released = [
        f"attn.{t}"
        for t in ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out")
    ] + ["ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"]
    preset = preset_config("edit-qwen").lora.target_modules
    assert matched(released) == matched(preset) and matched(preset)
    assert not matched(["img_mlp.net.0.proj"]) & matched(preset)  # feed-forward layers stay frozen
