"""Judge nodes: load the PaCo-Reward judge, score a set's consistency, score edits, ask the
judge for its reasons, and rank candidate sets (best-of-N)."""

from __future__ import annotations

import json
import os

from comfy_api.latest import io, ui

from paco_core.prompts import layout_choices, prompt_lines

from . import comfy_bridge
from .inputs import dtype_input, output_node_schema
from .sockets import PacoJudge

JUDGE_FOLDER = "text_encoders"
"""ComfyUI models folder searched for judge folders (e.g. models/text_encoders/PaCo-Reward-7B/)."""

TYPED_SOURCE_CHOICE = "(path_or_url)"
"""Short, so that a fresh node shows its widget names: the judge is the path_or_url typed below."""
BATCH_CHOICE = "batch"
"""Layout choice meaning: the IMAGE batch items are the panels (no grid to split)."""

ANSWER_CHOICES = {"exact Yes/No": "exact", "Yes/No + case variants": "case"}
QUESTION_CHOICES = {
    "set consistency (text = theme)": "set",
    "edit consistency (text = instruction)": "edit_consistency",
    "edit following (text = instruction)": "edit_following",
}
CATEGORY = "PaCo/Judge"


def judge_folder_choices() -> list[str]:
    """Sub-folders of models/text_encoders that hold a Qwen2.5-VL model, by relative name."""
    folders: dict[str, str] = {}
    for name in comfy_bridge.model_choices(JUDGE_FOLDER):
        relative = os.path.dirname(name)
        if relative and relative not in folders:
            folders[relative] = os.path.dirname(comfy_bridge.resolve_model_path(JUDGE_FOLDER, name))
    found = []
    for relative, folder in sorted(folders.items()):
        try:
            with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
                if json.load(handle).get("model_type") == "qwen2_5_vl":
                    found.append(relative)
        except (OSError, ValueError):
            continue
    return found


def judge_folder_path(judge_name: str) -> str:
    """The full path of a judge folder chosen in the dropdown."""
    from paco_core.errors import ModelLoadError

    for name in comfy_bridge.model_choices(JUDGE_FOLDER):
        if os.path.dirname(name) == judge_name:
            return os.path.dirname(comfy_bridge.resolve_model_path(JUDGE_FOLDER, name))
    raise ModelLoadError(
        f"judge folder {judge_name!r} is no longer in models/{JUDGE_FOLDER}; refresh the node or type its path."
    )


def judge_source(typed: str) -> str:
    """A typed judge source, contained: a loopback server URL (others with
    PACO_ALLOW_REMOTE_JUDGE=1), a folder inside the models folders, or a hub id."""
    from paco_core import settings
    from paco_core.containment import check_judge_url
    from paco_core.reward import is_server_url

    if is_server_url(typed):
        return check_judge_url(
            typed, setting=settings.ALLOW_REMOTE_JUDGE, allow_remote=settings.allow_remote_judge()
        )
    return comfy_bridge.resolve_model_path(JUDGE_FOLDER, typed, what="judge", hub=True)


def judge_input() -> io.Input:
    return PacoJudge.Input("judge", tooltip="The judge from PaCo Judge Loader (local model or server).")


def layout_input(tooltip: str) -> io.Combo.Input:
    return io.Combo.Input(
        "layout", options=[BATCH_CHOICE, *layout_choices()], default=BATCH_CHOICE, tooltip=tooltip
    )


def both_orders_input() -> io.Boolean.Input:
    return io.Boolean.Input(
        "both_orders",
        default=False,
        tooltip="Ask each pair in both orders and average (twice the judge calls; removes order bias).",
    )


def theme_input() -> io.String.Input:
    # One line: a linked multiline text box would leave an empty band in the node.
    return io.String.Input(
        "theme",
        default="",
        tooltip="The set's theme as the judge sees it: wire PaCo Generate Set's or PaCo Grid Prompt's "
        "judge_theme (by default the grid prompt's text before its first panel tag, as in PaCo-RL's "
        "training). Empty: the theme-less prompt.",
    )


def candidate_sets_inputs(images_tooltip: str) -> list:
    """The inputs of the nodes that judge K candidate sets (PaCo Rank Sets, PaCo Most Consistent Set From a
    Pool): judge, images, theme, layout, panels_per_set, both_orders, in that order."""
    return [
        judge_input(),
        io.Image.Input("images", tooltip=images_tooltip),
        theme_input(),
        layout_input("A layout: each batch item is one candidate grid. batch: use panels_per_set."),
        io.Int.Input(
            "panels_per_set",
            default=4,
            min=2,
            max=64,
            tooltip="With layout 'batch': how many consecutive batch items make one candidate set.",
        ),
        both_orders_input(),
    ]


