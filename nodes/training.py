"""Training nodes: start a PaCo-GRPO LoRA job in the background, and watch it.

PaCo Train LoRA validates, submits a job to the store in ComfyUI's user directory and
returns at once (the trainer runs as its own process: the queue moves on). Its base pipeline
is a diffusers folder or ComfyUI's own model files (the dropdowns and path resolution of
PaCo Pipeline Loader (ComfyUI files), from ``model_files``). PaCo Training Job reads a job's
status, latest sample, reward curves and exported LoRA. See docs/jobs.md.
"""

from __future__ import annotations

import logging
import os
import time

from comfy_api.latest import io, ui

from paco_core.errors import ConfigError, InputError
from paco_core.jobs.export import lora_name as lora_name_of
from paco_core.jobs.store import check_job_name
from paco_core.jobs.training_request import judge_settings  # noqa: F401  (the tests' and callers' name)

from . import comfy_bridge, jobs_bridge, model_files, prompt_sets
from .generation import TYPED_PATH_CHOICE
from .inputs import output_node_schema
from .sockets import ComboValue, PacoJob, PacoJudge

logger = logging.getLogger(__name__)


CATEGORY = "PaCo/Training"
TEXT_PROMPTS_CHOICE = "(training_prompts)"
COMFY_FILES_CHOICE = "(ComfyUI files)"
FILES_KIND_AUTO = "auto"
LATEST_JOB_CHOICE = "(latest job)"
LORA_CHOICES = {"best": "best", "latest checkpoint": "latest"}


def prompt_file_choices() -> list[str]:
    """``.jsonl`` files in ComfyUI's input folder (and its sub-folders)."""
    root = comfy_bridge.input_directory()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames if f.endswith(".jsonl")]
    return sorted(p.replace(os.sep, "/") for p in found)


def job_choices() -> list[str]:
    try:
        jobs = jobs_bridge.job_store().list()
    except Exception:  # a broken store must not break the node list
        return [LATEST_JOB_CHOICE]
    return [LATEST_JOB_CHOICE, *(jobs_bridge.job_label(job) for job in reversed(jobs))]


def files_kind_choices() -> list[str]:
    """The ComfyUI-files kind dropdown: auto, then the kinds training supports."""
    from paco_core.config import literal_choices
    from paco_core.rl.config import ModelConfig

    return [FILES_KIND_AUTO, *literal_choices(ModelConfig, "kind")]


def default_comfy_files() -> dict[str, str]:
    """The ComfyUI-files inputs at their defaults (no file chosen)."""
    return {
        "files_kind": FILES_KIND_AUTO,
        **model_files.FILE_PLACEHOLDERS,
        "files_config": model_files.SHIPPED_CONFIG,
    }


FILES_INPUTS = {
    "transformer": "diffusion_model", "checkpoint": "checkpoint", "vae": "vae", "kind": "files_kind",
    "config_folder": "files_config",
}  # fmt: skip
"""The node input of each ComfyModelFiles field a files error names (``error.fields``); the text encoders,
numbered among those chosen, are mapped by :func:`files_inputs`."""


def files_inputs(fields: tuple[str, ...], chosen: dict[str, str]) -> list[str]:
    """The node inputs a ComfyUI-files error is about, from its ``fields``: ``text_encoders.N`` is the
    N-th chosen text encoder input, ``text_encoders`` (one is missing) the text encoder inputs left empty."""
    encoders = [
        name
        for name in ("text_encoder_1", "text_encoder_2")
        if chosen.get(name, model_files.NO_FILE) not in model_files.NOT_A_FILE
    ]
    inputs = []
    for field in fields:
        name, _, number = field.partition(".")
        if name == "text_encoders" and number:
            inputs.append(encoders[int(number)])
        elif name == "text_encoders":
            inputs += [n for n in ("text_encoder_1", "text_encoder_2") if n not in encoders]
        elif name in FILES_INPUTS:
            inputs.append(FILES_INPUTS[name])
    return list(dict.fromkeys(inputs))


