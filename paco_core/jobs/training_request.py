"""What someone asks to train -> the training config a job runs: the one path from a preset (or a
config file) and a few settings to a config dict, shared by PaCo Train LoRA (nodes/training.py),
``paco train`` and ``paco jobs submit`` (paco_core/commands/).

A :class:`TrainingRequest` holds the settings by the names the node's inputs use (``rewards``,
``training_prompts``, ``advanced_json`` ...); the CLI fills in only ``preset``, ``config_file``
and ``overrides``. Every error raised for a setting carries that setting's name as its
``field`` (paco_core/errors.py), so a caller can say it in its own words without reading the
message. No torch here: importing this module loads no heavy library.

Example:
    >>> from paco_core.jobs.training_request import TrainingRequest, build_training_config
    >>> config = build_training_config(TrainingRequest(preset="t2is-flux", iterations=50))
    >>> config["num_iterations"]
    50
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paco_core.errors import ConfigError, InputError
from paco_core.families import edit_kinds

if TYPE_CHECKING:
    from paco_core.containment import ContainmentRules

logger = logging.getLogger(__name__)


@dataclass
class TrainingRequest:
    """The settings of one training request; None (or empty) keeps what the preset / config file says.

    Args:
        preset: a released run to start from (``paco_core.rl.presets``).
        config_file: a JSON config merged over the preset (``paco train --config``).
        model: the base pipeline's ``model`` keys, resolved and checked by the caller
            (``{"path", "kind"}`` for a diffusers folder, or ComfyUI's files), merged over the preset's.
        train_file: a JSONL file of prompt rows (used instead of ``training_prompts``).
        training_prompts: prompt blocks as typed (``paco_core.jobs.training_prompts``); their rows
            are written to ``prompts_folder`` in a file named by its content.
        prompts_folder: where rows from ``training_prompts`` are written.
        image_root: the folder edit blocks name their images in.
        prompt_set: ``{"train_file", "eval_file"}`` of a prompt set, used instead of the prompts.
        references: reference image files for the reference reward (added with weight 1 unless
            ``rewards`` names it).
        rewards: reward weights, e.g. ``"consistency=0.2, clip_t=1"`` ("" keeps the preset's).
        judge: an opened judge (``paco_core.reward.open_judge``): its source goes into the config.
        host_device: the device slot of a host that shares its GPU with the job (ComfyUI's):
            the job yields it (``gpu_policy`` yield) when it trains on that device.
        advanced_json: a JSON object of config keys merged after the settings above.
        overrides: ``KEY=VALUE`` overrides applied last (``--set``); unknown keys are refused.
        own_run_folder: drop ``output_dir``: the job store gives the job its own run folder.
        rules: the containment rule every path, URL and reward obeys (``paco_core.containment``);
            None: no rule (the command line).
    """

    preset: str | None = None
    config_file: str | os.PathLike | None = None
    model: Mapping[str, Any] | None = None
    train_file: str | None = None
    training_prompts: str | None = None
    prompts_folder: str | os.PathLike | None = None
    image_root: str | os.PathLike | None = None
    prompt_set: Mapping[str, str] | None = None
    references: Sequence[str] | None = None
    rewards: str = ""
    judge: Any = None
    iterations: int | None = None
    learning_rate: float | None = None
    group_size: int | None = None
    train_resolution: int | None = None
    host_device: str | None = None
    advanced_json: str = ""
    overrides: Sequence[str] = field(default_factory=tuple)
    own_run_folder: bool = False
    rules: ContainmentRules | None = None


def build_training_config(request: TrainingRequest) -> dict[str, Any]:
    """The training config ``request`` asks for, as a plain dict (not yet validated by TrainConfig).

    Raises:
        InputError / ConfigError: a setting is wrong; ``error.field`` names the request's setting
            (``"rewards"``, ``"advanced_json"``, ...) or the config key.
    """
    config = start_config(request.preset, request.config_file)  # 1. preset, then config file
    if request.model:  # 2. the base pipeline
        config.setdefault("model", {}).update(request.model)
    set_prompts(config, request)  # 3. the prompts
    set_rewards(config, request)  # 4. rewards, judge, references
    set_numbers(config, request)  # 5. the numbers
    if request.host_device is not None:  # 6. GPU sharing with the host
        config["gpu_policy"] = "yield"
    config = apply_overrides_in_order(config, request)  # 7. advanced_json, then --set
    if request.host_device is not None and config.get("gpu_policy") == "yield":
        from paco_core.jobs.runner import device_slot

        if device_slot(str((config.get("model") or {}).get("device", "auto"))) != request.host_device:
            config["gpu_policy"] = "exclusive"  # another device: nothing to share
    if request.own_run_folder:
        config.pop("output_dir", None)
    return contained_config(config, request.rules) if request.rules is not None else config  # 8. containment


def start_config(preset: str | None, config_file: str | os.PathLike | None) -> dict[str, Any]:
    """The preset's dict with the config file merged over it."""
    from paco_core.config import merge_dicts, read_config_file
    from paco_core.rl.presets import preset_dict

    if not (preset or config_file):
        raise ConfigError("give --config CONFIG.json or --preset NAME (or both)", field="preset")
    config: dict[str, Any] = preset_dict(preset) if preset else {}
    if config_file:
        config = merge_dicts(config, read_config_file(config_file))
    for section in ("model", "data", "rewards", "optim", "sampling"):
        if not isinstance(config.get(section, {}), dict):
            raise ConfigError(
                f"`{section}` should be a section {{...}}, got {config[section]!r}", field=section
            )
    return config


def set_prompts(config: dict[str, Any], request: TrainingRequest) -> None:
    """``data.train_file`` (and ``eval_file``, ``image_root``) from the prompt set, file or text."""
    from paco_core.jobs import training_prompts as tp

    if request.prompt_set is None and request.train_file is None and request.training_prompts is None:
        return
    data = config.setdefault("data", {})
    if request.prompt_set is not None:
        data["train_file"] = request.prompt_set["train_file"]
        if request.prompt_set.get("eval_file"):
            data["eval_file"] = request.prompt_set["eval_file"]
    elif request.train_file is not None:
        data["train_file"] = request.train_file
    elif request.training_prompts is not None:
        kind = (config.get("model") or {}).get("kind")
        if kind in edit_kinds():
            rows = tp.edit_rows_from_text(request.training_prompts, request.image_root or ".")
            data["image_root"] = str(request.image_root or ".")
        else:
            rows = tp.set_rows_from_text(request.training_prompts)
        data["train_file"] = rows_file(request.prompts_folder or ".", rows)


def rows_file(folder: str | os.PathLike, rows: list[dict]) -> str:
    """``folder/prompts-<digest>.jsonl`` holding ``rows`` (written once: the same rows, the same file)."""
    from paco_core.jobs.training_prompts import write_rows

    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    path = Path(folder) / f"prompts-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    if not path.is_file():
        write_rows(path, rows)
    return str(path)


def set_rewards(config: dict[str, Any], request: TrainingRequest) -> None:
    """The reward weights, the judge's source and the reference images."""
    weights = parse_reward_weights(request.rewards)
    if weights is not None:
        config.setdefault("rewards", {})["rewards"] = weights
    if request.judge is not None:
        config.setdefault("rewards", {}).update(judge_settings(request.judge))
    if request.references is not None:
        rewards = config.setdefault("rewards", {})
        rewards["references"] = list(request.references)
        specs = list(rewards.get("rewards") or [])
        if not any(spec.get("name") == "reference" for spec in specs):
            rewards["rewards"] = [*specs, {"name": "reference", "weight": 1.0}]


def parse_reward_weights(text: str) -> list[dict] | None:
    """``"consistency=0.2, clip_t=1"`` -> ``[{"name": "consistency", "weight": 0.2}, ...]``; "" -> None."""
    specs = []
    for part in (text or "").replace("\n", ",").split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise InputError(
                f"rewards: the weight of {name!r} should be a number, got {weight.strip()!r} "
                "(write e.g. consistency=0.2, clip_t=1)",
                field="rewards",
            ) from None
        specs.append({"name": name, "weight": value})
    return specs or None


def judge_settings(judge) -> dict[str, str]:
    """The training config's judge keys for an opened judge (its source, never the object)."""
    url = getattr(judge, "base_url", None)
    if url:
        model = getattr(judge, "_model", None) or ""
        return {"judge_url": str(url), "judge_path": "", "judge_server_model": str(model)}
    source = getattr(judge, "source", None)
    if not source:
        raise InputError(
            "the judge input does not say where its model is (an older PaCo Judge Loader?): "
            "re-run PaCo Judge Loader, or set rewards.judge_path in advanced_json",
            field="judge",
        )
    if getattr(judge, "lora", None):
        raise InputError(
            f"the judge is a base model plus a LoRA ({judge.lora}); training loads a merged judge folder: "
            "merge it once (paco judge merge) or serve it and give the server URL",
            field="judge",
        )
    return {"judge_path": str(source), "judge_url": ""}


def set_numbers(config: dict[str, Any], request: TrainingRequest) -> None:
    """Iterations, learning rate, group size and resolution; a batch size that divides the group."""
    if request.iterations is not None:
        config["num_iterations"] = request.iterations
    if request.learning_rate is not None:
        config.setdefault("optim", {})["lr"] = request.learning_rate
    if request.train_resolution is not None:
        config.setdefault("sampling", {})["train_resolution"] = request.train_resolution
    if request.group_size is not None:
        sampling = config.setdefault("sampling", {})
        sampling["group_size"] = request.group_size
        batch = sampling.get("batch_size", 1)
        if request.group_size % batch:  # images per transformer call: memory only, the same gradient
            sampling["batch_size"] = largest_divisor(request.group_size, batch)


def largest_divisor(number: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, at_most) + 1) if number % d == 0)


def apply_overrides_in_order(config: dict[str, Any], request: TrainingRequest) -> dict[str, Any]:
    """``advanced_json`` merged over ``config``, then the ``KEY=VALUE`` overrides."""
    from paco_core.config import apply_overrides, check_override_keys, merge_dicts

    if request.advanced_json.strip():
        try:
            override = json.loads(request.advanced_json)
        except json.JSONDecodeError as error:
            raise InputError(
                f"advanced_json is not valid JSON: {error.msg} (line {error.lineno})", field="advanced_json"
            ) from None
        if not isinstance(override, dict):
            raise InputError(
                f"advanced_json should be a JSON object {{...}}, got {type(override).__name__}",
                field="advanced_json",
            )
        config = merge_dicts(config, override)
    if request.overrides:
        from paco_core.rl.config import TrainConfig

        check_override_keys(TrainConfig, request.overrides)
        config = apply_overrides(config, request.overrides)
    return config


def contained_config(config: dict[str, Any], rules) -> dict[str, Any]:
    """``config`` checked by the containment rule (paths, URLs, rewards), and each edit row's image
    inside the data folders too.

    Raises:
        InputError: a path, URL or reward leaves what the rule lets the caller reach (the message
            names the key).
    """
    from paco_core import containment
    from paco_core.rl.data import read_prompt_rows

    config = containment.contained_config(config, rules)
    data = config.get("data") or {}
    for key in ("train_file", "eval_file"):
        if not data.get(key):
            continue
        for row in read_prompt_rows(data[key], image_root=data.get("image_root") or None):
            if row.image_path:
                containment.contained_config_path(
                    row.image_path,
                    rules.data_roots,
                    key=f"data.{key} image",
                    rules=rules,
                    where="ComfyUI's input folder",
                )
    return config
