"""Images a user may give that are valid but awkward (issue 17, item 7): a 2000x4 image (aspect
ratio over the judge's 200:1) is a one-line error in the core, the CLI and the nodes, never a
ValueError traceback; a 16-bit PNG reads as its picture, not pure white; a FIFO or a folder
given as an image is refused before it is opened (a FIFO would block forever)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from pack_loader import load_pack, reset_comfy_stub, run_node
from PIL import Image

from paco_core.errors import InputError
from paco_core.images import open_image_file
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], cache_size=0)


def run_paco(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def assert_one_line_error(done: subprocess.CompletedProcess, pattern: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert re.search(pattern, lines[-1]), done.stderr[-2000:]


# --------------------------------------------------------------------------- a FIFO, a folder


def opened_within(path, seconds: float):
    """(finished, outcome) of open_image_file(path) in a thread given ``seconds``."""
    outcome: dict = {}

    def read():
        try:
            outcome["image"] = open_image_file(path)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), outcome


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    finished, outcome = opened_within(fifo, 5.0)
    if not finished:  # free the thread blocked in open(): a writer end lets it go on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert finished, "open_image_file blocked on a FIFO"
    assert isinstance(outcome.get("error"), InputError)
    assert "is not a regular file" in str(outcome["error"])


def test_a_folder_is_refused_with_one_line(tmp_path):
    with pytest.raises(InputError, match=r"is not a regular file"):
        open_image_file(tmp_path)


@pytest.mark.slow  # a CLI process loading the judge
def test_the_cli_refuses_a_fifo_in_one_line(tmp_path, tiny_models):
    fifo = tmp_path / "panel.png"
    os.mkfifo(fifo)
    try:
        done = run_paco("score", "--judge", str(tiny_models["judge"]), "--theme", "x", str(fifo), str(fifo))
    except subprocess.TimeoutExpired:
        pytest.fail("paco score hung on a FIFO")
    assert_one_line_error(done, r"is not a regular file")


# --------------------------------------------------------------------------- 16-bit PNG


def test_a_16_bit_grayscale_png_reads_as_its_picture(tmp_path):
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("I;16", "I")  # what PIL reads it as
    read = np.asarray(open_image_file(path))
    assert read.shape == (64, 64, 3)
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert np.abs(read[..., 0].astype(int) - expected).max() <= 1
    assert read.min() == 0 and read.max() == 255 and 100 < read.mean() < 155  # a ramp, not white


def test_a_16_bit_png_sent_to_the_judge_server_is_scaled_too():
    import base64
    import io

    from paco_core.reward.judge_server.chat_requests import PairRequest, decoded_pair, open_data_url

    values = np.full((8, 8), 32768, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    opened = open_data_url(url)
    decoded = decoded_pair(PairRequest(opened, open_data_url(url), "same?"))
    assert np.asarray(decoded.first).max() == 128


# --------------------------------------------------------------------------- aspect ratio over 200


def long_image() -> Image.Image:
    return Image.new("RGB", (2000, 4), (200, 30, 30))


def test_an_elongated_image_is_a_one_line_error_from_the_local_judge(judge):
    square = Image.new("RGB", (32, 32))
    with pytest.raises(InputError, match=r"2000x4 pixels, an aspect ratio above the judge's limit of 200:1"):
        judge.score_pairs([PairRequest(long_image(), square, "same?")])


@pytest.mark.slow  # a CLI process loading the judge
def test_the_cli_reports_an_elongated_image_in_one_line(tmp_path, tiny_models):
    path = tmp_path / "strip.png"
    long_image().save(path)
    done = run_paco("score", "--judge", str(tiny_models["judge"]), "--theme", "x", str(path), str(path))
    assert_one_line_error(done, r"aspect ratio above the judge's limit of 200:1")


def test_the_set_consistency_node_reports_an_elongated_batch(tmp_path, judge):
    judge_nodes = importlib.import_module(f"{load_pack().__name__}.nodes.judge")
    reset_comfy_stub(tmp_path)
    strips = torch.rand(2, 4, 2000, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=r"aspect ratio above the judge's limit"):
        run_node(
            judge_nodes.PaCoSetConsistency,
            judge=judge,
            images=strips,
            theme="",
            layout="batch",
            both_orders=False,
        )


def test_the_judge_client_refuses_before_sending(judge):
    """No request reaches the server (a refused image is not retried, nor sent once)."""
    from paco_core.reward.judge_client import JudgeClient
    from paco_core.reward.judge_server import JudgeHTTPServer

    with JudgeHTTPServer(judge, model_name="tiny-judge") as server:
        calls = []
        original = server.chat_completion
        server.chat_completion = lambda body: calls.append(1) or original(body)
        client = JudgeClient(server.url, model="tiny-judge", retries=3, backoff=0.01)
        with pytest.raises(InputError, match=r"aspect ratio above"):
            client.score_pairs([PairRequest(long_image(), Image.new("RGB", (32, 32)), "same?")])
        assert calls == []
