"""The Z-Image family (beyond the paper) on its tiny models: pipeline from the diffusers folder
and from ComfyUI's files, sets with a LoRA, the judge, one PaCo-GRPO step, the preset, the node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paco_core.families import family, load_reference
from paco_core.families.z_image import KIND, T2IS_PRESET, comfy_to_diffusers, diffusers_to_comfy

RL_FIXTURES = Path(__file__).parent / "fixtures" / "rl"


@pytest.fixture(scope="module")
def tiny_z_image(tiny_models) -> Path:
    return tiny_models[KIND]


@pytest.fixture(scope="module")
def tiny_comfy(tiny_z_image, tmp_path_factory) -> Path:
    """The family's own tiny ComfyUI files (what the "comfyui" tiny model writes for it), alone."""
    from paco_core.testing.comfy_layout import _config_folder

    models = tmp_path_factory.mktemp("comfyui") / "models"
    load_reference(family(KIND).tiny_comfy_files)(tiny_z_image, models, f"tiny-{KIND}")
    _config_folder(tiny_z_image, models / "paco_configs" / f"tiny-{KIND}")
    return models


@pytest.fixture(scope="module")
def pipe(tiny_z_image):
    from diffusers import ZImagePipeline

    return ZImagePipeline.from_pretrained(tiny_z_image)


def _load(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for file in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(file)).items()}


def test_comfy_layout_round_trips_and_agrees_with_diffusers_own_converter(tiny_z_image, tiny_comfy):
    from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers

    config = json.loads((tiny_z_image / "transformer" / "config.json").read_text())
    weights = _load(tiny_z_image / "transformer")
    written = _original_file(tiny_comfy)
    assert "layers.0.attention.qkv.weight" in written and "x_embedder.weight" in written
    assert not any(".to_q." in key or "all_x_embedder" in key for key in written)
    assert written.keys() == diffusers_to_comfy(weights, config).keys()
    ours = comfy_to_diffusers(written, config)
    theirs = convert_z_image_transformer_checkpoint_to_diffusers(dict(written))
    assert ours.keys() == weights.keys() == theirs.keys()
    assert all(
        torch.equal(ours[key], weights[key]) and torch.equal(theirs[key], weights[key]) for key in weights
    )


def _original_file(models: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(models / "diffusion_models" / f"tiny-{KIND}.safetensors"))


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_rollout_adapter_samples_what_the_pipeline_samples(pipe, guidance):
    """The adapter's ODE path (no SDE step) reproduces ZImagePipeline's latents, with and without CFG."""
    from paco_core.rl.data import PromptRow
    from paco_core.rl.rollout import sample_with_log_probs
    from paco_core.rl.rollout_adapter_z_image import ZImageAdapter

    adapter = ZImageAdapter(pipe, guidance_scale=guidance, max_sequence_length=32, negative_prompt="")
    row = PromptRow(kind="set", prompt="a red cat with a hat", index=0)
    cond = adapter.encode(row, 32, 64)
    schedule = adapter.schedule(3, 32, 64)
    noise = adapter.initial_noise(2, 32, 64, torch.Generator().manual_seed(7))
    ours = sample_with_log_probs(
        adapter,
        pipe.transformer,
        cond,
        schedule,
        noise,
        sde_steps=(),
        noise_level=0.7,
        generator=torch.Generator(),
    ).final_latents
    theirs = pipe(
        prompt=row.prompt,
        height=32,
        width=64,
        num_inference_steps=3,
        guidance_scale=guidance,
        latents=noise.float(),
        num_images_per_prompt=2,
        max_sequence_length=32,
        output_type="latent",
    ).images
    torch.testing.assert_close(ours.float(), theirs.float(), atol=1e-5, rtol=1e-5)
    assert len(adapter.decode(ours, 32, 64)) == 2


def comfy_files(models: Path):
    from paco_core.models.comfy_files import ComfyModelFiles

    return ComfyModelFiles(
        transformer=str(models / "diffusion_models" / f"tiny-{KIND}.safetensors"),
        text_encoders=(str(models / "text_encoders" / f"tiny-{KIND}-qwen_3_4b.safetensors"),),
        vae=str(models / "vae" / f"tiny-{KIND}-ae.safetensors"),
        config_folder=str(models / "paco_configs" / f"tiny-{KIND}"),
    )


