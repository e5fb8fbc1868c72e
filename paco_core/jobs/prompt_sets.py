"""Prompt sets made for training: set rows built from a short description of a character.

RL needs prompts, not images. :func:`build_prompt_set` turns a subject ("a red-haired girl
with a green scarf"), an optional shared style and four lists (scenes, poses, expressions,
camera angles; defaults below, every one editable) into set rows in the grid format the
trainer reads (:mod:`paco_core.rl.data`: ``prompt``, ``theme``, ``layout``):

1. every scene gives up to ``rows_per_scene`` rows; a row is one set in that scene whose
   panels are distinct (camera angle, pose, expression) combinations, in a seeded order;
2. the lists are deduplicated (case and spacing ignored), so no two panels of a scene repeat
   a combination and no two rows share a panel;
3. the held-out split takes whole scenes (``held_out_scenes`` of them, seeded): no eval row
   shares a scene with a training row, so the held-out score measures the LoRA on places it
   never trained in;
4. :func:`near_duplicates` reports pairs of rows whose panel words overlap by at least a
   threshold (Jaccard similarity), which train the same thing twice.

No torch, no numpy (the jobs layer).

Example:
    >>> prompt_set = build_prompt_set(PromptSetSpec("a knight", scenes=("a forest", "a castle")))
    >>> len(prompt_set.train) > 0 and len(prompt_set.eval) > 0
    True
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paco_core.errors import InputError

DEFAULT_SCENES = (
    "a sunny park", "a busy city street at night", "a cozy kitchen", "a snowy mountain path",
    "a library", "a beach at sunset", "a rainy train station", "a forest clearing",
)  # fmt: skip
DEFAULT_POSES = ("standing", "sitting", "walking", "running", "reaching out a hand", "leaning on a wall")
DEFAULT_EXPRESSIONS = ("smiling", "laughing", "thoughtful", "surprised", "calm", "determined")
DEFAULT_CAMERA_ANGLES = (
    "front view",
    "side view",
    "three-quarter view",
    "close-up portrait",
    "full-body shot",
)
NEAR_DUPLICATE_THRESHOLD = 0.9
"""Rows whose panel words overlap at least this much (Jaccard) are reported as near-duplicates."""


@dataclass
class PromptSetSpec:
    """What a prompt set is made of (every list editable; blank entries are ignored)."""

    subject: str
    """The character (or product, or style) every panel shows, e.g. "a red-haired girl with a green scarf"."""
    style: str = ""
    """What every panel shares besides the subject, e.g. "watercolor illustration" (may be empty)."""
    scenes: tuple[str, ...] = DEFAULT_SCENES
    poses: tuple[str, ...] = DEFAULT_POSES
    expressions: tuple[str, ...] = DEFAULT_EXPRESSIONS
    camera_angles: tuple[str, ...] = DEFAULT_CAMERA_ANGLES
    layout: str = "2x2"
    rows_per_scene: int = 4
    held_out_scenes: int = 1
    """Scenes whose rows form the held-out (eval) split; 0: no split."""
    seed: int = 0

    def __post_init__(self) -> None:
        from paco_core.prompts import parse_layout

        self.subject = " ".join(str(self.subject or "").split())
        self.style = " ".join(str(self.style or "").split())
        self.num_duplicates_removed = 0
        for name in ("scenes", "poses", "expressions", "camera_angles"):
            given = getattr(self, name)
            cleaned = _clean_list(given)
            self.num_duplicates_removed += len(_entries(given)) - len(cleaned)
            setattr(self, name, cleaned)
        self.layout = str(parse_layout(self.layout))
        if not self.subject:
            raise InputError(
                "the prompt set's subject is empty: describe the character, e.g. 'a red-haired girl with a green scarf'"
            )
        for name in ("rows_per_scene", "held_out_scenes", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"`{name}` should be a whole number >= 0, got {value!r}")
        if self.rows_per_scene < 1:
            raise InputError(f"`rows_per_scene` should be at least 1, got {self.rows_per_scene}")


@dataclass
class PromptSet:
    """Train and eval set rows (plain dicts, as JSONL lines) and the near-duplicate report."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    held_out_scenes: list[str]
    num_duplicates_removed: int = 0
    """List entries dropped as repeats of another (case and spacing ignored)."""
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "train_rows": len(self.train), "eval_rows": len(self.eval), "held_out_scenes": self.held_out_scenes,
            "duplicates_removed": self.num_duplicates_removed, "near_duplicates": self.near_duplicates,
        }  # fmt: skip


def _entries(values: Any) -> list[str]:
    """The non-blank entries of a list, or of a text with one entry per line or entries
    separated by ``;``; spaces collapsed."""
    if isinstance(values, str):
        values = [part for line in values.splitlines() for part in line.split(";")]
    entries = [" ".join(str(value).split()).strip(" ,;") for value in values or ()]
    return [entry for entry in entries if entry]


def _clean_list(values: Any) -> tuple[str, ...]:
    """The entries without repeats (case and spacing ignored), first spelling kept."""
    seen: dict[str, str] = {}
    for text in _entries(values):
        seen.setdefault(text.lower(), text)
    return tuple(seen.values())


