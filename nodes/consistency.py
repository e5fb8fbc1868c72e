"""Consistency tool nodes: a set of your character (reference-anchored sets) and repair of the
odd panel. Each node validates, calls ``paco_core.consistency`` and converts; heavy modules
are imported inside ``execute``."""

from __future__ import annotations

import json

from comfy_api.latest import io, ui

from paco_core.prompts import prompt_lines

from . import comfy_bridge
from .generation import pipeline_run
from .grid import judge_theme_source_input
from .inputs import guidance_inputs, output_node_schema, panel_side_input, seed_input, steps_input
from .judge import BATCH_CHOICE, judge_input
from .sockets import PacoPipeline

CATEGORY = "PaCo/Consistency"
FIT_CHOICES = {"pad (whole reference)": "pad", "crop (fill the panel)": "crop"}
CANCELLED_FOLDER = "paco-repair-cancelled"
"""Where a cancelled repair keeps its best set so far (inside ComfyUI's output folder)."""


def flux_and_edit_guidance_inputs() -> list:
    return guidance_inputs(
        3.5,
        "model default: FLUX 3.5, Kontext 2.5, Qwen-Image-Edit true CFG 4.0. use guidance: the value below.",
        "Used when model_guidance is off: FLUX / Kontext guidance or Qwen true-CFG scale.",
    )


def theme_text_input(tooltip: str) -> io.String.Input:
    return io.String.Input("theme", multiline=True, default="", tooltip=tooltip)


def cell_numbers(text: str, name: str) -> tuple[int, ...]:
    """``"1, 3"`` -> (0, 2): 1-based cell numbers typed by a user, 0-based for the core."""
    from paco_core.errors import InputError

    parts = [part for part in text.replace(",", " ").split() if part]
    try:
        return tuple(int(part) - 1 for part in parts)
    except ValueError:
        raise InputError(f"`{name}` should be panel numbers such as '1' or '1, 4', got {text!r}.") from None


class PaCoReferenceSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoReferenceSet",
            display_name="PaCo Set of Your Character",
            category=CATEGORY,
            description="A consistent set anchored on your reference image(s): with FLUX.1-dev (+ PaCo LoRA) the "
            "references sit in the first grid cells and the other panels are drawn around them; with Kontext or "
            "Qwen-Image-Edit each panel is an edit of the reference. The judge scores every panel against the "
            "reference and the others, and says which panels keep the reference's identity.",
            inputs=[
                PacoPipeline.Input(
                    "pipeline", tooltip="FLUX.1-dev (with a PaCo LoRA), or Kontext / Qwen-Image-Edit(-Plus)."
                ),
                judge_input(),
                io.Image.Input(
                    "references",
                    tooltip="Your character / product / style image(s); any size (fitted to the panel, aspect "
                    "kept). A batch of several for FLUX or Qwen-Image-Edit-Plus.",
                ),
                theme_text_input(
                    "What the whole set shows, one sentence (e.g. 'Mia, a red-haired courier.')."
                ),
                io.String.Input(
                    "description",
                    multiline=True,
                    default="",
                    tooltip="FLUX: what every panel shares (style, setting). May be empty.",
                ),
                io.String.Input(
                    "panels",
                    multiline=True,
                    default="",
                    tooltip="One prompt per new panel, one per line (the cells after the references, row-major). "
                    "With an edit model each line is the edit instruction.",
                ),
                io.Combo.Input(
                    "layout",
                    options=_grid_layouts(),
                    default="2x2",
                    tooltip="Rows x columns of the grid: references + panels (1 reference + 3 panels: 2x2).",
                ),
                panel_side_input("panel_width", "Width of one panel."),
                panel_side_input("panel_height", "Height of one panel."),
                io.Combo.Input(
                    "reference_fit",
                    options=list(FIT_CHOICES),
                    default=next(iter(FIT_CHOICES)),
                    tooltip="A reference of another shape: pad (all of it, centred) or crop (fill the panel).",
                ),
                steps_input("Denoising steps."),
                *flux_and_edit_guidance_inputs(),
                seed_input("Seed (the edit path: panel k uses seed + k - 1)."),
                io.Float.Input(
                    "identity_threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="A panel whose mean judge score against the references reaches this keeps the "
                    "reference's identity.",
                ),
                judge_theme_source_input(),
            ],
            outputs=[
                io.Image.Output(
                    "grid", tooltip="The set as one grid; the reference cells are the references."
                ),
                io.Image.Output(
                    "panels_out",
                    display_name="panels",
                    tooltip="Every cell (references included), row-major.",
                ),
                io.Image.Output("heatmap", tooltip="The judge's pair matrix over all cells."),
                io.String.Output(
                    "identity",
                    tooltip='Per new panel: {"cell", "identity", "keeps_identity"} as JSON (cells from 1).',
                ),
                io.String.Output(
                    "report", tooltip="Which panels keep the identity, the scores, time and peak memory."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        pipeline,
        judge,
        references,
        theme,
        description,
        panels,
        layout,
        panel_width,
        panel_height,
        reference_fit,
        steps,
        model_guidance,
        guidance,
        seed,
        identity_threshold,
        judge_theme_source="preamble",
    ) -> io.NodeOutput:
        from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
        from paco_core.consistency.report import format_reference_report, reference_json
        from paco_core.images import pil_to_tensor, tensor_to_pil
        from paco_core.reward.report import render_pair_matrix

        request = ReferenceSetRequest(
            theme=theme,
            panels=tuple(prompt_lines(panels)),
            layout=layout,
            description=description,
            reference_fit=FIT_CHOICES[reference_fit],
            panel_width=panel_width,
            panel_height=panel_height,
            steps=steps,
            guidance=None if model_guidance else guidance,
            seed=seed,
            identity_threshold=identity_threshold,
            judge_theme_source=judge_theme_source,
        )
        total = steps * len(request.panels) if pipeline.is_edit_model else steps
        with pipeline_run(pipeline, cls.hidden.unique_id, total) as hooks:
            result = generate_reference_set(pipeline, judge, tensor_to_pil(references), request, hooks=hooks)
        report = format_reference_report(result)
        return io.NodeOutput(
            pil_to_tensor(result.grid),
            pil_to_tensor(result.cells),
            pil_to_tensor(render_pair_matrix(result.set_score)),
            json.dumps(reference_json(result)["panels"]),
            report,
            ui=ui.PreviewText(report),
        )


class PaCoRepairSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoRepairSet",
            display_name="PaCo Repair Odd Panel",
            category=CATEGORY,
            description="Finds the set's weakest panel (lowest judge mean) and redraws only that panel, a few tries "
            "a round, keeping a try only when the set score rises, until the target score or the rounds run out. "
            "Other panels stay pixel-identical; the score never goes down. Cancel keeps the best set so far "
            f"(saved in output/{CANCELLED_FOLDER}).",
            inputs=[
                PacoPipeline.Input(
                    "pipeline",
                    tooltip="FLUX.1-dev (+ PaCo LoRA): redraws the panel inside the grid. Kontext / Qwen-Image-Edit: "
                    "edits the best panels into the new one.",
                ),
                judge_input(),
                io.Image.Input("images", tooltip="The set: one grid image (with its layout) or its panels."),
                theme_text_input(
                    "The set's theme as the judge sees it (wire Generate Set's judge_theme); also the grid prompt's."
                ),
                io.Combo.Input(
                    "layout",
                    options=_grid_layouts(),
                    default="2x2",
                    tooltip="Rows x columns of the set. A single image is cut into this grid; a batch must hold "
                    "exactly its panels.",
                ),
                io.String.Input(
                    "panel_prompts",
                    multiline=True,
                    default="",
                    tooltip="Optional: one prompt per panel, one per line (what each should show). Empty: the theme.",
                ),
                io.Float.Input(
                    "target_score",
                    default=0.9,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Stop once the set score reaches this. A set already there is not touched.",
                ),
                io.Int.Input(
                    "tries_per_round",
                    default=2,
                    min=1,
                    max=64,
                    tooltip="New versions of the weak panel per round.",
                ),
                io.Int.Input(
                    "max_rounds", default=3, min=1, max=64, tooltip="The budget: at most this many rounds."
                ),
                steps_input("Denoising steps per try."),
                *flux_and_edit_guidance_inputs(),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.05,
                    max=1.0,
                    step=0.05,
                    tooltip="FLUX only: how much of the panel is redrawn (1.0: from scratch; lower keeps its layout).",
                ),
                seed_input("Seed of the first try (each try has its own)."),
                io.String.Input(
                    "locked_panels",
                    default="",
                    tooltip="Panels never redrawn, by number from 1 (e.g. '1' for a reference cell). Empty: none.",
                ),
            ],
            outputs=[
                io.Image.Output("grid", tooltip="The repaired set as one grid."),
                io.Image.Output("panels", tooltip="The repaired panels, row-major."),
                io.Image.Output("heatmap_before", tooltip="The judge's pair matrix before the repair."),
                io.Image.Output("heatmap_after", tooltip="The judge's pair matrix after the repair."),
                io.Float.Output("score_before", tooltip="The set score before."),
                io.Float.Output("score_after", tooltip="The set score after (never lower)."),
                io.String.Output(
                    "report",
                    tooltip="One line per round (panel, tries, scores), what changed, time and memory.",
                ),
                io.String.Output("log", tooltip="The repair as JSON (rounds, scores, cost)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        pipeline,
        judge,
        images,
        theme,
        layout,
        panel_prompts,
        target_score,
        tries_per_round,
        max_rounds,
        steps,
        model_guidance,
        guidance,
        strength,
        seed,
        locked_panels,
    ) -> io.NodeOutput:
        from paco_core.consistency.inpaint import denoising_steps
        from paco_core.consistency.repair import RepairOptions, repair_set
        from paco_core.consistency.report import format_repair_report, repair_log_json
        from paco_core.images import pil_to_tensor
        from paco_core.reward.report import render_pair_matrix

        from .judge import sets_from_images

        panels = sets_from_images(images, layout if len(images) == 1 else BATCH_CHOICE)[0]
        options = RepairOptions(
            target_score=target_score,
            tries_per_round=tries_per_round,
            max_rounds=max_rounds,
            steps=steps,
            guidance=None if model_guidance else guidance,
            strength=strength,
            seed=seed,
            locked=cell_numbers(locked_panels, "locked_panels"),
        )
        per_try = steps if pipeline.is_edit_model else denoising_steps(steps, strength)
        with pipeline_run(pipeline, cls.hidden.unique_id, max_rounds * tries_per_round * per_try) as hooks:
            result = repair_set(
                pipeline,
                judge,
                panels,
                theme,
                layout=layout,
                panel_prompts=prompt_lines(panel_prompts),
                options=options,
                hooks=hooks,
            )
        report = format_repair_report(result)
        if result.cancelled:
            keep_cancelled(cls.hidden.unique_id, result, report)
            raise result.cancel_error
        return io.NodeOutput(
            pil_to_tensor(result.grid),
            pil_to_tensor(result.panels),
            pil_to_tensor(render_pair_matrix(result.score_before)),
            pil_to_tensor(render_pair_matrix(result.score_after)),
            result.score_before.score,
            result.score_after.score,
            report,
            json.dumps(repair_log_json(result)),
            ui=ui.PreviewText(report),
        )


def keep_cancelled(node_id, result, report: str) -> None:
    """A cancelled repair: write the best set so far into output/paco-repair-cancelled and say where."""
    import os
    import time

    from paco_core.io import atomic_write, atomic_write_text

    folder = os.path.join(comfy_bridge.output_directory(), CANCELLED_FOLDER)
    stem = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(folder, f"{stem}_grid.png")
    atomic_write(path, lambda tmp: result.grid.save(tmp, format="PNG"))
    atomic_write_text(os.path.join(folder, f"{stem}_report.txt"), report + "\n")
    comfy_bridge.show_progress_text(node_id, f"repair cancelled: best set so far kept in {path}")


def _grid_layouts() -> list[str]:
    from paco_core.prompts import layout_choices

    return [name for name in layout_choices() if name != "1x1"]


NODES = [PaCoReferenceSet, PaCoRepairSet]
