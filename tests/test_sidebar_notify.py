"""The browser notification's and toast's sentence (web/paco_jobs/notify.js) is the one the
Training Job node's status shows (paco_core/jobs/announce.py): run both on the same records."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pack_loader import REPO_ROOT

from paco_core.jobs.announce import end_message

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the sidebar's modules")
NOTIFY_JS = REPO_ROOT / "web" / "paco_jobs" / "notify.js"

RECORDS = [
    (
        {"id": "job-1", "name": "faces", "status": "completed", "total": 200, "step": 200},
        "paco/faces/faces-best.safetensors",
    ),
    ({"id": "job-2", "name": "", "status": "completed", "total": 3, "step": 3}, None),
    (
        {
            "id": "job-3",
            "name": "boat",
            "status": "failed",
            "error": "Traceback\n  ...\nTrainingError: judge down",
        },
        None,
    ),
    ({"id": "job-4", "name": "x", "status": "interrupted", "error": ""}, None),
    ({"id": "job-5", "name": "y", "status": "stopped", "step": 7}, None),
    ({"id": "job-6", "name": "z", "status": "running", "step": 2}, None),
]


def test_notify_js_words_a_job_end_as_the_python_side_does():
    script = (
        f"import {{ endMessage }} from {json.dumps(NOTIFY_JS.as_uri())};\n"
        f"const records = {json.dumps(RECORDS)};\n"
        "console.log(JSON.stringify(records.map(([r, lora]) => endMessage(r, lora))));"
    )
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    from_js = json.loads(done.stdout)
    from_python = [
        end_message(
            r["status"],
            name=r["name"] or r["id"],
            steps=r.get("total") if r["status"] == "completed" else r.get("step", 0),
            best_lora=lora,
            error=r.get("error"),
        )
        for r, lora in RECORDS
    ]
    assert from_js == from_python
    assert from_js[2] == "PaCo job failed: boat: TrainingError: judge down" and from_js[5] is None