def comfy_files_model(*, preset: str, preset_kind: str, files_kind: str, files_config: str, **chosen) -> dict:
    """The training config's ``model`` keys for ComfyUI's files, checked before any job exists.

    The names are resolved inside ComfyUI's models folders as the ComfyUI-files loader does; the
    files' headers, the config folder and the tokenizers are checked, and the kind they make
    must be the preset's.

    Raises:
        InputError: a wrong or incomplete combination (the message names the field).
    """
    from paco_core.errors import ModelLoadError
    from paco_core.models.comfy_files import ComfyModelFiles, check_model_files

    paths = model_files.chosen_files(**chosen)
    if "diffusion_model" not in paths and "checkpoint" not in paths:
        raise InputError(
            f"diffusion_model: pipeline is {COMFY_FILES_CHOICE} but no diffusion model or checkpoint is chosen: "
            "choose a diffusion model (with its text encoders and VAE) or an all-in-one checkpoint",
            field="diffusion_model",
        )
    try:
        config_folder = model_files.chosen_config_folder(files_config)
    except InputError as error:
        raise InputError(f"files_config: {error}", field="files_config") from None
    files = ComfyModelFiles(
        transformer=paths.get("diffusion_model"),
        text_encoders=tuple(paths[name] for name in ("text_encoder_1", "text_encoder_2") if name in paths),
        vae=paths.get("vae"),
        checkpoint=paths.get("checkpoint"),
        kind=files_kind,
        config_folder=config_folder,
        comfyui_dir=comfy_bridge.comfyui_package_dir(),
    )
    try:
        kind = check_model_files(files)
    except (InputError, ModelLoadError) as error:
        fields = files_inputs(error.fields, chosen)
        raise InputError(f"{', '.join(fields) or 'ComfyUI files'}: {error}", field=tuple(fields)) from None
    if kind != preset_kind:
        raise InputError(
            f"files_kind: preset {preset!r} trains a {preset_kind} model, but the ComfyUI files make a {kind} "
            f"pipeline ({files.describe()}, files_kind {files_kind}): choose files_kind {preset_kind} if the files "
            "are that model (auto takes a FLUX file as flux, a Qwen-Image file as qwen-image-edit), or a preset "
            f"for {kind}",
            field="files_kind",
        )
    return {
        "path": "", "kind": kind, "transformer_file": files.transformer or "",
        "text_encoder_files": list(files.text_encoders), "vae_file": files.vae or "",
        "checkpoint_file": files.checkpoint or "", "config_folder": files.config_folder or "",
        "comfyui_dir": files.comfyui_dir,
    }  # fmt: skip


def folder_model(*, pipeline: str, model_path: str, preset: str, preset_kind: str) -> dict:
    """The training config's ``model`` keys for a diffusers folder (the dropdown, or model_path typed)."""
    from paco_core.models.pipelines import detect_pipeline_kind

    if model_path.strip():
        source = comfy_bridge.resolve_model_path("diffusers", model_path.strip())
    elif pipeline == TYPED_PATH_CHOICE:
        raise InputError(
            "pipeline: the dropdown says to type a path, but model_path is empty: type one.", field="pipeline"
        )
    else:
        source = comfy_bridge.resolve_model_path("diffusers", pipeline)
    kind = detect_pipeline_kind(source)
    if preset_kind != kind and not (preset_kind.startswith("qwen") and kind.startswith("qwen")):
        raise InputError(
            f"preset {preset!r} trains a {preset_kind} model, but the pipeline {source!r} is {kind}: "
            "pick a preset for that kind or another pipeline",
            field="preset",
        )
    return {"path": str(source), "kind": kind}


