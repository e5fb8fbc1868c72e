"""Prompt data for training: set rows (text-to-image-set) and edit rows, splits, order.

Two JSONL row kinds (one JSON object per line):

- set row (the T2IS dataset format): ``{"prompt": ..., "theme": ..., "layout": "2x2",
  "height": 1024, "width": 1024, "criteria": {...}, "idx": 3}``; ``theme``/``layout``
  are optional (taken from the prompt when absent).
- edit row: ``{"image": "imgs/cat.png", "instruction": "make it night", "idx": 7}``,
  optional ``height``/``width``; the image path is relative to ``image_root`` (or the
  JSONL file's folder).

Sizes are given at ``reference_resolution`` and scaled to the train or eval resolution
(resolution decoupling), keeping the aspect ratio, rounded to multiples of 16. An edit row
without a size takes its original's aspect ratio at resolution^2 area (``edit_size``
aspect), or resolution x resolution (``square``, the released edit trainers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paco_core.errors import ConfigError, InputError

SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class PromptRow:
    """One training prompt: a set prompt or an edit (image + instruction)."""

    kind: Literal["set", "edit"]
    prompt: str
    """The text given to the model: the grid prompt, or the edit instruction."""
    index: int
    theme: str = ""
    layout: str = ""
    height: int = 0
    width: int = 0
    image_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def metadata(self) -> dict[str, Any]:
        """What a reward function receives about this row (plain data)."""
        data = {"kind": self.kind, "prompt": self.prompt, "index": self.index, "theme": self.theme}
        data.update(layout=self.layout, image_path=self.image_path, **self.extra)
        return data


@dataclass
class PromptSplits:
    train: list[PromptRow]
    eval: list[PromptRow]


def read_prompt_rows(path: str | Path, *, image_root: str | Path | None = None) -> list[PromptRow]:
    """Read a JSONL file of set rows or edit rows.

    Raises:
        InputError: a line is not JSON, a row has neither ``prompt`` nor ``instruction``,
            an edit image is missing, or the file mixes the two kinds.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file {str(path)!r} does not exist")
    root = Path(image_root) if image_root else path.parent
    rows: list[PromptRow] = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path.name} line {line_number} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise InputError(
                f"{path.name} line {line_number} should be a JSON object, got {type(data).__name__}"
            )
        rows.append(_parse_row(data, len(rows), root, f"{path.name} line {line_number}"))
    if not rows:
        raise InputError(f"prompt file {str(path)!r} holds no rows")
    kinds = {row.kind for row in rows}
    if len(kinds) > 1:
        raise InputError(f"prompt file {str(path)!r} mixes set rows and edit rows; use one kind per file")
    return rows


def _parse_row(data: dict[str, Any], position: int, root: Path, where: str) -> PromptRow:
    index = int(data.get("idx", position))
    height, width = int(data.get("height", 0) or 0), int(data.get("width", 0) or 0)
    if "instruction" in data:
        image = data.get("image") or data.get("image_path")
        if not image:
            raise InputError(
                f"{where}: an edit row needs `image` (path of the image to edit) next to `instruction`"
            )
        image_path = Path(image) if Path(image).is_absolute() else root / image
        if not image_path.is_file():
            raise InputError(f"{where}: edit image {str(image_path)!r} does not exist")
        extra = {
            k: v
            for k, v in data.items()
            if k not in ("instruction", "image", "image_path", "idx", "height", "width")
        }
        return PromptRow(
            "edit",
            str(data["instruction"]),
            index,
            height=height,
            width=width,
            image_path=str(image_path),
            extra=extra,
        )
    if "prompt" in data:
        prompt = str(data["prompt"])
        theme = str(data.get("theme") or "")
        layout = str(data.get("layout") or "")
        if not layout:
            layout = _layout_of(prompt)
        extra = {
            k: v for k, v in data.items() if k not in ("prompt", "theme", "layout", "idx", "height", "width")
        }
        return PromptRow(
            "set", prompt, index, theme=theme, layout=layout, height=height, width=width, extra=extra
        )
    raise InputError(
        f"{where}: a row needs `prompt` (set row) or `instruction` + `image` (edit row); got keys {sorted(data)}"
    )


