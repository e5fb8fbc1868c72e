"""The sidebar's guardrail module (web/paco_jobs/guardrail_samples.js) run in Node: which check fired,
and the first evaluation's sample beside the one that fired it. Skipped without ``node``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from paco_core.rl.image_checks import CHECKS, CODE_PREFIX

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the sidebar's modules")
MODULE = Path(__file__).parent.parent / "web" / "paco_jobs" / "guardrail_samples.js"


def run_module(expression: str):
    script = (
        f"import * as m from {json.dumps(MODULE.as_uri())};\n"
        "const h = (tag, attrs, ...kids) => ({ tag, attrs, kids: kids.flat().filter((k) => k != null) });\n"
        f"console.log(JSON.stringify({expression}));"
    )
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_every_image_check_has_a_title():
    titles = run_module(f"{json.dumps([CODE_PREFIX + name for name in CHECKS])}.map(m.guardrailTitle)")
    assert "Warning" not in titles and len(set(titles)) == len(CHECKS)


def test_an_image_warning_shows_both_samples_and_the_action():
    warning = {"code": "image_grid", "check": "grid", "samples": [0, 5], "action": "stopped"}
    element = run_module(
        f"m.guardrailSamples(h, {json.dumps(warning)}, (s) => '/paco/jobs/j/sample?step=' + s)"
    )
    pair, action = element["kids"]
    sources = [figure["kids"][0]["attrs"]["src"] for figure in pair["kids"]]
    assert sources == ["/paco/jobs/j/sample?step=0", "/paco/jobs/j/sample?step=5"]
    assert action["kids"] == ["Action: stopped"] and element["attrs"]["data-check"] == "grid"
    assert run_module("m.guardrailSamples(h, {code: 'reward_gaming'}, () => '')") is None
