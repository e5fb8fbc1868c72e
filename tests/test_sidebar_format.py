"""The sidebar's pure helpers (web/paco_jobs/format.js) run in Node against the Python side.

Node imports the ES module as the browser does; skipped where no ``node`` is installed. The
LoRA file the "Add LoRA node" button asks for must be the name the jobs export writes
(``paco_core.jobs.export.lora_name``): checked on the same job names in both languages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from pack_loader import REPO_ROOT

from paco_core.jobs.export import lora_name

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the sidebar's modules")
FORMAT_JS = REPO_ROOT / "web" / "paco_jobs" / "format.js"


def run_format(expression: str):
    """The JSON value of ``expression``, with format.js's exports as ``f``."""
    script = (
        f"import * as f from {json.dumps(FORMAT_JS.as_uri())};\nconsole.log(JSON.stringify({expression}));"
    )
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


NAMES = ["ink foxes", "faces", "..a/b\\c..", "été 2026", "", "   ", "run_1.v2-final", "x" * 3]


def test_the_lora_name_matches_the_name_the_export_writes():
    records = [{"id": "job-1a2b3c4d", "name": name} for name in NAMES]
    in_js = run_format(f"{json.dumps(records)}.map(f.loraBaseName)")
    in_python = [lora_name(SimpleNamespace(**record)) for record in records]
    assert in_js == in_python


def test_the_best_lora_choice_prefers_the_exported_files_then_the_export_naming():
    choices = run_format(
        """[
        f.bestLoraChoice({id: "job-1", name: "ink foxes", best_lora: "/r/checkpoint-4/lora.safetensors",
          lora_files: ["paco/ink-foxes/ink-foxes-step2.safetensors", "paco/ink-foxes/ink-foxes-best.safetensors"]}),
        f.bestLoraChoice({id: "job-1", name: "ink foxes", best_checkpoint: "/r/checkpoint-4"}),
        f.bestLoraChoice({id: "job-1", name: "", status: "completed", lora: "/r/checkpoint-6/lora.safetensors"}),
        f.bestLoraChoice({id: "job-1", name: "quick", status: "running", lora: "/r/checkpoint-2/lora.safetensors"}),
      ]"""
    )
    assert choices == [
        "paco/ink-foxes/ink-foxes-best.safetensors",
        "paco/ink-foxes/job-1/ink-foxes-best.safetensors",  # one folder per job (jobs/export.py)
        "paco/job-1/job-1/job-1.safetensors",
        None,
    ]


def test_time_left_comes_from_the_pace_seen_else_from_the_servers_estimate():
    left = run_format(
        """[
        f.secondsLeft({status: "running", step: 30, total: 100, eta_s: 7},
                      [{t: 0, step: 10}, {t: 10000, step: 20}, {t: 20000, step: 30}]),
        f.secondsLeft({status: "running", step: 30, total: 100, eta_s: 7}, [{t: 0, step: 30}]),
        f.secondsLeft({status: "running", step: 30, total: 100}, []),
        f.secondsLeft({status: "stopped", step: 30, total: 100, eta_s: 7}, []),
        f.formatDuration(70), f.formatDuration(45), f.formatDuration(7260),
      ]"""
    )
    assert left == [70, 7, None, None, "1 min 10 s", "45 s", "2 h 01 min"]


def test_reward_lines_split_train_and_eval_means_one_line_per_reward():
    lines = run_format(
        """f.rewardLines({
        "rewards/consistency/mean": [[1, 0.5], [2, 0.6]],
        "rewards/aggregated/mean": [[1, 0.5], [2, 0.6]],
        "rewards/clip_t/mean": [[1, 0.2]],
        "rewards/consistency/std": [[1, 0.1]],
        "eval/rewards/consistency/mean": [[0, 0.4], [2, 0.45]],
        "eval/rewards/consistency/invalid": [[0, 0]],
        "loss": [[1, 0.3]],
      })"""
    )
    assert [line["name"] for line in lines["train"]] == ["clip_t", "consistency", "aggregated"]
    assert [line["name"] for line in lines["eval"]] == ["consistency"]
    assert lines["eval"][0]["points"] == [[0, 0.4], [2, 0.45]]


def test_a_failed_jobs_reason_is_the_last_line_of_its_error():
    reasons = run_format(
        """[f.errorReason({error: "Traceback...\\n  File x\\nModelLoadError: model 'm' not found\\n\\n"}),
            f.errorReason({error: null}), f.errorReason({error: "y".repeat(300)}, 10)]"""
    )
    assert reasons == ["ModelLoadError: model 'm' not found", "", "yyyyyyyyy…"]