def _layout_of(prompt: str) -> str:
    """The layout of a grid prompt, for a row that does not name it. (A row without a
    ``theme`` keeps it empty: ``paco_core.prompts.judge_theme`` decides what the judge sees.)"""
    from paco_core import prompts

    parsed = prompts.parse_grid_prompt(prompt)
    return f"{parsed.layout.rows}x{parsed.layout.cols}"


def split_rows(rows: list[PromptRow], eval_fraction: float, seed: int) -> PromptSplits:
    """Hold out ``eval_fraction`` of the rows (at least one when the fraction is > 0)."""
    if eval_fraction <= 0 or len(rows) < 2:
        return PromptSplits(train=list(rows), eval=[])
    order = np.random.default_rng([seed, 7]).permutation(len(rows))
    num_eval = min(len(rows) - 1, max(1, round(eval_fraction * len(rows))))
    eval_ids = set(order[:num_eval].tolist())
    return PromptSplits(
        train=[row for i, row in enumerate(rows) if i not in eval_ids],
        eval=[row for i, row in enumerate(rows) if i in eval_ids],
    )


def load_splits(
    train_file: str, eval_file: str = "", *, eval_fraction: float = 0.1, seed: int = 0, image_root: str = ""
) -> PromptSplits:
    """Train/eval rows: the eval file when given, else a seeded split of the train file."""
    rows = read_prompt_rows(train_file, image_root=image_root or None)
    if eval_file:
        return PromptSplits(train=rows, eval=read_prompt_rows(eval_file, image_root=image_root or None))
    return split_rows(rows, eval_fraction, seed)


def row_identity(row: PromptRow) -> tuple[str, str, str]:
    """What makes two rows the same prompt: kind, text, and (edit rows) the source image."""
    return (row.kind, row.prompt.strip(), row.image_path)


def held_out_overlap(splits: PromptSplits) -> list[PromptRow]:
    """The eval rows that are also training rows (same :func:`row_identity`)."""
    trained = {row_identity(row) for row in splits.train}
    return [row for row in splits.eval if row_identity(row) in trained]


def check_held_out(splits: PromptSplits, *, eval_file: str = "") -> None:
    """Evaluation must run on prompts never trained on.

    Raises:
        ConfigError: rows of ``eval_file`` are also in the training file (a held-out score
            on trained prompts hides a LoRA that games its reward).
    A split of one file can only overlap through duplicate rows: that is a warning.
    """
    overlap = held_out_overlap(splits)
    if not overlap:
        return
    examples = ", ".join(repr(row.prompt[:60]) for row in overlap[:3])
    if eval_file:
        raise ConfigError(
            f"{len(overlap)} of the {len(splits.eval)} rows of `data.eval_file` are also training rows "
            f"(e.g. {examples}): evaluation must use prompts never trained on; remove them from one of the files"
        )
    import logging

    logging.getLogger(__name__).warning(
        "%d of the %d held-out rows repeat training rows (duplicates in data.train_file, e.g. %s): their "
        "eval scores are not held out; remove the duplicates",
        len(overlap),
        len(splits.eval),
        examples,
    )


