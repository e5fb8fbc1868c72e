"""Prompt sets made for training: grid rows the trainer reads, scene-disjoint held-out split,
deduplicated lists, the near-duplicate report, the CLI, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from paco_core.errors import InputError
from paco_core.jobs.prompt_sets import PromptSetSpec, build_prompt_set, near_duplicates, write_prompt_set
from paco_core.prompts import parse_grid_prompt
from paco_core.rl.data import check_held_out, load_splits

SUBJECT = "a red-haired girl with a green scarf"


def test_rows_are_grid_rows_of_distinct_panels_and_the_trainer_reads_them(tmp_path):
    spec = PromptSetSpec(
        SUBJECT,
        style="watercolor illustration",
        scenes=("a park", "a kitchen", "a beach"),
        rows_per_scene=3,
        held_out_scenes=1,
        seed=5,
    )
    prompt_set = build_prompt_set(spec)
    assert len(prompt_set.train) == 6 and len(prompt_set.eval) == 3
    for row in prompt_set.train + prompt_set.eval:
        parsed = parse_grid_prompt(row["prompt"])
        assert str(parsed.layout) == row["layout"] == "2x2" and len(set(parsed.panel_prompts)) == 4
        assert all(SUBJECT in panel for panel in parsed.panel_prompts) and row["scene"] in row["theme"]
    files = write_prompt_set(prompt_set, tmp_path / "set")
    splits = load_splits(str(files.train_file), str(files.eval_file))
    check_held_out(splits, eval_file=str(files.eval_file))  # no eval row is a training row
    assert [r.prompt for r in splits.train] == [r["prompt"] for r in prompt_set.train]
    assert json.loads(files.report_file.read_text())["held_out_scenes"] == prompt_set.held_out_scenes


def test_held_out_rows_share_no_scene_with_training_and_follow_the_seed():
    scenes = tuple(f"scene {i}" for i in range(6))
    first = build_prompt_set(PromptSetSpec(SUBJECT, scenes=scenes, held_out_scenes=2, seed=1))
    again = build_prompt_set(PromptSetSpec(SUBJECT, scenes=scenes, held_out_scenes=2, seed=1))
    other = build_prompt_set(PromptSetSpec(SUBJECT, scenes=scenes, held_out_scenes=2, seed=2))
    assert first.train == again.train and first.held_out_scenes == again.held_out_scenes
    assert other.train != first.train
    train_scenes = {row["scene"] for row in first.train}
    eval_scenes = {row["scene"] for row in first.eval}
    assert eval_scenes == set(first.held_out_scenes) and len(eval_scenes) == 2
    assert not train_scenes & eval_scenes and train_scenes | eval_scenes == set(scenes)


def test_repeated_list_entries_are_dropped_and_counted():
    spec = PromptSetSpec(
        SUBJECT,
        scenes="a park\nA  Park\n\na beach",
        poses="sitting; Sitting ;running",
        expressions=("calm", "happy"),
        camera_angles=("front view",),
        layout="1x2",
        held_out_scenes=0,
    )
    assert spec.scenes == ("a park", "a beach") and spec.poses == ("sitting", "running")
    prompt_set = build_prompt_set(spec)
    assert prompt_set.num_duplicates_removed == 2 and prompt_set.eval == []
    assert len({row["prompt"] for row in prompt_set.train}) == len(prompt_set.train) == 4


def test_near_duplicate_rows_are_reported_most_similar_first():
    rows = [
        {"idx": "a", "prompt": "a girl, sitting, calm", "scene": "park"},
        {"idx": "b", "prompt": "a girl, sitting, calm", "scene": "park"},
        {"idx": "c", "prompt": "a girl sitting calm in the rain", "scene": "park"},
        {"idx": "d", "prompt": "a dragon flying over mountains", "scene": "sky"},
    ]
    found = near_duplicates(rows, threshold=0.6)
    assert found[0] == {"rows": ["a", "b"], "similarity": 1.0}
    assert {tuple(item["rows"]) for item in found} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert near_duplicates(rows) == [{"rows": ["a", "b"], "similarity": 1.0}]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"subject": "  "}, "the prompt set's subject is empty"),
        ({"poses": ()}, "the prompt set yields no rows: poses is empty"),
        (
            {"poses": ("sit",), "expressions": ("calm",), "camera_angles": ("front",)},
            "a 2x2 set needs 4 different panels but the lists make only 1",
        ),
        ({"scenes": ("a park",)}, "held_out_scenes is 1 but there are only 1 scene"),
        ({"layout": "0x3"}, "layout"),
    ],
)
def test_a_description_that_yields_no_rows_is_one_line_error(settings, message):
    settings = {"subject": SUBJECT, **settings}
    with pytest.raises(InputError, match=message) as error:
        build_prompt_set(PromptSetSpec(**settings))
    assert "\n" not in str(error.value)


def test_cli_writes_the_files_and_refuses_bad_input_in_one_line(tmp_path):
    command = [sys.executable, "-m", "paco_core.cli", "prompt-set", "--subject", SUBJECT, "--out", str(tmp_path),
               "--scene", "a park", "--scene", "a beach", "--scene", "a library", "--rows-per-scene", "2"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "4 training rows" in done.stdout and "2 held-out rows" in done.stdout
    assert (tmp_path / "prompt-set.train.jsonl").read_text().count("\n") == 4
    bad = subprocess.run(
        [*command[:8], "--pose", "sitting", "--expression", "calm", "--camera-angle", "front"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert "yields no rows" in bad.stderr