def test_the_pipeline_builds_from_the_folder_and_from_comfyui_files_alike(tiny_z_image, tiny_comfy):
    from paco_core.models.comfy_files import check_model_files
    from paco_core.models.pipelines import load_pipeline, load_pipeline_from_files

    folder = load_pipeline(tiny_z_image, device="cpu")
    files = comfy_files(tiny_comfy)
    assert check_model_files(files) == KIND  # kind "auto": the Z-Image transformer decides
    assembled = load_pipeline_from_files(files, device="cpu")
    assert folder.kind == assembled.kind == KIND
    for component in ("transformer", "text_encoder", "vae"):
        ours, theirs = (
            getattr(folder.pipe, component).state_dict(),
            getattr(assembled.pipe, component).state_dict(),
        )
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), component
    assert assembled.pipe.tokenizer.chat_template == folder.pipe.tokenizer.chat_template


def test_a_comfyui_qwen3_file_is_told_apart_from_qwen_2_5_vl(tiny_comfy, tiny_models):
    from paco_core.models.comfy_files import read_keys, text_encoder_role

    assert (
        text_encoder_role(read_keys(tiny_comfy / "text_encoders" / f"tiny-{KIND}-qwen_3_4b.safetensors"))
        == "qwen_3_4b"
    )
    qwen_vl = tiny_models["judge"]  # a Qwen2.5-VL: no q_norm
    assert text_encoder_role(read_keys(next(qwen_vl.glob("*.safetensors")))) != "qwen_3_4b"


def _random_lora(transformer, path: Path) -> Path:
    """A rank-2 LoRA on every training target of the tiny transformer, saved as the pack saves LoRAs."""
    from paco_core.models.lora_save import save_lora

    generator = torch.Generator().manual_seed(3)
    state_dict = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(family(KIND).architecture.lora_targets):
            state_dict[f"{name}.lora_A.weight"] = (
                torch.randn(2, module.in_features, generator=generator) * 0.5
            )
            state_dict[f"{name}.lora_B.weight"] = (
                torch.randn(module.out_features, 2, generator=generator) * 0.5
            )
    return save_lora(path, state_dict, alpha=2, rank=2, kind=KIND)


@pytest.fixture(scope="module")
def sets_and_loras(tiny_z_image, tmp_path_factory):
    """A 1x2 set without, with and at strength 0 of a LoRA (guidance on: true CFG)."""
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.lora import LoraSpec, apply_loras
    from paco_core.models.pipelines import load_pipeline

    loaded = load_pipeline(tiny_z_image, device="cpu")
    lora = _random_lora(loaded.pipe.transformer, tmp_path_factory.mktemp("lora") / "z.safetensors")
    request = SetRequest(
        theme="a red cat",
        panels=["on the left", "on the right"],
        layout="1x2",
        panel_width=32,
        panel_height=32,
        steps=2,
        guidance=2.0,
        max_sequence_length=32,
    )
    base = generate_sets(loaded, request, num_sets=2)
    with_lora = generate_sets(apply_loras(loaded, [LoraSpec(str(lora), 1.0)]), request)
    off = generate_sets(apply_loras(loaded, [LoraSpec(str(lora), 0.0)]), request)
    return base, with_lora, off, lora


def test_sets_generate_as_a_grid_and_a_lora_changes_them(sets_and_loras):
    import numpy as np

    from paco_core.models.lora_files import read_lora

    base, with_lora, off, lora = sets_and_loras
    assert [s.seed for s in base] == [0, 1] and base[0].grid.size == (64, 32)
    assert [p.size for p in base[0].panels] == [(32, 32), (32, 32)] and base[0].settings["model_kind"] == KIND
    pixels = [np.asarray(s.grid, dtype=np.int16) for s in (base[0], with_lora[0], off[0])]
    assert np.abs(pixels[0] - pixels[1]).mean() > 1.0  # the LoRA changes the image
    np.testing.assert_array_equal(pixels[0], pixels[2])  # strength 0 is the base model
    assert read_lora(lora).architecture == "z-image" and with_lora[0].settings["loras"][0]["path"] == str(
        lora
    )


