"""The trainer's side of "sample now" requests and of the per-prompt reward view.

"Sample now" rows: the request either carries prompt rows (set pipelines: the typed text
turned into rows by :mod:`paco_core.jobs.training_prompts`), an ``instruction`` (edit
pipelines: applied to each held-out row's image), or nothing (the held-out rows as they are).
Per-prompt rewards: the mean and spread of each reward over a prompt's group, for the
training rows of the last step and the held-out rows of the last evaluation.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from paco_core.errors import InputError
from paco_core.rl.data import PromptRow, _parse_row

MAX_REQUESTED_ROWS = 16


def requested_rows(
    request: dict[str, Any], eval_rows: list[PromptRow], train_rows: list[PromptRow]
) -> list[PromptRow]:
    """The rows a "sample now" request asks for (see the module docstring).

    Raises:
        InputError: the request's rows do not parse, or there is no row to sample.
    """
    base = eval_rows or train_rows[:1]
    if isinstance(request.get("rows"), list) and request["rows"]:
        rows = [
            _parse_row(dict(data), position, Path("."), f"sample request row {position + 1}")
            for position, data in enumerate(request["rows"][:MAX_REQUESTED_ROWS])
            if isinstance(data, dict)
        ]
    elif isinstance(request.get("instruction"), str) and request["instruction"].strip():
        rows = [dataclasses.replace(row, prompt=request["instruction"].strip()) for row in base]
    else:
        rows = list(base)
    if not rows:
        raise InputError("nothing to sample: the run has no held-out or training prompts")
    return rows


def group_stats(scores: np.ndarray, names: list[str], group_size: int) -> list[dict[str, dict[str, float]]]:
    """For each group of ``group_size`` consecutive samples: ``{reward name: {"mean", "std", "n"}}``
    over its finite scores (``mean`` None when every score is invalid)."""
    stats = []
    for start in range(0, scores.shape[0], group_size):
        block = scores[start : start + group_size]
        entry = {}
        for k, name in enumerate(names):
            column = block[:, k]
            finite = column[np.isfinite(column)]
            entry[name] = {
                "mean": _plain(finite.mean()) if finite.size else None,
                "std": _plain(finite.std()) if finite.size else None,
                "n": int(finite.size),
            }
        stats.append(entry)
    return stats


def prompt_entries(rows: list[PromptRow], stats: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """``{str(row.index): {"prompt", "theme", "step", "rewards"}}`` for rows and their stats."""
    return {
        str(row.index): {"prompt": row.theme or row.prompt, "step": step, "rewards": entry}
        for row, entry in zip(rows, stats, strict=False)
    }


def _plain(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
