"""Readable reports of the consistency tools: what was made or tried, the scores, the cost.

Panels and cells are numbered from 1, row-major, as in the judge's reports.
"""

from __future__ import annotations

import math

from paco_core.consistency.reference_sets import ReferenceSetResult
from paco_core.consistency.repair import RepairResult


def format_reference_report(result: ReferenceSetResult) -> str:
    """Which panels keep the reference's identity, the set's scores, time and memory."""
    how = (
        "FLUX grid, references held by masked denoising"
        if result.path == "grid"
        else "edits of the reference"
    )
    refs = ", ".join(f"#{cell + 1}" for cell in result.reference_cells)
    lines = [
        f"set of your character ({how}): set consistency {result.set_score.score:.3f} over "
        f"{len(result.cells)} cells (reference cells {refs}, pixel-identical to the references)",
    ]
    if len(result.panel_cells) > 1:
        lines.append(f"panels among themselves: {result.panel_score:.3f}")
    threshold = result.settings.get("identity_threshold", 0.5)
    for cell, score, keeps in zip(result.panel_cells, result.identity, result.keeps_identity, strict=True):
        verdict = "keeps the reference's identity" if keeps else "drifts from the reference"
        lines.append(f"panel #{cell + 1}: against the reference {score:.3f} -> {verdict}")
    kept = [
        f"#{cell + 1}" for cell, keeps in zip(result.panel_cells, result.keeps_identity, strict=True) if keeps
    ]
    lines.append(
        f"keep the identity (score >= {threshold:g}): {', '.join(kept) if kept else 'none'} "
        f"({len(kept)} of {len(result.panel_cells)} panels)"
    )
    lines.append(f"cost: {result.usage.describe()}")
    return "\n".join(lines)


def format_repair_report(result: RepairResult) -> str:
    """The scores before and after, one line per round, what changed, the cost."""
    target = result.settings.get("target_score")
    lines = [
        f"repair of the odd panel ({'grid inpainting' if result.path == 'grid' else 'edits of the best panels'}): "
        f"set consistency {result.score_before.score:.3f} -> {result.score_after.score:.3f} "
        f"(target {target:.3f}; {result.stop_reason})"
    ]
    for log in result.rounds:
        tries = ", ".join(f"{score:.3f}" for score in log.try_scores) or "none finished"
        outcome = (
            f"kept try {log.kept_try + 1}"
            if log.kept_try is not None
            else "no try raised the score, set kept"
        )
        lines.append(
            f"round {log.number}: panel #{log.panel + 1} (mean {log.panel_score:.3f}), {len(log.try_scores)} "
            f"tries: {tries} -> {outcome}; set {log.score_after:.3f}"
        )
    changed = result.changed_panels
    lines.append(
        "changed panels: "
        + (", ".join(f"#{index + 1}" for index in changed) if changed else "none")
        + "; every other panel is pixel-identical to the input"
    )
    if result.cancelled:
        lines.append("cancelled: the best set so far is kept")
    pairs = sum(log.judge_pairs for log in result.rounds)
    steps = sum(log.generation_steps for log in result.rounds)
    lines.append(f"cost: {result.usage.describe()}; {steps} denoising steps, {pairs} judge pairs")
    return "\n".join(lines)


def repair_log_json(result: RepairResult) -> dict:
    """The repair as JSON: scores before/after, stop reason, rounds, cost."""
    return {
        "score_before": result.score_before.to_json(),
        "score_after": result.score_after.to_json(),
        "stop_reason": result.stop_reason,
        "changed_panels": [index + 1 for index in result.changed_panels],
        "rounds": [
            {
                **log.to_json(),
                "panel": log.panel + 1,
                "kept_try": None if log.kept_try is None else log.kept_try + 1,
            }
            for log in result.rounds
        ],
        "usage": result.usage.to_json(),
    }


def reference_json(result: ReferenceSetResult) -> dict:
    """The reference set's scores as JSON (cells numbered from 1)."""
    return {
        "path": result.path,
        "set_score": result.set_score.to_json(),
        "panel_score": None if math.isnan(result.panel_score) else result.panel_score,
        "reference_cells": [cell + 1 for cell in result.reference_cells],
        "panels": [
            {"cell": cell + 1, "identity": score, "keeps_identity": keeps}
            for cell, score, keeps in zip(
                result.panel_cells, result.identity, result.keeps_identity, strict=True
            )
        ],
        "prompt": result.prompt,
        "judge_theme": result.judge_theme,
        "usage": result.usage.to_json(),
    }