def test_the_judge_scores_a_z_image_set(sets_and_loras, tiny_models):
    from paco_core.reward.opener import open_judge
    from paco_core.reward.scoring import score_set

    base = sets_and_loras[0]
    score = score_set(open_judge(tiny_models["judge"]), base[0].panels, "a red cat")
    assert 0.0 < score.score < 1.0 and len(score.pairs) == 1


@pytest.mark.parametrize("source", ["folder", "comfyui files"])
def test_one_grpo_step_trains_the_lora_on_policy(source, tiny_z_image, tiny_comfy, tmp_path, monkeypatch):
    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.trainer import GrpoTrainer

    if source == "folder":
        model = {"path": str(tiny_z_image)}
    else:  # what PaCo Train LoRA's "(ComfyUI files)" choice submits
        files = comfy_files(tiny_comfy)
        model = {"transformer_file": files.transformer, "text_encoder_files": list(files.text_encoders),
                 "vae_file": files.vae, "config_folder": files.config_folder}  # fmt: skip
    config = config_from_dict(
        TrainConfig,
        {
            "model": {"kind": KIND, "device": "cpu", **model},
            "lora": {"rank": 4, "alpha": 8},
            "sampling": {
                "num_steps": 2,
                "noise_steps": [0, 1],
                "train_resolution": 32,
                "eval_resolution": 32,
                "reference_resolution": 1024,
                "group_size": 2,
                "batch_size": 2,
                "prompts_per_iteration": 1,
                "max_sequence_length": 16,
                "guidance_scale": 2.0,
                "negative_prompt": "",
            },
            "data": {"train_file": str(RL_FIXTURES / "sets.jsonl"), "num_eval_prompts": 1},
            "rewards": {
                "rewards": [{"name": "toy_rewards:mean_brightness", "weight": 1.0}],
                "aggregation": "weighted_sum",
            },
            "optim": {"lr": 1e-2, "clip_range": 0.2},
            "ema": {"use_ema": False},
            "num_iterations": 1,
            "output_dir": str(tmp_path / "run"),
            "checkpoint_every": 1,
            "eval_every": 0,
        },
    )
    monkeypatch.syspath_prepend(str(RL_FIXTURES))  # toy_rewards
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    assert trainer.rollout_adapter.use_cfg  # guidance 2 with true CFG: two transformer passes per step
    base_before = {
        n: p.detach().clone() for n, p in trainer.transformer.named_parameters() if "lora_" not in n
    }
    lora_before = {n: p.detach().clone() for n, p in trainer.named_trainable}
    assert any("feed_forward.w3" in n for n in lora_before) and any(
        "context_refiner" in n for n in lora_before
    )

    metrics = trainer.run_iteration(0)
    assert metrics["policy/ratio_first"] == 1.0
    assert all(
        torch.equal(p.detach(), base_before[n])
        for n, p in trainer.transformer.named_parameters()
        if n in base_before
    )
    assert any(
        not torch.equal(lora_before[n], p.detach()) for n, p in trainer.named_trainable if "lora_B" in n
    )


def test_the_preset_beyond_the_paper_validates():
    from paco_core.rl.presets import BEYOND_THE_PAPER_PRESETS, PRESETS, preset_config, preset_names

    assert T2IS_PRESET in preset_names() and T2IS_PRESET in BEYOND_THE_PAPER_PRESETS
    assert T2IS_PRESET not in PRESETS  # the released runs only
    config = preset_config(T2IS_PRESET)
    assert config.model.kind == KIND and config.model.path == family(KIND).hub_id
    assert (
        config.sampling.true_cfg
        and config.sampling.guidance_scale == 4.0
        and config.sampling.noise_level == 0.68
    )
    assert tuple(config.lora.target_modules) == family(KIND).architecture.lora_targets
    assert config.rewards.aggregation == "log_tamed"


def test_the_train_lora_node_offers_the_family(tmp_path):
    from pack_loader import all_node_classes, load_pack, reset_comfy_stub

    reset_comfy_stub(tmp_path)
    load_pack()
    node = next(cls for cls in all_node_classes() if cls.GET_SCHEMA().node_id == "PaCoTrainLora")
    inputs = {item.id: item for item in node.GET_SCHEMA().inputs}
    assert T2IS_PRESET in inputs["preset"].options
    assert KIND in inputs["files_kind"].options