def base_model(*, pipeline: str, model_path: str, preset: str, preset_kind: str, comfy_files: dict) -> dict:
    """The ``model`` keys of the base pipeline: a diffusers folder, or ComfyUI's files."""
    chosen = {name: comfy_files[name] for name in model_files.FILE_FIELDS}
    if pipeline == COMFY_FILES_CHOICE:
        if model_path.strip():
            raise InputError(
                f"model_path: {model_path.strip()!r} is typed, but pipeline is {COMFY_FILES_CHOICE}: clear "
                "model_path to train on the chosen files, or choose a diffusers pipeline",
                field="model_path",
            )
        return comfy_files_model(
            preset=preset,
            preset_kind=preset_kind,
            files_kind=comfy_files["files_kind"],
            files_config=comfy_files["files_config"],
            **chosen,
        )
    chosen_files = [name for name, value in chosen.items() if value not in model_files.NOT_A_FILE]
    if chosen_files:
        field = chosen_files[0]
        raise InputError(
            f"{field}: {chosen[field]!r} is chosen, but the pipeline is a diffusers folder "
            f"({model_path.strip() or pipeline!r}): choose pipeline {COMFY_FILES_CHOICE} to train on ComfyUI's "
            f"files, or set {', '.join(chosen_files)} back to {model_files.NO_FILE} / {model_files.FROM_CHECKPOINT}",
            field=tuple(chosen_files),
        )
    ignored = {
        name: comfy_files[name]
        for name, default in (("files_kind", FILES_KIND_AUTO), ("files_config", model_files.SHIPPED_CONFIG))
        if comfy_files[name] != default
    }
    if ignored:
        logger.warning(
            "PaCo Train LoRA: %s only apply to pipeline %s; ignored for a diffusers folder",
            ", ".join(f"{name}={value!r}" for name, value in ignored.items()),
            COMFY_FILES_CHOICE,
        )
    return folder_model(pipeline=pipeline, model_path=model_path, preset=preset, preset_kind=preset_kind)


def build_train_config(
    *,
    pipeline,
    model_path,
    preset,
    training_prompts,
    prompts_file,
    judge,
    rewards,
    iterations,
    learning_rate,
    group_size,
    train_resolution,
    advanced_json,
    comfy_files=None,
    references=None,
    prompt_set=None,
) -> dict:
    """The training config a PaCo Train LoRA node asks for (not yet validated by TrainConfig): the
    node's inputs resolved in ComfyUI's folders, then :func:`paco_core.jobs.training_request.build_training_config`.

    Args:
        comfy_files: the ComfyUI-files inputs (``default_comfy_files()``'s keys), used when
            ``pipeline`` is ``COMFY_FILES_CHOICE``; default: none chosen.
        references / prompt_set: the reference images (IMAGE) and a PaCo Prompt Set; the prompt
            set replaces the prompts.

    Raises:
        InputError / ConfigError: a node value is wrong (the message names the input).
    """
    from paco_core.jobs.training_request import TrainingRequest, build_training_config
    from paco_core.rl.presets import preset_dict

    model = base_model(
        pipeline=pipeline,
        model_path=model_path,
        preset=preset,
        preset_kind=preset_dict(preset)["model"]["kind"],
        comfy_files={**default_comfy_files(), **(comfy_files or {})},
    )
    input_dir = comfy_bridge.input_directory()
    train_file = None
    if prompt_set is None and prompts_file != TEXT_PROMPTS_CHOICE:
        if prompts_file not in prompt_file_choices():
            raise InputError(
                f"prompts_file: {prompts_file!r} is not a .jsonl file in the input folder; refresh",
                field="prompts_file",
            )
        train_file = os.path.join(input_dir, prompts_file)
    device = jobs_bridge.comfy_device_slot()
    return build_training_config(
        TrainingRequest(
            preset=preset,
            model={**model, "device": device},
            train_file=train_file,
            training_prompts=training_prompts,
            prompts_folder=jobs_bridge.jobs_home() / "prompts",
            image_root=input_dir,
            prompt_set=prompt_set,
            references=None if references is None else prompt_sets.save_references(references),
            rewards=rewards,
            judge=judge,
            iterations=iterations,
            learning_rate=learning_rate,
            group_size=group_size,
            train_resolution=train_resolution,
            host_device=device,
            advanced_json=advanced_json,
            own_run_folder=True,
            rules=containment_rules(),
        )
    )


def containment_rules():
    """The rule every path, URL and reward of a config from ComfyUI obeys (the nodes' rule)."""
    from paco_core.containment import ContainmentRules

    return ContainmentRules.from_settings(
        model_roots=comfy_bridge.all_model_roots(),
        data_roots=[
            comfy_bridge.input_directory(),
            str(jobs_bridge.jobs_home() / "prompts"),
            str(prompt_sets.prompt_sets_folder()),
        ],
        reward_folders=jobs_bridge.reward_folders(),
        fixed_folders=[comfy_bridge.comfyui_package_dir()],
    )


NODE_WORDS = {
    "rewards.judge_path": "the rewards input asks for the judge (consistency or edit): connect a PaCo Judge "
    "Loader to the judge input, or drop those rewards",
}
"""What a config error about a key means on PaCo Train LoRA, in the words of its inputs."""


