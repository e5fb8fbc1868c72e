"""`paco score`, `paco score-edit` and `paco serve-judge` on the tiny judge."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from paco_core.cli import main
from paco_core.images import split_grid
from paco_core.reward import open_judge
from paco_core.reward.judge_server import JudgeHTTPServer
from paco_core.reward.scoring import score_edit, score_set


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"])


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge-cli")
    rng = np.random.default_rng(11)
    paths = {}
    for name, (width, height) in {"grid": (128, 128), "a": (64, 64), "b": (64, 64), "odd": (65, 64)}.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(paths[name])
    paths["text"] = folder / "notes.png"
    paths["text"].write_text("not an image")
    return paths


def run_paco(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_paco_score_prints_the_issue_json_shape(tiny_models, judge, image_files):
    done = run_paco(
        "score",
        "--judge",
        str(tiny_models["judge"]),
        "--theme",
        "a fox",
        "--layout",
        "2x2",
        str(image_files["grid"]),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"score", "pairs", "per_image"}
    panels = split_grid(Image.open(image_files["grid"]).convert("RGB"), "2x2")
    expected = score_set(judge, panels, "a fox").to_json()
    assert printed["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert [pair[:2] for pair in printed["pairs"]] == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    assert printed["per_image"] == pytest.approx(expected["per_image"], abs=1e-6)


@pytest.mark.parametrize("source", ["preamble", "theme"])
def test_paco_score_takes_the_judge_theme_from_the_grid_prompt(
    tiny_models, judge, image_files, capsys, source
):
    from paco_core.prompts import build_grid_prompt, judge_theme

    prompt = build_grid_prompt("a fox.", "All in ink.", ["a", "b", "c", "d"], "2x2")
    args = ["score", "--judge", str(tiny_models["judge"]), "--prompt", prompt, "--layout", "2x2"]
    assert main([*args, "--judge-theme", source, str(image_files["grid"]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    panels = split_grid(Image.open(image_files["grid"]).convert("RGB"), "2x2")
    expected_theme = (
        "FOUR-PANEL Images with a 2x2 grid layout a fox.All in ink." if source == "preamble" else "a fox."
    )
    assert judge_theme(prompt, source=source) == expected_theme
    assert printed["score"] == pytest.approx(score_set(judge, panels, expected_theme).score, abs=1e-6)
    assert printed["score"] != pytest.approx(score_set(judge, panels, None).score, abs=1e-9)


def test_paco_score_edit_prints_three_scores(tiny_models, judge, image_files, capsys):
    args = ["score-edit", "--judge", str(tiny_models["judge"]), "--instruction", "add snow"]
    assert main([*args, str(image_files["a"]), str(image_files["b"]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    original, edited = (Image.open(image_files[name]).convert("RGB") for name in ("a", "b"))
    assert printed == pytest.approx(score_edit(judge, original, edited, "add snow").to_json(), abs=1e-6)


def test_paco_score_over_a_server(judge, image_files, capsys):
    vocab = int(judge.model.config.text_config.vocab_size)
    with JudgeHTTPServer(judge, max_logprobs=vocab) as server:
        args = [
            "score",
            "--url",
            server.url,
            "--top-logprobs",
            str(vocab),
            str(image_files["a"]),
            str(image_files["b"]),
        ]
        assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    images = [Image.open(image_files[name]).convert("RGB") for name in ("a", "b")]
    assert printed["score"] == pytest.approx(score_set(judge, images).score, abs=1e-4)


def test_paco_score_reports_bad_input(tiny_models, image_files, capsys):
    judge_args = ["--judge", str(tiny_models["judge"])]
    cases = [
        (["score", *judge_args, str(image_files["a"])], "at least 2 images per set to compare, got 1"),
        (
            ["score", *judge_args, "--layout", "2x2", str(image_files["odd"])],
            "cannot be split into a 2x2 grid",
        ),
        (
            ["score", *judge_args, "--layout", "2x2", str(image_files["a"]), str(image_files["b"])],
            "--layout splits one grid image into panels; got 2 images",
        ),
        (
            ["score", *judge_args, str(image_files["a"]), str(image_files["text"])],
            "cannot be read as an image",
        ),
        (
            [
                "score",
                "--url",
                "http://127.0.0.1:9",
                "--lora",
                "x",
                str(image_files["a"]),
                str(image_files["b"]),
            ],
            "--lora applies to a local --judge",
        ),
        (
            ["score", "--judge", str(image_files["a"].parent), str(image_files["a"]), str(image_files["b"])],
            "is not a Qwen2.5-VL judge folder",
        ),
        (
            ["score", "--url", closed_port_url(), str(image_files["a"]), str(image_files["b"])],
            "/v1/models did not answer",
        ),
        (["serve-judge", "--judge", "http://127.0.0.1:9"], "serve-judge serves a local judge"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        assert message in capsys.readouterr().err


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_paco_serve_judge_answers_chat_completions(tiny_models, image_files):
    from paco_core.reward.judge_client import JudgeClient

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "paco_core.cli",
        "serve-judge",
        "--judge",
        str(tiny_models["judge"]),
        "--port",
        "0",
        "--max-logprobs",
        "1000",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line.startswith(f"serving {tiny_models['judge']} as 'paco-judge' at http://127.0.0.1:"), line
        url = line.split(" at ")[1].strip()
        client = JudgeClient(url, top_logprobs=1000)
        images = [Image.open(image_files[name]).convert("RGB") for name in ("a", "b")]
        local = open_judge(tiny_models["judge"])
        assert score_set(client, images).score == pytest.approx(score_set(local, images).score, abs=1e-4)
    finally:
        server.terminate()
        server.wait(timeout=30)