def sets_from_images(images, layout: str, panels_per_set: int | None = None) -> list[list]:
    """IMAGE tensor -> sets of PIL panels: one set per grid (layout), or per ``panels_per_set`` items."""
    from paco_core.errors import InputError
    from paco_core.images import split_grid, tensor_to_pil

    pictures = tensor_to_pil(images)
    if layout != BATCH_CHOICE:
        return [split_grid(grid, layout) for grid in pictures]
    size = panels_per_set or len(pictures)
    if len(pictures) % size:
        raise InputError(
            f"the batch of {len(pictures)} images does not split into sets of {size} panels; give a multiple "
            f"of {size} images or change panels_per_set."
        )
    return [pictures[start : start + size] for start in range(0, len(pictures), size)]


class PaCoJudgeLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        sources = [*judge_folder_choices(), TYPED_SOURCE_CHOICE]
        return io.Schema(
            node_id="PaCoJudgeLoader",
            display_name="PaCo Judge Loader",
            category=CATEGORY,
            description="Load the PaCo-Reward consistency judge (Qwen2.5-VL-7B): a merged judge folder, a base "
            "model plus the PaCo-Reward LoRA, or an OpenAI-compatible server URL (e.g. vllm serve). Cached by "
            "(path, LoRA, dtype, device).",
            inputs=[
                io.Combo.Input(
                    "judge_name",
                    options=sources,
                    default=sources[0],
                    tooltip="A judge folder from models/text_encoders (holding config.json of a Qwen2.5-VL model); "
                    f"{TYPED_SOURCE_CHOICE}: the path, hub id or server URL typed below.",
                ),
                io.String.Input(
                    "path_or_url",
                    default="",
                    tooltip="Overrides the dropdown: a local folder, a hub id (downloaded once into the cache) "
                    "(X-GenGroup/PaCo-Reward-7B) or a server URL (http://127.0.0.1:8000), which must answer when the "
                    "loader runs.",
                ),
                io.String.Input(
                    "lora_path",
                    default="",
                    tooltip="Optional peft adapter folder (PaCo-Reward-7B-Lora) put on a base Qwen2.5-VL-7B-Instruct.",
                ),
                dtype_input("Weight precision; auto = bf16 on a GPU, fp32 on the CPU."),
                io.Combo.Input(
                    "answers",
                    options=list(ANSWER_CHOICES),
                    default=next(iter(ANSWER_CHOICES)),
                    tooltip="Which first answer tokens count: exactly Yes/No (as in PaCo's RL) or also yes/YES/Y/y, "
                    "no/NO/N/n (as in its benchmark).",
                ),
                io.Int.Input(
                    "batch_size",
                    default=8,
                    min=1,
                    max=256,
                    tooltip="Image pairs per forward pass of a local judge (lower it if the GPU runs out of memory).",
                ),
                io.String.Input(
                    "server_model",
                    default="",
                    tooltip="Server only: the served model name; empty asks the server.",
                ),
                io.Boolean.Input(
                    "keep_loaded",
                    default=True,
                    tooltip="Keep a local judge in memory for the next run. Off: it is freed once the workflow "
                    "no longer holds it.",
                ),
            ],
            outputs=[PacoJudge.Output("judge", tooltip="The judge, for the PaCo scoring nodes.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls, judge_name, path_or_url, lora_path, dtype, answers, batch_size, server_model, keep_loaded
    ) -> io.NodeOutput:
        from paco_core.errors import InputError

        source = path_or_url.strip()
        if not source and judge_name == TYPED_SOURCE_CHOICE:
            raise InputError(
                "the judge dropdown says to type a path or URL, but path_or_url is empty: type one."
            )
        from paco_core.reward import is_server_url, open_judge

        source = judge_source(source) if source else judge_folder_path(judge_name)
        lora = lora_path.strip()
        if lora:
            lora = comfy_bridge.resolve_model_path(
                "loras", lora, what="judge LoRA", hub=True, also=[JUDGE_FOLDER]
            )
        device = None
        if not is_server_url(source):  # a local judge runs on ComfyUI's device
            device = str(comfy_bridge.comfy_device())
            if device != "cpu":
                comfy_bridge.free_comfy_memory()
        with comfy_bridge.loading_progress(
            cls.hidden.unique_id, f"judge {comfy_bridge.model_label(source)}", 1
        ) as hooks:
            judge = open_judge(
                source,
                lora=lora or None,
                server_model=server_model.strip() or None,
                dtype=dtype,
                device=device,
                keep_loaded=keep_loaded,
                answers=ANSWER_CHOICES[answers],
                batch_size=batch_size,
            )
            hooks.step(1, 1)
        return io.NodeOutput(judge)


class PaCoSetConsistency(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoSetConsistency",
            display_name="PaCo Set Consistency",
            category=CATEGORY,
            description="How consistent a set of images is (identity, style, logic): the judge scores every "
            "pair; the set score is their mean; each image's score is the mean of its pairs (the lowest is the "
            "odd one out).",
            inputs=[
                judge_input(),
                io.Image.Input(
                    "images", tooltip="The panels as an IMAGE batch, or one grid image with its layout."
                ),
                theme_input(),
                layout_input(
                    "batch: the batch items are the panels. A layout: cut the grid image into panels."
                ),
                both_orders_input(),
            ],
            outputs=[
                io.Float.Output("score", tooltip="The set score in 0..1 (mean over all pairs)."),
                io.String.Output(
                    "per_image",
                    tooltip="Each image's score (mean of its pairs), as a JSON list in batch order.",
                ),
                io.Int.Output("odd_one_out", tooltip="0-based index of the least consistent image."),
                io.Image.Output(
                    "heatmap",
                    tooltip="The pair matrix with each score written in (row shown first, column second).",
                ),
                io.String.Output("report", tooltip="A short text report."),
            ],
        )

    @classmethod
    def execute(cls, judge, images, theme, layout, both_orders) -> io.NodeOutput:
        from paco_core.errors import InputError
        from paco_core.images import pil_to_tensor
        from paco_core.reward.report import format_set_report, render_pair_matrix
        from paco_core.reward.scoring import score_set

        sets = sets_from_images(images, layout)
        if len(sets) != 1:
            raise InputError(
                f"got {len(sets)} grid images; PaCo Set Consistency scores one set. Use PaCo Rank Sets for several."
            )
        num_pairs = len(sets[0]) * (len(sets[0]) - 1) // 2 * (2 if both_orders else 1)
        hooks = comfy_bridge.hooks_for(cls.hidden.unique_id, num_pairs)
        result = score_set(judge, sets[0], theme, both_orders=both_orders, hooks=hooks)
        report = format_set_report(result)
        per_image = json.dumps([round(score, 6) for score in result.per_image])
        heatmap = pil_to_tensor(render_pair_matrix(result))
        return io.NodeOutput(
            result.score, per_image, result.odd_one_out, heatmap, report, ui=ui.PreviewText(report)
        )


class PaCoEditScore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoEditScore",
            display_name="PaCo Edit Score",
            category=CATEGORY,
            description="How good an edit is: consistency with the original outside the asked change, instruction "
            "following, and overall = sqrt(consistency x following). Batches score item by item (means returned).",
            inputs=[
                judge_input(),
                io.Image.Input("original", tooltip="The image(s) before the edit."),
                io.Image.Input("edited", tooltip="The edited image(s), one per original."),
                io.String.Input(
                    "instruction",
                    default="",
                    tooltip="The edit instruction (wire PaCo Edit Chain's first_instruction or instructions); "
                    "for a batch, one line per item or one line for all.",
                ),
            ],
            outputs=[
                io.Float.Output(
                    "consistency", tooltip="P(Yes) that the edit keeps everything else (batch mean)."
                ),
                io.Float.Output(
                    "following", tooltip="P(Yes) that the edit follows the instruction (batch mean)."
                ),
                io.Float.Output(
                    "overall", tooltip="sqrt(consistency x following) (batch mean of per-item values)."
                ),
                io.String.Output(
                    "report", tooltip="One sentence per edit (numbered from 1) with its three scores."
                ),
            ],
        )

    @classmethod
    def execute(cls, judge, original, edited, instruction) -> io.NodeOutput:
        from paco_core.images import tensor_to_pil
        from paco_core.reward.report import format_edit_report
        from paco_core.reward.scoring import score_edits

        originals, editeds = tensor_to_pil(original), tensor_to_pil(edited)
        lines = prompt_lines(instruction)
        instructions = lines[0] if len(lines) == 1 else lines
        hooks = comfy_bridge.hooks_for(cls.hidden.unique_id, 2 * len(originals))
        results = score_edits(judge, originals, editeds, instructions or "", hooks=hooks)
        count = len(results)
        means = [
            sum(getattr(item, name) for item in results) / count
            for name in ("consistency", "following", "overall")
        ]
        report = format_edit_report(results, lines or [""])
        return io.NodeOutput(*means, report, ui=ui.PreviewText(report))


class PaCoJudgeReasons(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoJudgeReasons",
            display_name="PaCo Judge Reasons",
            category=CATEGORY,
            description="Asks the judge to write its answer and reasons for one pair of images (generation; "
            "slower than scoring).",
            inputs=[
                judge_input(),
                io.Image.Input(
                    "first", tooltip="The first image (panel i, or the original); its first batch item."
                ),
                io.Image.Input(
                    "second", tooltip="The second image (panel j, or the edited); its first batch item."
                ),
                io.Combo.Input(
                    "question",
                    options=list(QUESTION_CHOICES),
                    default=next(iter(QUESTION_CHOICES)),
                    tooltip="Which PaCo-Reward prompt to ask.",
                ),
                io.String.Input(
                    "text", multiline=True, default="", tooltip="The theme or the edit instruction."
                ),
                io.Int.Input(
                    "max_new_tokens", default=256, min=1, max=4096, tooltip="The most tokens to write."
                ),
            ],
            outputs=[io.String.Output("reasons", tooltip="The judge's answer (Yes/No) and its reasons.")],
        )

    @classmethod
    def execute(cls, judge, first, second, question, text, max_new_tokens) -> io.NodeOutput:
        from paco_core.images import tensor_to_pil
        from paco_core.reward.scoring import explain_pair

        hooks = comfy_bridge.hooks_for(cls.hidden.unique_id, 1)
        hooks.check_cancel()
        reasons = explain_pair(
            judge,
            tensor_to_pil(first)[0],
            tensor_to_pil(second)[0],
            kind=QUESTION_CHOICES[question],
            text=text,
            max_new_tokens=max_new_tokens,
        )
        hooks.step(1, 1)
        return io.NodeOutput(reasons, ui=ui.PreviewText(reasons))


class PaCoRankSets(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return output_node_schema(
            node_id="PaCoRankSets",
            display_name="PaCo Rank Sets",
            category=CATEGORY,
            description="Best-of-N: scores each candidate set's consistency and returns the best one. Give a "
            "batch of grid images with their layout, or all candidates' panels with panels_per_set.",
            inputs=[
                *candidate_sets_inputs(
                    "Candidate grids (one per batch item), or every set's panels in order."
                ),
                io.Int.Input(
                    "first_seed",
                    optional=True,
                    force_input=True,
                    tooltip="Optional: the seed of the first candidate (PaCo Generate Set's first_seed), so the "
                    "report names each set's seed (set k has seed first_seed + k - 1).",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "best", tooltip="The best set: its grid (layout given) or its panels (batch)."
                ),
                io.Int.Output(
                    "best_index",
                    tooltip="0-based batch index of the best set, for ImageFromBatch (the report's set 1 is "
                    "index 0).",
                ),
                io.String.Output(
                    "scores", tooltip="Every candidate's set score as a JSON list, in the given order."
                ),
                io.String.Output(
                    "report",
                    tooltip="The winner and the ranking, best first; sets numbered from 1 in the given order, "
                    "with their seeds when first_seed is wired.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, judge, images, theme, layout, panels_per_set, both_orders, first_seed=None
    ) -> io.NodeOutput:
        from paco_core.reward.report import format_ranking_report
        from paco_core.reward.scoring import rank_sets

        sets = sets_from_images(images, layout, panels_per_set)
        num_pairs = sum(len(panels) * (len(panels) - 1) // 2 for panels in sets) * (2 if both_orders else 1)
        hooks = comfy_bridge.hooks_for(cls.hidden.unique_id, num_pairs)
        ranking = rank_sets(judge, sets, theme, both_orders=both_orders, hooks=hooks)
        best = ranking[0].index
        if layout != BATCH_CHOICE:
            best_images = images[best : best + 1]
        else:
            best_images = images[best * panels_per_set : (best + 1) * panels_per_set]
        scores = [item.score for item in sorted(ranking, key=lambda item: item.index)]
        report = format_ranking_report(ranking, first_seed)
        return io.NodeOutput(
            best_images, best, json.dumps([round(s, 6) for s in scores]), report, ui=ui.PreviewText(report)
        )


NODES = [PaCoJudgeLoader, PaCoSetConsistency, PaCoEditScore, PaCoJudgeReasons, PaCoRankSets]
