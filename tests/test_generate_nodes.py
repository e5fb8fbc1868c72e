"""The generation nodes, run as ComfyUI runs them (through the ComfyUI test double)."""

from __future__ import annotations

import importlib
import os
from dataclasses import replace

import pytest
from pack_loader import load_pack, reset_comfy_stub, run_node, widget_defaults

from paco_core.prompts import parse_grid_prompt

EDIT_OPTIONS = {
    "steps": 1,
    "model_guidance": True,
    "guidance": 2.5,
    "seed": 0,
    "max_area": 0,
    "condition_area": 0,
    "auto_resize": False,
}
"""The edit nodes' option inputs at their cheapest: one step, the model's default guidance."""


@pytest.fixture(scope="module")
def generation():
    pack = load_pack()
    return importlib.import_module(f"{pack.__name__}.nodes.generation")


@pytest.fixture()
def comfy(tmp_path, tiny_models, generation):
    """ComfyUI folders with the tiny models in models/diffusers and a LoRA in models/loras."""
    reset_comfy_stub(tmp_path)
    import comfy.model_management as mm
    import comfy.utils

    diffusers_dir = tmp_path / "models" / "diffusers"
    diffusers_dir.mkdir(parents=True)
    for name in ("flux", "flux-kontext"):
        os.symlink(tiny_models[name], diffusers_dir / f"tiny-{name}")
    yield {"mm": mm, "utils": comfy.utils, "models": tmp_path / "models"}
    mm.stub_reset()