class PromptSampler:
    """Seeded epoch-wise shuffled order over rows; its state is two integers and the dropped
    rows (exact resume)."""

    def __init__(self, rows: list[PromptRow], seed: int):
        if not rows:
            raise ConfigError("no training rows: the prompt file is empty or the eval split took every row")
        self.rows = rows
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self.dropped: set[int] = set()
        """Positions in ``rows`` no longer sampled (prompts whose groups taught nothing)."""

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))

    def next_rows(self, count: int) -> list[PromptRow]:
        chosen: list[PromptRow] = []
        order = self._order()
        while len(chosen) < count:
            if self.position >= len(order):
                self.epoch += 1
                self.position = 0
                order = self._order()
            position = int(order[self.position])
            self.position += 1
            if position not in self.dropped:
                chosen.append(self.rows[position])
        return chosen

    def drop(self, rows: list[PromptRow], *, keep_at_least: int = 1) -> list[PromptRow]:
        """Stop sampling ``rows`` (the others take their places); returns the rows dropped.

        Never drops below ``keep_at_least`` rows left (the rows an iteration takes): past that
        the rest stay in the order.
        """
        dropped = []
        for row in rows:
            position = next((i for i, r in enumerate(self.rows) if r is row), None)
            if position is None or position in self.dropped:
                continue
            if len(self.rows) - len(self.dropped) <= keep_at_least:
                break
            self.dropped.add(position)
            dropped.append(row)
        return dropped

    def state_dict(self) -> dict[str, int]:
        state = {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_rows": len(self.rows),
        }
        if self.dropped:
            state["dropped"] = sorted(self.dropped)
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("num_rows") != len(self.rows):
            raise ConfigError(
                f"the checkpoint was trained on {state.get('num_rows')} rows but the prompt file now has "
                f"{len(self.rows)}; resume with the same data"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.dropped = {int(position) for position in state.get("dropped") or []}


def round_size(value: float) -> int:
    return max(SIZE_MULTIPLE, int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE)


def row_size(
    row: PromptRow,
    resolution: int,
    reference_resolution: int,
    image_size: tuple[int, int] | None = None,
    *,
    edit_size: str = "aspect",
) -> tuple[int, int]:
    """(height, width) of a row at ``resolution``.

    Rows with a size are scaled by resolution / reference_resolution; set rows without get
    :func:`layout_size`; edit rows without get the area resolution^2 at the image's aspect
    ratio (square if unknown), or resolution x resolution with ``edit_size`` "square".
    """
    if row.height and row.width:
        scale = resolution / reference_resolution
        return round_size(row.height * scale), round_size(row.width * scale)
    if row.kind == "set" and row.layout:
        return layout_size(row.layout, resolution)
    if edit_size == "square":
        return resolution, resolution
    if image_size is not None:
        width, height = image_size
        aspect = width / height
        return round_size(resolution / math.sqrt(aspect)), round_size(resolution * math.sqrt(aspect))
    return resolution, resolution


def layout_size(layout: str, resolution: int) -> tuple[int, int]:
    """(height, width) near ``resolution`` x ``resolution`` that splits into the layout's equal
    panels, each side a multiple of SIZE_MULTIPLE: a 1x3 set at 512 is 512x528 (512 does not
    split into 3 columns, and the judge scores a set panel by panel)."""
    from paco_core.prompts import parse_layout

    grid = parse_layout(layout)
    return grid.rows * round_size(resolution / grid.rows), grid.cols * round_size(resolution / grid.cols)


def rollout_size(
    row: PromptRow, resolution: int, reference_resolution: int, *, edit_size: str = "aspect"
) -> tuple[int, int]:
    """:func:`row_size`, reading an edit row's image for its aspect ratio when the row gives no size."""
    image_size = None
    if row.kind == "edit" and not (row.height and row.width) and edit_size != "square":
        from paco_core.images import open_image_file

        image_size = open_image_file(row.image_path, what="edit row image").size
    return row_size(row, resolution, reference_resolution, image_size, edit_size=edit_size)


def check_row_kinds(splits: PromptSplits, *, kind: str, wanted: str) -> None:
    """Refuse rows of the other kind (set rows for flux, edit rows for the edit models)."""
    for name, rows in (("train", splits.train), ("eval", splits.eval)):
        wrong = [row.index for row in rows if row.kind != wanted]
        if wrong:
            raise ConfigError(
                f"{kind} trains on {wanted} rows, but the {name} data has {len(wrong)} other rows "
                f"(idx {wrong[:5]}); use set rows for flux and edit rows for edit models"
            )
