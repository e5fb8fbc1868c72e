"""``paco train``: run PaCo-GRPO training in the foreground.

Examples::

    paco train --preset t2is-flux --print-config > run.json     # start from the released run (docs/presets.md)
    paco train --config run.json                                 # train
    paco train --config run.json --resume latest                 # continue after a stop
    paco train --config run.json --overwrite                     # start over in a used output folder
    paco train --config run.json --set optim.lr=1e-4 --set num_iterations=50
    accelerate launch --num_processes 8 -m paco_core.cli train --config run.json

Exit codes: 0 finished, 1 error (message on stderr), 2 bad usage, 143 stopped by SIGTERM
(the step in progress finished and a checkpoint was saved; resume with ``--resume latest``).

A fresh run into an output folder that holds an earlier run is refused unless ``--resume``
or ``--overwrite``; a second trainer on a folder in use is refused (docs/runs.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from paco_core.config import config_from_dict, config_to_dict, describe_fields

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    from paco_core.rl.presets import preset_names

    parser = subparsers.add_parser(
        "train",
        help="PaCo-GRPO LoRA training (rollouts, rewards, PPO updates, checkpoints)",
        description="Train a PaCo LoRA with PaCo-GRPO. Config: JSON file and/or a preset, plus --set overrides.",
        epilog="Exit codes: 0 finished, 1 error, 2 usage, 143 stopped by SIGTERM after saving a checkpoint.",
    )
    parser.add_argument("--config", help="training config JSON (see --describe-config)")
    parser.add_argument(
        "--log-file-mode",
        action="store_true",
        help="stderr is a log file (a job's train.log): no progress bars, each repeated warning once",
    )
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        help="start from a released run (t2is-flux, edit-kontext, edit-qwen) or the paper's T2IS variant (t2is-flux-paper); see docs/presets.md; t2is-flux-1gpu: t2is-flux laid out for one GPU (docs/scaling.md)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=1e-4 --set data.train_file=prompts.jsonl",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        help="continue from a checkpoint folder, or `latest`: the newest intact checkpoint in output_dir",
    )
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an output_dir that holds an earlier run (deletes its checkpoints, metrics, samples)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as JSON and exit"
    )
    parser.add_argument(
        "--describe-config", action="store_true", help="print every config key with help and exit"
    )
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """Preset, then config file, then --set overrides -> a validated TrainConfig."""
    from paco_core.jobs.training_request import TrainingRequest, build_training_config
    from paco_core.rl.config import TrainConfig

    request = TrainingRequest(preset=args.preset, config_file=args.config, overrides=args.overrides)
    return config_from_dict(TrainConfig, build_training_config(request))


def run(args: argparse.Namespace) -> int:
    from paco_core.rl.config import TrainConfig

    if args.describe_config:
        for name, _kind, default, text in describe_fields(TrainConfig):
            print(f"{name:40s} {json.dumps(default):32s} {text}")
        return 0
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config_to_dict(config), indent=2, sort_keys=True))
        return 0
    if args.log_file_mode:  # a job's train.log: no progress bars, each warning once
        quiet_logs_for_a_file()
    from paco_core.callbacks import Hooks
    from paco_core.rl.trainer import EXIT_OK, EXIT_STOPPED, GrpoTrainer

    def progress(done: int, total: int) -> None:
        print(f"paco train: step {done}/{total}", file=sys.stderr, flush=True)

    result = GrpoTrainer(config, hooks=Hooks(progress=progress)).train(
        resume=args.resume, overwrite=args.overwrite
    )
    who = "paco train"
    if result.num_processes > 1:
        who += f" (process {result.process_index} of {result.num_processes})"
    checkpoint = str(result.last_checkpoint)
    if result.process_index > 0 and result.last_checkpoint is not None:
        checkpoint += " (written by process 0)"
    if result.state == "stopped":
        print(f"{who}: stopped at step {result.step}; checkpoint {checkpoint}", file=sys.stderr)
        return EXIT_STOPPED
    print(f"{who}: finished {result.step} steps; last checkpoint {checkpoint}", file=sys.stderr)
    return EXIT_OK


class SayOnce(logging.Filter):
    """Lets each warning through once: a later one from the same logger whose text starts the
    same way (the first :attr:`KEY_CHARS` characters: the CLIP truncation warning of every
    prompt) is dropped. Info lines (the steps) all pass."""

    KEY_CHARS = 60

    def __init__(self):
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage()[: self.KEY_CHARS])
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def quiet_logs_for_a_file() -> SayOnce:
    """For a log written to a file: progress bars off (no carriage-return lines), Python
    warnings through logging, and each warning said once on every handler (this process's,
    transformers' and diffusers' own)."""
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is first imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.captureWarnings(True)
    once = SayOnce()
    loggers = [logging.getLogger()]
    for library in ("transformers", "diffusers"):
        try:
            module = __import__(f"{library}.utils.logging", fromlist=["disable_progress_bar"])
        except ImportError:
            continue
        module.disable_progress_bar()
        loggers.append(logging.getLogger(library))
    for logger_ in loggers:
        for handler in logger_.handlers:
            handler.addFilter(once)
    return once