def in_the_nodes_words(error: ConfigError) -> str:
    """The error as the artist should read it on the node (its config key's node wording)."""
    return NODE_WORDS.get(error.field or "", str(error))


class PaCoTrainLora(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from paco_core.rl.presets import preset_names

        pipelines = comfy_bridge.model_choices("diffusers") + [COMFY_FILES_CHOICE, TYPED_PATH_CHOICE]
        presets = list(preset_names())
        files = model_files.file_choices()
        return output_node_schema(
            node_id="PaCoTrainLora",
            display_name="PaCo Train LoRA",
            category=CATEGORY,
            description="Start PaCo-GRPO LoRA training as a background job and return at once (the queue moves on; "
            "generate while it trains). Queueing the same graph again returns the same job unless new_run is on. "
            "Watch it with PaCo Training Job or the PaCo Jobs sidebar.",
            inputs=[
                io.Combo.Input(
                    "pipeline",
                    options=pipelines,
                    default=pipelines[0],
                    tooltip="The base diffusers pipeline (models/diffusers), as in PaCo Pipeline Loader; "
                    f"{COMFY_FILES_CHOICE}: ComfyUI's own model files chosen below (diffusion_model, "
                    f"text encoders, vae or checkpoint); {TYPED_PATH_CHOICE}: the model_path typed below.",
                ),
                io.String.Input(
                    "model_path",
                    default="",
                    optional=True,
                    tooltip="A local diffusers folder, used instead of the dropdown.",
                ),
                io.Combo.Input(
                    "preset",
                    options=presets,
                    default=presets[0],
                    tooltip="The released PaCo-GRPO run the job starts from (docs/presets.md): t2is-* "
                    "for FLUX sets, edit-* for Kontext / Qwen-Image-Edit.",
                ),
                io.String.Input(
                    "training_prompts",
                    multiline=True,
                    default="",
                    tooltip="One block per prompt, blocks separated by a blank line. Sets: a theme line "
                    "(optionally starting with [2x2]), then one line per panel. Edits: an image name from "
                    "the input folder, then one instruction per line.",
                ),
                io.Combo.Input(
                    "prompts_file",
                    options=[TEXT_PROMPTS_CHOICE, *prompt_file_choices()],
                    default=TEXT_PROMPTS_CHOICE,
                    tooltip="A JSONL file of prompt rows in the input folder (set rows or edit rows), "
                    f"used instead of the text; {TEXT_PROMPTS_CHOICE}: the text above.",
                ),
                io.Image.Input(
                    "references",
                    optional=True,
                    tooltip="Reference images of your character (any size): the reference reward "
                    "judges every generated panel against them (added with weight 1 unless rewards "
                    "names it). Saved with the job, so it resumes on its own.",
                ),
                prompt_sets.PacoPromptSet.Input(
                    "prompt_set",
                    optional=True,
                    tooltip="Rows from PaCo Prompt Set, used instead of the prompts "
                    "above; its held-out scenes become the eval rows.",
                ),
                PacoJudge.Input(
                    "judge",
                    optional=True,
                    tooltip="The judge (PaCo Judge Loader): a local judge folder or a judge server URL. "
                    "The job loads its own copy (or calls the server).",
                ),
                io.String.Input(
                    "rewards",
                    default="",
                    tooltip="Reward weights, e.g. 'consistency=1' or 'consistency=0.2, clip_t=1'. Empty: "
                    "the preset's (t2is presets also use clip_t and pickscore, which need "
                    "rewards.clip_path / pickscore_path in advanced_json).",
                ),
                io.Int.Input(
                    "iterations", default=300, min=1, max=100000, tooltip="Training iterations (steps)."
                ),
                io.Float.Input(
                    "learning_rate",
                    default=3e-4,
                    min=1e-7,
                    max=1.0,
                    step=1e-5,
                    round=False,
                    tooltip="AdamW learning rate (the presets: 3e-4).",
                ),
                io.Int.Input(
                    "group_size",
                    default=16,
                    min=2,
                    max=256,
                    tooltip="Images per prompt compared with each other (the presets: 16).",
                ),
                io.Int.Input(
                    "train_resolution",
                    default=512,
                    min=32,
                    max=2048,
                    step=16,
                    tooltip="Side of the training rollouts (grids are scaled to this area).",
                ),
                io.String.Input(
                    "lora_name",
                    default="paco-lora",
                    tooltip="The job's name and its LoRA files' name: models/loras/paco/<lora_name>/<job id>/ "
                    "(at most 100 characters).",
                ),
                io.String.Input(
                    "advanced_json",
                    multiline=True,
                    default="",
                    tooltip='Any training config keys as JSON, merged last, e.g. {"eval_every": 10, '
                    '"rewards": {"clip_path": "/models/clip"}} (paco train --describe-config lists them).',
                ),
                io.Boolean.Input(
                    "new_run",
                    default=False,
                    tooltip="On: every queue starts a new job. Off: the same settings return the "
                    "existing job.",
                ),
                io.Combo.Input(
                    "files_kind",
                    options=files_kind_choices(),
                    default=FILES_KIND_AUTO,
                    optional=True,
                    tooltip=f"With pipeline {COMFY_FILES_CHOICE}: the files' kind, which must be the "
                    f"preset's. {model_files.TOOLTIPS['kind']}",
                ),
                *model_files.file_inputs(files, optional=True),
                io.Combo.Input(
                    "files_config",
                    options=files["config"],
                    default=model_files.SHIPPED_CONFIG,
                    optional=True,
                    tooltip=model_files.TOOLTIPS["config"],
                ),
                io.Boolean.Input(
                    "dry_run",
                    default=False,
                    optional=True,
                    tooltip="On: queue nothing; probe one prompt's group on the run's device (in a "
                    "separate process) and show the expected s/iteration, total time and peak memory, "
                    "with the settings that make it fit when it would not (docs/jobs.md).",
                ),
            ],
            outputs=[PacoJob.Output("job", tooltip="The job, for PaCo Training Job.")],
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time_ns()  # always run: submitting is cheap, and the job may have been deleted

    @classmethod
    def execute(
        cls,
        pipeline,
        preset,
        training_prompts,
        prompts_file,
        rewards,
        iterations,
        learning_rate,
        group_size,
        train_resolution,
        lora_name,
        advanced_json,
        new_run,
        model_path="",
        judge=None,
        files_kind=FILES_KIND_AUTO,
        diffusion_model=model_files.FROM_CHECKPOINT,
        text_encoder_1=model_files.NO_FILE,
        text_encoder_2=model_files.NO_FILE,
        vae=model_files.FROM_CHECKPOINT,
        checkpoint=model_files.NO_FILE,
        files_config=model_files.SHIPPED_CONFIG,
        references=None,
        prompt_set=None,
        dry_run=False,
    ) -> io.NodeOutput:
        from paco_core.jobs import runner

        node_id = cls.hidden.unique_id
        name = lora_name.strip()
        if not name:
            raise InputError(
                "lora_name is empty: name the LoRA (its files go to models/loras/paco/<lora_name>/)"
            )
        check_job_name(name, field="lora_name")
        comfy_bridge.show_progress_text(node_id, "checking the training settings ...")
        config = build_train_config(
            pipeline=pipeline,
            model_path=model_path,
            preset=preset,
            training_prompts=training_prompts,
            prompts_file=prompts_file,
            judge=judge,
            rewards=rewards,
            iterations=iterations,
            learning_rate=learning_rate,
            group_size=group_size,
            train_resolution=train_resolution,
            advanced_json=advanced_json,
            references=references,
            prompt_set=prompt_set,
            comfy_files={
                "files_kind": files_kind,
                "diffusion_model": diffusion_model,
                "text_encoder_1": text_encoder_1,
                "text_encoder_2": text_encoder_2,
                "vae": vae,
                "checkpoint": checkpoint,
                "files_config": files_config,
            },
        )
        store = jobs_bridge.job_store()
        if dry_run:
            return dry_run_output(node_id, config, store)
        before = {job.id for job in store.list()} if not new_run else set()
        try:
            job = runner.submit(
                store, config, name=name, reuse=not new_run, cwd=store.home, env=jobs_bridge.env_for_jobs()
            )
        except ConfigError as error:
            raise ConfigError(f"PaCo Train LoRA: {in_the_nodes_words(error)}", field=error.field) from None
        reused = job.id in before
        text = (
            f"{job.id} already exists ({job.status}, step {job.step}/{job.total}); turn new_run on to train again"
            if reused
            else f"submitted {job.id} ({job.status}); its LoRAs go to models/loras/paco/{lora_name_of(job)}/{job.id}/"
        )
        comfy_bridge.show_progress_text(node_id, text)
        return io.NodeOutput(job.id, ui=ui.PreviewText(text))


def dry_run_output(node_id, config: dict, store) -> io.NodeOutput:
    """PaCo Train LoRA with dry_run on: the estimate as the node's text; the job output blocks."""
    from paco_core.jobs.dry_run import estimate_in_subprocess

    comfy_bridge.show_progress_text(
        node_id, "estimating: loading the models and probing one prompt's group ..."
    )
    with_folder = {**config, "output_dir": str(store.runs_dir / "estimate-probe")}
    estimate = estimate_in_subprocess(with_folder, env=jobs_bridge.env_for_jobs(), cwd=store.home)
    text = "dry run (nothing queued)\n" + estimate["summary"]
    comfy_bridge.show_progress_text(node_id, "\n".join(text.splitlines()[1:]))  # the estimate, under the node
    return io.NodeOutput(comfy_bridge.execution_blocker(None), ui=ui.PreviewText(text))


def find_job(job: str | None, pick: str):
    """The job a PaCo Training Job node names: its input, else the dropdown."""
    store = jobs_bridge.job_store()
    if job:
        return store.get(job)
    if pick == LATEST_JOB_CHOICE:
        jobs = store.list()
        if not jobs:
            raise InputError("no training job yet: start one with PaCo Train LoRA (or `paco jobs submit`)")
        return max(jobs, key=lambda j: (j.created_at, j.id))
    return store.get(pick.split(" ", 1)[0])


def status_text(job) -> str:
    record = jobs_bridge.job_detail(job)
    lines = [f"{job.id} · {job.name}: {job.status}, step {job.step}/{job.total}"]
    if record.get("eta_s") is not None:
        lines.append(f"about {_duration(record['eta_s'])} left")
    progress = record["progress"]
    if progress.get("state") == "paused":
        lines.append("paused: yielding the GPU to ComfyUI's queue")
    lines += [
        f"{name} = {value:.4g} (step {step})" for name, (step, value) in latest_reward_means(job).items()
    ]
    if job.error:
        lines.append(f"error: {job.error.strip().splitlines()[-1][:300]}")
    lines += [f"warning: {w.get('message', w)}" for w in record["warnings"]]
    files = record["lora_files"]
    lines.append(
        f"LoRA files: {', '.join(files) if files else 'none yet (the first checkpoint exports one)'}"
    )
    lines += announce_lines(job, files)
    return "\n".join(lines)


def announce_lines(job, files: list[str]) -> list[str]:
    """The lineage and, once the job ended, the toast's sentence (paco_core/jobs/announce.py)."""
    from paco_core.jobs.announce import job_end_message, lineage_message

    best = next((name for name in files if name.endswith("-best.safetensors")), None) or (
        files[-1] if files else None
    )
    parent = jobs_bridge.job_store().find(job.parent_id) if job.parent_id else None
    return [line for line in (lineage_message(job, parent), job_end_message(job, best)) if line]


def latest_reward_means(job) -> dict[str, tuple[int, float]]:
    """The latest value of each train and eval reward mean: ``{"train clip_t": (step, value)}``."""
    from paco_core.jobs.curves import reward_series

    return {label: points[-1] for label, points in reward_series(job.run_dir).items()}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def chosen_lora(job, which: str) -> str:
    """The exported file name (relative to the loras folder) of the best or latest LoRA.

    Raises:
        InputError: the job has no checkpoint yet.
    """
    from paco_core.jobs.export import lora_name

    files = {p.name: p for p in jobs_bridge.exported(job)}
    name = lora_name(job)
    steps = sorted(
        (int(n[len(name) + 5 : -12]), p)
        for n, p in files.items()
        if n.startswith(f"{name}-step") and n[len(name) + 5 : -12].isdigit()
    )
    order = []
    if which == "best":
        order.append(files.get(f"{name}-best.safetensors"))
    order += [files.get(f"{name}.safetensors"), steps[-1][1] if steps else None]
    found = next((p for p in order if p is not None), None)
    if found is None:
        raise InputError(
            f"job {job.id} has no checkpoint yet ({job.status}, step {job.step}/{job.total}); "
            "queue again once it saved one"
        )
    return jobs_bridge.lora_choice(found)


def preview_file(job_id: str, what: str, image) -> dict:
    """Save ``image`` into ComfyUI's temp folder; the entry a node's UI shows it with."""
    from paco_core.io import atomic_write

    name = f"paco_{job_id}_{what}_{time.time_ns()}.png"
    atomic_write(os.path.join(comfy_bridge.temp_directory(), name), lambda tmp: image.save(tmp, format="PNG"))
    return {"filename": name, "subfolder": "", "type": "temp"}


class PaCoTrainingJob(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        jobs = job_choices()
        return output_node_schema(
            node_id="PaCoTrainingJob",
            display_name="PaCo Training Job",
            category=CATEGORY,
            description="A training job's status, latest sample grid, reward curves (all shown on the node) and "
            "LoRA (exported to models/loras/paco/). Refreshes on every queue; before the first checkpoint the "
            "nodes that use the LoRA are skipped.",
            inputs=[
                PacoJob.Input(
                    "job", optional=True, tooltip="The job from PaCo Train LoRA; else the dropdown."
                ),
                io.Combo.Input(
                    "pick",
                    options=jobs,
                    default=jobs[0],
                    tooltip="Used when no job is wired: a job of this ComfyUI's store.",
                ),
                io.Combo.Input(
                    "lora",
                    options=list(LORA_CHOICES),
                    default="best",
                    tooltip="best: the best LoRA by the held-out evaluation (else the final, else the "
                    "latest checkpoint). latest checkpoint: the final or newest checkpoint's.",
                ),
            ],
            outputs=[
                io.String.Output("status", tooltip="Status, step, time left, latest rewards, warnings."),
                io.Image.Output(
                    "sample", tooltip="The latest evaluation sample grid (grey before the first)."
                ),
                io.Image.Output("reward_curve", tooltip="Reward means per step: train solid, eval dashed."),
                ComboValue.Output(
                    "lora_name", tooltip="The LoRA file (paco/<name>/...), for PaCo LoRA or LoraLoader."
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, pick=LATEST_JOB_CHOICE, lora="best", job=None):
        try:
            found = find_job(job, pick)
        except Exception as error:  # execute reports it
            return f"error {error}"
        return (found.id, found.status, found.step, found.updated_at, lora)

    @classmethod
    def execute(cls, pick, lora, job=None) -> io.NodeOutput:
        from paco_core.images import pil_to_tensor
        from paco_core.jobs import runner
        from paco_core.jobs.curves import draw_reward_curves, reward_series
        from paco_core.run_folder import RunFolder

        store = jobs_bridge.job_store()
        runner.reconcile(store)
        found = find_job(job, pick)
        jobs_bridge.export_loras(found)
        text = status_text(found)
        comfy_bridge.show_progress_text(cls.hidden.unique_id, text.splitlines()[0])
        sample_path = RunFolder(found.run_dir).latest_sample()
        if sample_path is not None:
            from PIL import Image

            with Image.open(sample_path) as opened:
                sample = opened.convert("RGB")
        else:
            from PIL import Image

            sample = Image.new("RGB", (64, 64), (128, 128, 128))
        curve = draw_reward_curves(reward_series(found.run_dir), title=f"{found.name} ({found.id})")
        try:
            lora_file = chosen_lora(found, LORA_CHOICES[lora])
        except InputError as error:  # no checkpoint yet: show the status, skip the nodes that need the LoRA
            lora_file = comfy_bridge.execution_blocker(None)
            text += f"\n{error}"
            comfy_bridge.show_progress_text(
                cls.hidden.unique_id,
                comfy_bridge.short_status(
                    f"no LoRA yet (step {found.step}/{found.total}): LoRA nodes skipped, queue again later"
                ),
            )
        previews = [preview_file(found.id, "sample", sample), preview_file(found.id, "curve", curve)]
        return io.NodeOutput(
            text,
            pil_to_tensor([sample]),
            pil_to_tensor([curve]),
            lora_file,
            ui={"text": (text,), "images": previews},
        )


NODES = [PaCoTrainLora, PaCoTrainingJob]
