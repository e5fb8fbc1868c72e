"""Training for a character: PaCo Prompt Set (training rows from a short description) and
the reference images PaCo Train LoRA saves for its reference reward.

PaCo Prompt Set calls :mod:`paco_core.jobs.prompt_sets` and writes the rows into ComfyUI's
job home (``<user>/paco/prompt-sets/<digest>/``, named by their content so the same
description gives the same files). Reference images go to ``<user>/paco/references/<digest>/``
the same way: a job's config names files that stay put, so it resumes and re-runs alike.
See docs/train-your-character.md.
"""

from __future__ import annotations

import hashlib
import json

from comfy_api.latest import io, ui

from paco_core.errors import InputError

from . import jobs_bridge
from .sockets import PacoPromptSet

CATEGORY = "PaCo/Training"


def _lines(values) -> str:
    return "\n".join(values)


class PaCoPromptSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from paco_core.jobs import prompt_sets as ps

        return io.Schema(
            node_id="PaCoPromptSet",
            display_name="PaCo Prompt Set",
            category=CATEGORY,
            description="Training prompts for a character from a short description: every scene gets sets whose "
            "panels combine camera angles, poses and expressions. Whole scenes are held out for evaluation, so "
            "the held-out score shows the LoRA in places it never trained in. Connect it to PaCo Train LoRA.",
            inputs=[
                io.String.Input(
                    "subject",
                    default="",
                    tooltip="The character every panel shows, e.g. 'a "
                    "red-haired girl with a green scarf and round glasses'.",
                ),
                io.String.Input(
                    "style",
                    default="",
                    optional=True,
                    tooltip="What every panel shares besides the subject, e.g. 'Watercolor illustration.'",
                ),
                io.String.Input(
                    "scenes",
                    multiline=True,
                    default=_lines(ps.DEFAULT_SCENES),
                    tooltip="One scene per line (or separated by ;).",
                ),
                io.String.Input(
                    "poses", default="; ".join(ps.DEFAULT_POSES), tooltip="Poses, separated by ;"
                ),
                io.String.Input(
                    "expressions",
                    default="; ".join(ps.DEFAULT_EXPRESSIONS),
                    tooltip="Expressions, separated by ;",
                ),
                io.String.Input(
                    "camera_angles",
                    default="; ".join(ps.DEFAULT_CAMERA_ANGLES),
                    tooltip="Camera angles, separated by ;",
                ),
                io.String.Input("layout", default="2x2", tooltip="Panels per set, e.g. 2x2 or 1x3."),
                io.Int.Input("rows_per_scene", default=4, min=1, max=100, tooltip="Sets per scene."),
                io.Int.Input(
                    "held_out_scenes",
                    default=1,
                    min=0,
                    max=100,
                    tooltip="Scenes kept for evaluation only (0: no held-out rows).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Seed of the panel order and the held-out scenes.",
                ),
            ],
            outputs=[
                PacoPromptSet.Output(
                    "prompt_set", tooltip="The rows' files, for PaCo Train LoRA's prompt_set input."
                ),
                io.String.Output("report", tooltip="Row counts, held-out scenes and near-duplicate rows."),
            ],
        )

    @classmethod
    def execute(
        cls,
        subject,
        scenes,
        poses,
        expressions,
        camera_angles,
        layout,
        rows_per_scene,
        held_out_scenes,
        seed,
        style="",
    ) -> io.NodeOutput:
        from paco_core.jobs.prompt_sets import PromptSetSpec, build_prompt_set, write_prompt_set

        spec = PromptSetSpec(
            subject,
            style=style,
            scenes=scenes,
            poses=poses,
            expressions=expressions,
            camera_angles=camera_angles,
            layout=layout,
            rows_per_scene=rows_per_scene,
            held_out_scenes=held_out_scenes,
            seed=seed,
        )
        prompt_set = build_prompt_set(spec)
        digest = hashlib.sha256(
            json.dumps([prompt_set.train, prompt_set.eval], sort_keys=True).encode()
        ).hexdigest()
        files = write_prompt_set(prompt_set, prompt_sets_folder() / digest[:16])
        report = (
            f"{len(prompt_set.train)} training sets, {len(prompt_set.eval)} held-out sets "
            f"(scenes: {', '.join(prompt_set.held_out_scenes) or 'none'}); {prompt_set.num_duplicates_removed} "
            f"repeated list entries dropped; {len(prompt_set.near_duplicates)} near-duplicate pairs"
        )
        value = {
            "train_file": str(files.train_file),
            "eval_file": str(files.eval_file or ""),
            "report": report,
        }
        return io.NodeOutput(value, report, ui=ui.PreviewText(report))


def prompt_sets_folder():
    """Where PaCo Prompt Set writes its rows: a data folder of the containment rule, as the input folder."""
    return jobs_bridge.jobs_home() / "prompt-sets"


def save_references(images) -> list[str]:
    """Save an IMAGE batch as PNG files named by their pixels; returns their paths.

    Raises:
        InputError: the batch holds no image.
    """
    from paco_core.images import tensor_to_pil
    from paco_core.io import atomic_write

    pictures = tensor_to_pil(images)
    if not pictures:
        raise InputError("references: the image batch is empty; connect at least one reference image")
    digest = hashlib.sha256()
    for picture in pictures:
        digest.update(f"{picture.mode}{picture.size}".encode() + picture.tobytes())
    folder = jobs_bridge.jobs_home() / "references" / digest.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, picture in enumerate(pictures):
        path = folder / f"reference-{number:02d}.png"
        if not path.is_file():
            atomic_write(path, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
        paths.append(str(path))
    return paths


NODES = [PaCoPromptSet]
