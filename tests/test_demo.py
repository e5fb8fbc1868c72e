"""`paco demo` through the real command line, in a fresh process with an empty model cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_from_an_empty_cache_in_under_a_minute(tmp_path):
    env = {
        **os.environ,
        "PACO_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": str(REPO_ROOT),
    }
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "demo", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert seconds < 60
    assert "PaCo demo" in finished.stdout and "set consistency" in finished.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tiny_models"] is True
    assert 0.0 <= summary["judge"]["set_score"] <= 1.0 and len(summary["judge"]["per_image"]) == 4
    assert Image.open(tmp_path / "out" / "grid.png").size == (64, 64)
    assert [Image.open(tmp_path / "out" / f"panel_{i}.png").size for i in range(1, 5)] == [(32, 32)] * 4
    assert any((tmp_path / "cache").rglob("model_index.json"))  # the tiny models went to the cache
