"""Consistency nodes that act on the judge: the most consistent set from a pool of candidate
sets, and an edit chain guarded against drift."""

from __future__ import annotations

import json

from comfy_api.latest import io, ui

from paco_core.prompts import prompt_lines

from . import comfy_bridge
from .generation import edit_option_inputs, edit_options, one_image_from_batch, pipeline_run
from .inputs import output_node_schema
from .judge import BATCH_CHOICE, candidate_sets_inputs, judge_input, sets_from_images
from .sockets import PacoPipeline

CATEGORY = "PaCo/Consistency"


class PaCoPoolAssemble(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoPoolAssemble",
            display_name="PaCo Most Consistent Set From a Pool",
            category=CATEGORY,
            description="Give K candidate sets of the same panels (PaCo Generate Set with num_sets = K). The "
            "judge scores every pair of panels across the candidates once, then one candidate is chosen per "
            "panel so the assembled set is as consistent as possible. Same generation budget as best-of-N; "
            "the report says how much higher the assembled set scores than the best whole set.",
            inputs=[
                *candidate_sets_inputs(
                    "The candidates: one grid per batch item (with their layout), or every set's panels "
                    "in order (layout 'batch' and panels_per_set), e.g. PaCo Generate Set's grids."
                ),
                io.Int.Input(
                    "beam_width",
                    default=64,
                    min=1,
                    max=4096,
                    tooltip="Only for large pools (more than 65536 possible sets): how many partial sets the "
                    "search keeps per panel. Smaller pools are searched exactly.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "grid", tooltip="The assembled set as one grid (the layout given; a row with 'batch')."
                ),
                io.Image.Output("panels", tooltip="The assembled set's panels, in order."),
                io.Image.Output(
                    "best_whole_set",
                    tooltip="The best whole candidate set (what best-of-N keeps), as a grid.",
                ),
                io.Image.Output(
                    "heatmaps",
                    tooltip="Pair matrices: the assembled set's, then the best whole set's (row shown first).",
                ),
                io.Image.Output(
                    "choice_picture",
                    tooltip="Every candidate in a row, the chosen panels framed in green, the assembled set last.",
                ),
                io.Float.Output("score", tooltip="The assembled set's consistency in 0..1."),
                io.String.Output(
                    "choice", tooltip="Which candidate set each panel came from, as a JSON list (1 = set 1)."
                ),
                io.String.Output(
                    "report",
                    tooltip="The choice, the score against best-of-N, the search, the time and peak memory.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, judge, images, theme, layout, panels_per_set, both_orders, beam_width=64
    ) -> io.NodeOutput:
        from paco_core.consistency.pictures import render_pool_choice
        from paco_core.consistency.pool import assemble_from_pool, check_pool
        from paco_core.images import compose_grid, pil_to_tensor
        from paco_core.reward.report import render_pair_matrix

        candidates = check_pool(sets_from_images(images, layout, panels_per_set))
        num_panels = len(candidates[0])
        num_questions = len(candidates) ** 2 * num_panels * (num_panels - 1) // 2 * (2 if both_orders else 1)
        hooks = comfy_bridge.hooks_for(cls.hidden.unique_id, num_questions)
        result = assemble_from_pool(
            judge, candidates, theme, both_orders=both_orders, beam_width=beam_width, hooks=hooks
        )
        grid_layout = layout if layout != BATCH_CHOICE else f"1x{num_panels}"
        best = result.best_whole_index
        heatmaps = [render_pair_matrix(result.set_score), render_pair_matrix(result.whole_set_score(best))]
        report = result.report()
        return io.NodeOutput(
            pil_to_tensor(compose_grid(result.panels, grid_layout)),
            pil_to_tensor(result.panels),
            pil_to_tensor(compose_grid(candidates[best], grid_layout)),
            pil_to_tensor(heatmaps),
            pil_to_tensor(render_pool_choice(candidates, result)),
            result.score,
            json.dumps([candidate + 1 for candidate in result.choice]),
            report,
            ui=ui.PreviewText(report),
        )


class PaCoGuardedEditChain(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoGuardedEditChain",
            display_name="PaCo Guarded Edit Chain",
            category=CATEGORY,
            description="An edit chain that does not drift: each step is judged against the original image "
            "(does it still look like it?) and the previous step (did the edit work?). A step below the "
            "threshold is tried again with other seeds; if it still drifts, it is redone from the original "
            "with all instructions so far. The report shows every step's scores against the original.",
            inputs=[
                PacoPipeline.Input("pipeline", tooltip="A Kontext or Qwen-Image-Edit pipeline."),
                judge_input(),
                io.Image.Input("image", tooltip="The original image the chain starts from (a batch of one)."),
                io.String.Input(
                    "instructions", multiline=True, default="", tooltip="One instruction per line, in order."
                ),
                io.Float.Input(
                    "threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="The lowest score a step may keep without trying again: the weaker of its "
                    "consistency with the original and its own edit score. 0 = never retry (only judge).",
                ),
                io.Int.Input(
                    "tries_per_step",
                    default=3,
                    min=1,
                    max=16,
                    tooltip="Most seeds tried for a step below the threshold (the best is kept). 1 = never retry.",
                ),
                io.Boolean.Input(
                    "reanchor",
                    default=True,
                    tooltip="When every try stays below the threshold, redo the step from the original image "
                    "with all instructions so far (as many tries again).",
                ),
                io.Boolean.Input(
                    "include_reference",
                    default=True,
                    tooltip="Put the original first in the output sequence.",
                ),
                *edit_option_inputs(),
            ],
            outputs=[
                io.Image.Output("images", tooltip="[original,] step 1, step 2, ... (the kept tries)."),
                io.Image.Output(
                    "step_scores",
                    tooltip="A table: each step's score against the original and the previous image, and tries.",
                ),
                io.String.Output(
                    "origin_scores",
                    tooltip="Each step's consistency with the original, as a JSON list in step order.",
                ),
                io.String.Output(
                    "report",
                    tooltip="Each step's scores, tries, seed and re-anchoring; the time and peak memory.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        pipeline,
        judge,
        image,
        instructions,
        threshold,
        tries_per_step,
        reanchor,
        include_reference,
        **edit_settings,
    ) -> io.NodeOutput:
        from paco_core.consistency.drift import GuardOptions, guarded_edit_chain
        from paco_core.consistency.pictures import render_chain_scores
        from paco_core.images import pil_to_tensor

        origin = one_image_from_batch(image, "PaCo Guarded Edit Chain", "original")
        lines = prompt_lines(instructions)
        guard = GuardOptions(threshold=threshold, tries=tries_per_step, reanchor=reanchor)
        options = edit_options(**edit_settings)
        tries = tries_per_step * (2 if reanchor else 1)
        with pipeline_run(
            pipeline, cls.hidden.unique_id, options.steps * tries * max(len(lines), 1)
        ) as hooks:
            chain = guarded_edit_chain(pipeline, judge, origin, lines, options, guard, hooks=hooks)
        images = ([chain.origin] if include_reference else []) + chain.images
        report = chain.report()
        return io.NodeOutput(
            pil_to_tensor(images),
            pil_to_tensor(render_chain_scores(chain)),
            json.dumps([round(score, 6) for score in chain.origin_scores]),
            report,
            ui=ui.PreviewText(report),
        )


NODES = [PaCoPoolAssemble, PaCoGuardedEditChain]