def write_lora(folder, tiny_models):
    """A FLUX LoRA saved by our own save helper from a peft-wrapped tiny transformer."""
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from paco_core.models.lora import save_peft_transformer_lora

    transformer = FluxTransformer2DModel.from_pretrained(str(tiny_models["flux"]), subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(
        LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q", "to_v"])
    )
    folder.mkdir(parents=True, exist_ok=True)
    return save_peft_transformer_lora(transformer, folder / "paco_test.safetensors")


def load(generation, **changes):
    loader = generation.PaCoPipelineLoader
    return run_node(loader, **{**widget_defaults(loader), "model": "tiny-flux", **changes})[0]


def test_every_input_and_output_is_described(generation):
    for node in generation.NODES:
        schema = node.GET_SCHEMA()
        assert (
            schema.node_id.startswith("PaCo") and schema.category.startswith("PaCo/") and schema.description
        )
        assert all(item.tooltip for item in schema.inputs), schema.node_id
        assert all(item.tooltip for item in schema.outputs), schema.node_id


def test_loader_lora_and_generate_set(generation, comfy, tiny_models):
    write_lora(comfy["models"] / "loras", tiny_models)
    pipeline = load(generation)
    assert pipeline.kind == "flux" and pipeline.keep_loaded
    with_lora, info = run_node(
        generation.PaCoLora, pipeline=pipeline, lora_name="paco_test.safetensors", strength=0.8
    )
    assert info == "paco_test.safetensors: diffusers format, 8 of 8 keys matched, strength 0.8"
    assert pipeline.loras == () and len(with_lora.loras) == 1
    node = generation.PaCoGenerateSet
    inputs = {
        **widget_defaults(node),
        "pipeline": with_lora,
        "theme": "a red fox",
        "panels": "running\nsleeping\n\neating\nreading\n",
        "panel_width": 32,
        "panel_height": 16,
        "steps": 2,
        "num_sets": 2,
    }
    panels, grids, prompt, judge_theme, first_seed = run_node(node, hidden={"unique_id": "7"}, **inputs).args
    assert tuple(panels.shape) == (8, 16, 32, 3) and tuple(grids.shape) == (2, 32, 64, 3)
    assert "[BOTTOM]-[RIGHT]:reading" in prompt
    assert inputs["judge_theme_source"] == "preamble" and first_seed == inputs["seed"]
    assert judge_theme == prompt.split("[TOP]-[LEFT]:")[0].strip() == parse_grid_prompt(prompt).judge_theme
    updates = comfy["utils"].PROGRESS_UPDATES
    assert [(u.node_id, u.value, u.total) for u in updates][-1] == ("7", 4, 4)


def test_comfy_cancel_stops_the_set_within_one_step(generation, comfy):
    pipeline = load(generation)
    forward_calls = []
    handle = pipeline.pipe.transformer.register_forward_hook(lambda *args: forward_calls.append(1))
    node = generation.PaCoGenerateSet
    inputs = {**widget_defaults(node), "pipeline": pipeline, "theme": "fox", "panels": "a\nb\nc\nd"}
    inputs.update(panel_width=16, panel_height=16, steps=6)
    comfy["mm"].interrupt_current_processing()
    try:
        with pytest.raises(comfy["mm"].InterruptProcessingException):
            run_node(node, **inputs)
    finally:
        handle.remove()
    assert len(forward_calls) == 1


def test_edit_and_edit_chain_keep_the_input_size(generation, comfy):
    import torch

    from paco_core.errors import InputError

    kontext = load(generation, model="tiny-flux-kontext")
    images = torch.rand(2, 40, 50, 3, generator=torch.Generator().manual_seed(0))
    edit = generation.PaCoEdit
    [edited] = run_node(edit, pipeline=kontext, image=images, instruction="make it blue", **EDIT_OPTIONS).args
    assert tuple(edited.shape) == (2, 40, 50, 3)
    chain = generation.PaCoEditChain
    chain_inputs = {"pipeline": kontext, "instructions": "add a hat\nmake it night", "from_reference": False}
    sequence, instructions, first_instruction = run_node(
        chain, image=images[:1], include_reference=True, **chain_inputs, **EDIT_OPTIONS
    ).args
    assert tuple(sequence.shape) == (3, 40, 50, 3)
    assert (instructions, first_instruction) == ("add a hat\nmake it night", "add a hat")
    with pytest.raises(InputError, match="takes one reference image, got a batch of 2"):
        run_node(chain, image=images, include_reference=True, **chain_inputs, **EDIT_OPTIONS)


def test_edit_guidance_is_the_models_default_unless_the_toggle_says_otherwise(generation):
    options = {key: value for key, value in EDIT_OPTIONS.items()}
    assert generation.edit_options(**options).guidance is None
    assert generation.edit_options(**{**options, "model_guidance": False, "guidance": 0.0}).guidance == 0.0
    defaults = widget_defaults(generation.PaCoEdit)
    assert defaults["model_guidance"] is True and defaults["guidance"] == 2.5


def test_the_loaders_show_loading_progress(generation, comfy, tiny_models):
    from server import PromptServer

    loader = generation.PaCoPipelineLoader
    source = str(comfy["models"] / "diffusers" / "tiny-flux-kontext")  # a typed path inside models/
    inputs = {**widget_defaults(loader), "model": generation.TYPED_PATH_CHOICE, "model_path": source}
    comfy["utils"].stub_reset()
    run_node(loader, hidden={"unique_id": "5"}, **inputs)
    updates = [(u.node_id, u.value, u.total) for u in comfy["utils"].PROGRESS_UPDATES]
    assert updates == [("5", 1, 3), ("5", 2, 3), ("5", 3, 3)] or updates == [("5", 1, 3), ("5", 3, 3)]
    texts = [text for node_id, text in PromptServer.instance.stub_progress_texts() if node_id == "5"]
    assert texts[-2] == "loading pipeline tiny-flux-kontext ..."  # the model's name, not the machine path
    assert texts[-1].startswith("loaded pipeline tiny-flux-kontext in ") and texts[-1].endswith(" s")
    assert all(len(text) <= 64 for text in texts)


def test_the_pipeline_loader_has_short_choices(generation):
    schema = generation.PaCoPipelineLoader.GET_SCHEMA()
    combos = {item.id: item for item in schema.inputs if item.get_io_type() == "COMBO"}
    assert combos["dtype"].options == ["auto", "bf16", "fp16", "fp32"]
    assert combos["offload"].options == ["none", "model", "sequential"]
    ours = [*combos["dtype"].options, *combos["offload"].options]
    ours += [generation.TYPED_PATH_CHOICE, generation.FOLDER_TRANSFORMER_CHOICE]
    assert generation.TYPED_PATH_CHOICE in combos["model"].options
    assert generation.FOLDER_TRANSFORMER_CHOICE in combos["transformer_file"].options
    assert max(map(len, ours)) <= 14, "long option texts widen the node and hide the widget names"
    assert all(item.tooltip for item in combos.values())


def test_wrong_model_for_the_node_is_a_clear_error(generation, comfy):
    import torch

    from paco_core.errors import InputError

    flux = load(generation)
    with pytest.raises(InputError, match="cannot edit an image with a flux pipeline"):
        run_node(
            generation.PaCoEdit,
            pipeline=flux,
            image=torch.zeros(1, 16, 16, 3),
            instruction="x",
            **EDIT_OPTIONS,
        )


def test_loader_takes_a_typed_path_and_refuses_an_empty_one(generation, comfy, tiny_models):
    from paco_core.errors import InputError

    inside = comfy["models"] / "diffusers" / "tiny-flux"  # an absolute path inside models/: allowed
    typed = load(generation, model=generation.TYPED_PATH_CHOICE, model_path=str(inside))
    assert typed.kind == "flux"
    with pytest.raises(InputError, match="type a path, but model_path is empty"):
        load(generation, model=generation.TYPED_PATH_CHOICE)


def test_gpu_runs_free_comfy_memory_first_and_park_when_not_kept(generation, comfy):
    moves = []

    class FakeGpuPipe:
        def to(self, device):
            moves.append(device)

    pipeline = replace(load(generation), pipe=FakeGpuPipe(), device="cuda", keep_loaded=False)
    with generation.pipeline_run(pipeline, None, 1):
        assert comfy["mm"].CALLS["unload_all_models"] == 1 and moves == ["cuda"]
    assert moves == ["cuda", "cpu"] and comfy["mm"].CALLS["soft_empty_cache"] >= 2
    with pytest.raises(RuntimeError, match="out of memory"):
        with generation.pipeline_run(pipeline, None, 1):
            raise RuntimeError("CUDA out of memory")
    assert moves == ["cuda", "cpu", "cuda", "cpu"]  # parked even when the run failed
    kept = replace(pipeline, keep_loaded=True)
    with generation.pipeline_run(kept, None, 1):
        pass
    assert moves[-1] == "cuda"  # keep-loaded: the weights stay on the GPU