def build_prompt_set(spec: PromptSetSpec) -> PromptSet:
    """The rows of a prompt set (module doc: rows per scene, dedup, held-out scenes, near-duplicates).

    Raises:
        InputError: the description yields no row (an empty list, fewer panel combinations
            than panels per set), or too few scenes for the held-out split.
    """
    from paco_core.prompts import build_grid_prompt, parse_layout

    num_panels = parse_layout(spec.layout).rows * parse_layout(spec.layout).cols
    empty = [name for name in ("scenes", "poses", "expressions", "camera_angles") if not getattr(spec, name)]
    if empty:
        raise InputError(
            f"the prompt set yields no rows: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty; "
            "give at least one entry per list (one per line)"
        )
    combinations = list(itertools.product(spec.camera_angles, spec.poses, spec.expressions))
    if len(combinations) < num_panels:
        raise InputError(
            f"the prompt set yields no rows: a {spec.layout} set needs {num_panels} different panels but the lists "
            f"make only {len(combinations)} (camera angles x poses x expressions); add entries or choose a smaller layout"
        )
    if spec.held_out_scenes and len(spec.scenes) <= spec.held_out_scenes:
        raise InputError(
            f"held_out_scenes is {spec.held_out_scenes} but there are only {len(spec.scenes)} scene(s): the "
            "held-out split takes whole scenes and training needs at least one more; add scenes or set 0"
        )
    rng = random.Random(spec.seed)
    rows_by_scene: dict[str, list[dict[str, Any]]] = {}
    for scene in spec.scenes:
        order = combinations[:]
        rng.shuffle(order)
        rows_by_scene[scene] = []
        for start in range(0, len(order) - num_panels + 1, num_panels):
            if len(rows_by_scene[scene]) >= spec.rows_per_scene:
                break
            chosen = order[start : start + num_panels]
            panels = [
                _panel_text(spec.subject, angle, pose, expression) for angle, pose, expression in chosen
            ]
            theme = f"depicting {spec.subject} in {scene}."
            prompt = build_grid_prompt(theme, spec.style, panels, spec.layout)
            rows_by_scene[scene].append(
                {"prompt": prompt, "theme": theme, "layout": spec.layout, "scene": scene}
            )
    held_out = sorted(rng.sample(list(spec.scenes), spec.held_out_scenes)) if spec.held_out_scenes else []
    train = [row for scene, rows in rows_by_scene.items() if scene not in held_out for row in rows]
    evaluation = [row for scene in held_out for row in rows_by_scene[scene]]
    if not train:
        raise InputError("the prompt set yields no training rows: add scenes or lower held_out_scenes")
    for number, row in enumerate(train + evaluation):
        row["idx"] = f"{number:04d}"
    prompt_set = PromptSet(train, evaluation, held_out, num_duplicates_removed=spec.num_duplicates_removed)
    prompt_set.near_duplicates = near_duplicates(train + evaluation)
    return prompt_set


def _panel_text(subject: str, angle: str, pose: str, expression: str) -> str:
    return f"{angle[:1].upper()}{angle[1:]} of {subject}, {pose}, {expression}."


_WORD_RE = re.compile(r"[a-z0-9]+")


def near_duplicates(
    rows: list[dict[str, Any]], threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> list[dict[str, Any]]:
    """Pairs of rows whose panel words overlap by at least ``threshold`` (Jaccard similarity of
    their word sets), most similar first: ``{"rows": [idx a, idx b], "similarity": s}``."""
    from paco_core.prompts import parse_grid_prompt

    words = []
    for row in rows:
        panels = parse_grid_prompt(row["prompt"]).panel_prompts or (row["prompt"],)
        words.append(
            set(_WORD_RE.findall(" ".join(panels).lower() + " " + str(row.get("scene", "")).lower()))
        )
    found = []
    for a, b in itertools.combinations(range(len(rows)), 2):
        union = words[a] | words[b]
        similarity = len(words[a] & words[b]) / len(union) if union else 1.0
        if similarity >= threshold:
            found.append(
                {"rows": [rows[a].get("idx", a), rows[b].get("idx", b)], "similarity": round(similarity, 4)}
            )
    return sorted(found, key=lambda item: -item["similarity"])


@dataclass
class PromptSetFiles:
    train_file: Path
    eval_file: Path | None
    report_file: Path


def write_prompt_set(
    prompt_set: PromptSet, folder: str | os.PathLike, name: str = "prompt-set"
) -> PromptSetFiles:
    """Write ``<name>.train.jsonl``, ``<name>.eval.jsonl`` (when there are eval rows) and
    ``<name>.report.json`` into ``folder``, atomically; the files a job's ``data.train_file``
    and ``data.eval_file`` take."""
    from paco_core.io import atomic_write_text
    from paco_core.jobs.training_prompts import write_rows

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_file = write_rows(folder / f"{name}.train.jsonl", prompt_set.train)
    eval_file = write_rows(folder / f"{name}.eval.jsonl", prompt_set.eval) if prompt_set.eval else None
    report_file = Path(
        atomic_write_text(
            folder / f"{name}.report.json", json.dumps(prompt_set.report(), indent=2, sort_keys=True)
        )
    )
    return PromptSetFiles(Path(train_file), Path(eval_file) if eval_file else None, report_file)
