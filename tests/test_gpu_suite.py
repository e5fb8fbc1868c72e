"""The GPU suite (bench/gpu_suite.py): the whole suite on the tiny models on the CPU, so it cannot
rot while no GPU is at hand; its time limits, its table and its docs block."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import REPO, offline_env

from bench import gpu_suite

STATUSES_OF_A_HEALTHY_RUN = {"ran", "skipped"}


def run_suite(tmp_path, *options: str) -> subprocess.CompletedProcess:
    env = offline_env(tmp_path)
    env["PACO_CACHE"] = str(tmp_path / "cache")  # the tiny models the parts build
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_suite",
            "--device",
            "cpu",
            "--tiny",
            "--out",
            str(tmp_path / "out"),
            *options,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each table row (a ``\\|`` inside a cell is not a separator)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip()[1:-1])] for row in rows]


@pytest.mark.slow
def test_every_part_runs_or_is_skipped_with_a_reason_on_the_tiny_models(tmp_path):
    # --slack: this shared 2-core machine runs several times slower than a CI runner
    completed = run_suite(tmp_path, "--slack", "4")
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert report["mode"] == "tiny" and report["total_s"] <= report["budget_s"]
    assert report["environment"]["torch"] and report["environment"]["device"].startswith("CPU")
    assert [part["name"] for part in report["parts"]] == [part.name for part in gpu_suite.PARTS]
    for part in report["parts"]:
        logs = tmp_path / "out" / "logs" / f"{part['name']}.log"
        assert part["status"] in STATUSES_OF_A_HEALTHY_RUN, (part, logs.read_text()[-3000:])
        if part["status"] == "skipped":
            assert part["reason"]
            continue
        assert part["figures"] and part["peak_memory"]["gib"] > 0 and part["seconds"] <= part["budget_s"]
        for figure in part["figures"]:
            assert figure["figure"] and figure["value"] is not None
            if "goal" in figure:
                assert figure["passed"] is None  # goals are judged on the real dimensions only
    ran = {part["name"]: part for part in report["parts"] if part["status"] == "ran"}
    # every part that needs nothing outside this build ran (only the consistency tools may be missing)
    assert {part.name for part in gpu_suite.PARTS} - set(ran) <= {"consistency_tools"}
    for mode in (
        "rollout",
        "recompute",
    ):  # on the CPU the update matches the rollout; recomputed is 1 by design
        first_ratio = ran["ppo_first_ratio"]["details"][mode]["ratios"]
        assert first_ratio and all(ratio == 1.0 for ratio in first_ratio), mode
    assert ran["generation_while_yield"]["details"]["same_lora_as_unpaused"] is True

    markdown = (tmp_path / "out" / "gpu_suite.md").read_text()
    rows = table_rows(markdown)
    assert rows[0] == ["part", "figure", "result", "goal", "verdict", "peak memory", "part time"]
    assert rows[1] == ["---"] * 7
    assert all(len(row) == len(rows[0]) for row in rows), [row for row in rows if len(row) != len(rows[0])]
    figure_rows = sum(len(part.get("figures") or [1]) for part in report["parts"])
    assert len(rows) == 2 + figure_rows  # header, rule, then one row per figure (or per part not run)
    assert "CPU" in markdown.splitlines()[0]


def test_a_part_that_overruns_its_budget_is_ended_and_the_suite_goes_on(tmp_path):
    # a budget of 1 s ends the part while it still imports torch; the next part does not fit
    completed = run_suite(
        tmp_path, "--parts", "judge_pairs", "ppo_first_ratio", "--slack", "0.03", "--budget", "1.5"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    parts = {
        part["name"]: part for part in json.loads((tmp_path / "out" / "gpu_suite.json").read_text())["parts"]
    }
    assert parts["judge_pairs"]["status"] == "timed out" and parts["judge_pairs"]["seconds"] < 10
    assert parts["ppo_first_ratio"]["status"] == "skipped"
    assert parts["ppo_first_ratio"]["reason"].startswith("would not fit the time left")
    assert parts["one_gpu_preset"]["reason"] == "not asked for (--parts)"
    assert "**timed out**" in (tmp_path / "out" / "gpu_suite.md").read_text()


def test_quick_mode_runs_only_its_parts_within_three_minutes():
    quick = [part for part in gpu_suite.PARTS if part.quick_s is not None]
    assert [part.name for part in quick] == ["judge_pairs", "one_gpu_preset", "ppo_first_ratio"]
    assert sum(part.quick_s for part in quick) <= gpu_suite.SUITE_BUDGET_S["quick"] <= 180
    assert sum(part.full_s for part in gpu_suite.PARTS) <= gpu_suite.SUITE_BUDGET_S["full"] <= 480
    assert sum(part.tiny_s for part in gpu_suite.PARTS) <= gpu_suite.SUITE_BUDGET_S["tiny"] <= 300


def test_write_docs_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "performance.md"
    original = (REPO / "docs" / "performance.md").read_text()
    page.write_text(original)
    gpu_suite.replace_docs_block(page, "| a | table |\n")
    text = page.read_text()
    begin, end = text.index(gpu_suite.DOCS_BEGIN), text.index(gpu_suite.DOCS_END)
    assert text[begin + len(gpu_suite.DOCS_BEGIN) : end] == "\n| a | table |\n"
    assert text[:begin] == original[: original.index(gpu_suite.DOCS_BEGIN)]
    assert text[end:] == original[original.index(gpu_suite.DOCS_END) :]
    gpu_suite.replace_docs_block(page, "| a | table |\n")
    assert page.read_text() == text  # twice is the same as once