def test_panel_repair_and_reference_sets_refuse_it_clearly(tiny_z_image, tiny_models):
    """The consistency tools' grid path inpaints with FLUX's inpaint pipeline: Z-Image declares none."""
    from PIL import Image

    from paco_core.consistency.repair import repair_set
    from paco_core.errors import InputError
    from paco_core.models.pipelines import load_pipeline
    from paco_core.reward.opener import open_judge

    loaded = load_pipeline(tiny_z_image, device="cpu")
    panels = [Image.new("RGB", (32, 32), color) for color in ("red", "blue")]
    with pytest.raises(InputError, match="cannot repair a set with a z-image pipeline"):
        repair_set(
            loaded, open_judge(tiny_models["judge"]), panels, "a cat", layout="1x2", panel_prompts=["a", "b"]
        )


COMFY_LORA_CHECK = """
import json, sys
from comfy.cli_args import args
args.cpu = True  # as `main.py --cpu`: no GPU needed to build the key map
import comfy.lora, comfy.utils, safetensors.torch
lora = safetensors.torch.load_file(sys.argv[1])
# The key map ComfyUI's LoRA loader builds for a Z-Image (Lumina2) model (comfy/lora.py)
diffusers_keys = comfy.utils.z_image_to_diffusers(json.loads(sys.argv[2]), output_prefix="diffusion_model.")
key_map = {"transformer." + k[: -len(".weight")]: v for k, v in diffusers_keys.items() if k.endswith(".weight")}
patches = comfy.lora.load_lora(lora, key_map, log_missing=True)
print(json.dumps({"patched": len(patches), "modules": len({k.rsplit(".lora_", 1)[0] for k in lora})}))
"""


@pytest.mark.comfyui
@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout")
def test_comfyuis_lora_loader_maps_every_key_of_a_saved_lora(sets_and_loras, tiny_z_image):
    """The LoRA file the pack writes loads onto every targeted module of ComfyUI's Z-Image model,
    fused qkv included (ComfyUI's own key map, run in ComfyUI's environment)."""
    comfyui = Path(os.environ["COMFYUI_DIR"])
    if "def z_image_to_diffusers" not in (comfyui / "comfy" / "utils.py").read_text():
        pytest.skip("this ComfyUI predates Z-Image (no comfy.utils.z_image_to_diffusers; 0.3.64 has none)")
    config = json.loads((tiny_z_image / "transformer" / "config.json").read_text())
    sizes = {
        "n_layers": config["n_layers"],
        "dim": config["dim"],
        "n_refiner_layers": config["n_refiner_layers"],
    }
    done = subprocess.run(
        [
            os.environ.get("COMFYUI_PYTHON") or sys.executable,
            "-c",
            COMFY_LORA_CHECK,
            str(sets_and_loras[3]),
            json.dumps(sizes),
        ],
        cwd=os.environ["COMFYUI_DIR"],
        env={**os.environ, "PYTHONPATH": os.environ["COMFYUI_DIR"]},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["patched"] == counts["modules"] > 0, done.stderr[-2000:]


@pytest.mark.comfyui
@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to a ComfyUI checkout")
def test_the_shipped_config_folder_takes_comfyuis_tokenizer_with_z_images_template():
    """ComfyUI's Qwen3 tokenizer folder, with the family's template, gives the text ComfyUI's own
    Z-Image text encoder builds (comfy/text_encoders/z_image.py: user turn, then the assistant's)."""
    from paco_core.models.comfy_files import CONFIGS_DIR, _tokenizers

    folder = CONFIGS_DIR / family(KIND).config_folder
    index = json.loads((folder / "model_index.json").read_text())
    tokenizer = _tokenizers(folder, index, os.environ["COMFYUI_DIR"])["tokenizer"]
    tokenizer.chat_template = family(KIND).chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "a red fox"}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=True,
    )
    assert text == "<|im_start|>user\na red fox<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer(text).input_ids[:3] == [151644, 872, 198]  # <|im_start|> user \n: Qwen's real ids
