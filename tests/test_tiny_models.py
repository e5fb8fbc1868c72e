"""The tiny offline model factory: deterministic folders that the ordinary loaders run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paco_core.errors import InputError
from paco_core.testing import (
    TINY_MODEL_NAMES,
    build_tiny_model,
    build_tiny_models,
    default_cache_dir,
    ensure_tiny_models,
    factory,
)
from paco_core.testing.tokenizers import ANSWER_WORDS, PROMPT_WORDS, QWEN_WORDS

REPO_ROOT = Path(__file__).resolve().parents[1]
SET_PROMPT = (
    'Given two subfigures generated based on the theme: "a cat", do the two images maintain consistency '
    'in terms of style, logic and identity? Answer "Yes" and "No" first, and then provide detailed reasons.'
)


def folder_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def random_image(seed: int, size: int = 64) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def cli_builds(tmp_path_factory) -> list[Path]:
    """Two `paco tiny-models` runs in separate processes, run side by side."""
    root = tmp_path_factory.mktemp("cli-builds")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    destinations = [root / "first", root / "second"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "paco_core.cli", "tiny-models", str(destination)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for destination in destinations
    ]
    for run, destination in zip(runs, destinations, strict=True):
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        for name in TINY_MODEL_NAMES:
            assert f"{destination / name}" in stdout and "files" in stdout
    return destinations


def test_two_cli_runs_write_byte_identical_folders(cli_builds):
    first, second = (folder_hashes(destination) for destination in cli_builds)
    assert all(len(Path(path).parts) > 1 for path in first), "loose files beside the model folders"
    assert {Path(path).parts[0] for path in first} == set(TINY_MODEL_NAMES)
    assert list(first) == list(second)
    different = [path for path in first if first[path] != second[path]]
    assert different == []


def test_in_process_build_matches_cli_build(cli_builds, tiny_models):
    for name in TINY_MODEL_NAMES:
        assert folder_hashes(tiny_models[name]) == folder_hashes(cli_builds[0] / name), name


def test_folders_are_small_and_safetensors_only(cli_builds):
    for name in TINY_MODEL_NAMES:
        files = [path for path in (cli_builds[0] / name).rglob("*") if path.is_file()]
        # The ComfyUI layout holds every model again, fp8 variants and a 128-wide-head FLUX.
        limit = 12 if name == "comfyui" else 2
        assert sum(path.stat().st_size for path in files) < limit * 1024 * 1024, name
        assert any(path.suffix == ".safetensors" for path in files), name
        assert not any(path.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"} for path in files), name
        for path in files:
            if path.suffix == ".json":
                text = path.read_text()
                assert str(cli_builds[0]) not in text, f"{path} holds its own build path"


def test_cli_only_builds_the_named_models(tmp_path):
    from paco_core.cli import main

    assert main(["tiny-models", str(tmp_path), "--only", "clip"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip"]


def test_edit_plus_is_listed_exactly_when_diffusers_has_its_pipeline():
    import diffusers

    assert ("qwen-image-edit-plus" in TINY_MODEL_NAMES) == hasattr(diffusers, "QwenImageEditPlusPipeline")
    assert TINY_MODEL_NAMES[:3] == ("flux", "flux-kontext", "qwen-image-edit")
    assert TINY_MODEL_NAMES[-3:] == ("judge", "clip", "comfyui")


def test_unknown_name_is_an_input_error_listing_valid_names(tmp_path):
    with pytest.raises(
        InputError, match=r"unknown tiny model 'sdxl': choose one of flux, flux-kontext, .*judge"
    ):
        build_tiny_model("sdxl", tmp_path)
    with pytest.raises(InputError, match="unknown tiny model 'nope'"):
        build_tiny_models(tmp_path, ["clip", "nope"])
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "mine.txt").write_text("user data")
    with pytest.raises(InputError, match=r"exists but was not written by the tiny-model factory"):
        build_tiny_model("clip", tmp_path)
    assert (tmp_path / "clip" / "mine.txt").read_text() == "user data"


def test_build_is_idempotent_and_rebuilds_other_versions(tmp_path):
    folder = build_tiny_model("clip", tmp_path)
    weights = folder / "model.safetensors"
    first_mtime = weights.stat().st_mtime_ns
    assert build_tiny_model("clip", tmp_path) == folder
    assert weights.stat().st_mtime_ns == first_mtime

    marker = folder / factory.MARKER_FILE
    marker.write_text(json.dumps({"factory_version": 0, "name": "clip"}))
    assert build_tiny_model("clip", tmp_path) == folder
    assert json.loads(marker.read_text())["factory_version"] == factory.FACTORY_VERSION
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip"]


def test_a_crash_mid_build_leaves_no_folder(tmp_path, monkeypatch):
    def crashing_builder(name: str, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(factory, "_run_builder", crashing_builder)
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_model("judge", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ensure_tiny_models_builds_every_model_once(tmp_path):
    folders = ensure_tiny_models(tmp_path)
    assert list(folders) == list(TINY_MODEL_NAMES)
    assert all(factory.is_complete(folder, name) for name, folder in folders.items())
    mtimes = {name: (folder / factory.MARKER_FILE).stat().st_mtime_ns for name, folder in folders.items()}
    assert ensure_tiny_models(tmp_path) == folders
    assert {
        name: (folder / factory.MARKER_FILE).stat().st_mtime_ns for name, folder in folders.items()
    } == mtimes


def test_default_cache_dir_follows_paco_cache(monkeypatch, tmp_path):
    from paco_core import __version__

    monkeypatch.setenv("PACO_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / f"tiny-models-{__version__}"
    monkeypatch.delenv("PACO_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "paco" / f"tiny-models-{__version__}"


# --- the judge -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge(tiny_models):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models["judge"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models["judge"])
    return model, processor


def test_judge_answer_and_role_words_are_single_tokens(judge):
    _, processor = judge
    tokenizer = processor.tokenizer
    assert set(ANSWER_WORDS) | {"system", "user", "assistant"} <= set(QWEN_WORDS)
    for word in QWEN_WORDS:
        for text in (word, " " + word):
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert len(ids) == 1, f"{text!r} -> {ids}"
            assert tokenizer.decode(ids) == text
    assert len({tokenizer.convert_tokens_to_ids(word) for word in ANSWER_WORDS}) == len(ANSWER_WORDS)
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"):
        assert tokenizer.tokenize(f"a{token}b") == ["a", token, "b"]


def test_judge_chat_template_places_images_in_order(judge):
    _, processor = judge
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "between"},
                {"type": "image"},
                {"type": "text", "text": SET_PROMPT},
            ],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    vision = "<|vision_start|><|image_pad|><|vision_end|>"
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{vision}between{vision}{SET_PROMPT}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )

    inputs = processor(text=[text], images=[random_image(0), random_image(1, size=128)], return_tensors="pt")
    # 64 px -> 56 px -> 2x2 merged tokens; 128 px -> 112 px (the cap) -> 4x4 merged tokens
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 8, 8]]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_pad).sum()) == 4 + 16


def judge_yes_probability(judge, first: Image.Image, second: Image.Image) -> float:
    model, processor = judge
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": SET_PROMPT}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[first, second], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    yes, no = processor.tokenizer.convert_tokens_to_ids(["Yes", "No"])
    return torch.sigmoid(logits[yes] - logits[no]).item()


def test_judge_scores_depend_on_the_images_and_their_order(judge):
    red, blue = Image.new("RGB", (64, 64), (220, 20, 20)), Image.new("RGB", (64, 64), (20, 20, 220))
    scores = [
        judge_yes_probability(judge, red, blue),
        judge_yes_probability(judge, blue, red),
        judge_yes_probability(judge, red, random_image(0)),
        judge_yes_probability(judge, red, red),
    ]
    assert all(0.0 < score < 1.0 for score in scores)
    assert min(abs(a - b) for i, a in enumerate(scores) for b in scores[i + 1 :]) > 1e-3


def test_judge_generates_text(judge):
    model, processor = judge
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Why?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[random_image(3)], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3


# --- diffusion pipelines -------------------------------------------------------------------


def run_and_check(images: np.ndarray) -> None:
    assert images.shape == (1, 64, 64, 3)
    assert np.isfinite(images).all()
    assert images.std() > 0.01, "the tiny model paints a constant image"


def test_flux_generates_from_its_folder(tiny_models):
    from diffusers import FluxPipeline

    pipeline = FluxPipeline.from_pretrained(tiny_models["flux"])
    pipeline.set_progress_bar_config(disable=True)

    def generate(prompt: str) -> np.ndarray:
        generator = torch.Generator().manual_seed(0)
        return pipeline(
            prompt, height=64, width=64, num_inference_steps=2, generator=generator, output_type="np"
        ).images

    cat = generate("a photo of a cat")
    run_and_check(cat)
    assert np.abs(cat - generate("a red dog")).mean() > 1e-4


def test_flux_kontext_edits_from_its_folder(tiny_models):
    from diffusers import DiffusionPipeline, FluxKontextPipeline

    pipeline = DiffusionPipeline.from_pretrained(tiny_models["flux-kontext"])
    assert isinstance(pipeline, FluxKontextPipeline)
    pipeline.set_progress_bar_config(disable=True)
    edited = pipeline(
        image=random_image(0),
        prompt="make the hat red",
        height=64,
        width=64,
        max_area=64 * 64,
        _auto_resize=False,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    run_and_check(edited)


@pytest.mark.parametrize(
    ("name", "pipeline_class_name"),
    [("qwen-image-edit", "QwenImageEditPipeline"), ("qwen-image-edit-plus", "QwenImageEditPlusPipeline")],
)
def test_qwen_image_edit_edits_from_its_folder(tiny_models, name, pipeline_class_name, monkeypatch):
    import importlib

    import diffusers

    if name not in TINY_MODEL_NAMES:
        pytest.skip(f"diffusers {diffusers.__version__} has no {pipeline_class_name}")
    # The pipelines resize the condition image to ~1024x1024 px (4096 latent tokens, 5x the
    # run time here); cap that area at 64x64 px, as the product's condition-size option does.
    module = importlib.import_module(getattr(diffusers, pipeline_class_name).__module__)
    full_size = module.calculate_dimensions
    monkeypatch.setattr(
        module, "calculate_dimensions", lambda area, ratio: full_size(min(area, 64 * 64), ratio)
    )
    pipeline = diffusers.DiffusionPipeline.from_pretrained(tiny_models[name])
    assert type(pipeline).__name__ == pipeline_class_name
    pipeline.set_progress_bar_config(disable=True)
    # The text path drops the template's first 64 tokens: they must all be template.
    system_part = pipeline.prompt_template_encode.split("<|im_start|>user")[0]
    assert len(pipeline.tokenizer(system_part).input_ids) > pipeline.prompt_template_encode_start_idx
    edited = pipeline(
        image=random_image(0),
        prompt="make the hat red",
        height=64,
        width=64,
        num_inference_steps=2,
        true_cfg_scale=1.0,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    run_and_check(edited)


# --- CLIP ----------------------------------------------------------------------------------


def test_clip_and_t5_keep_prompt_words_whole(tiny_models):
    from transformers import AutoTokenizer

    clip_tokenizer = AutoTokenizer.from_pretrained(tiny_models["clip"])
    t5_tokenizer = AutoTokenizer.from_pretrained(tiny_models["flux"] / "tokenizer_2")
    for word in PROMPT_WORDS:
        assert clip_tokenizer.tokenize(word.upper()) == [word + "</w>"]
        assert t5_tokenizer.tokenize(word) == ["\u2581" + word]
    assert (
        clip_tokenizer.decode(clip_tokenizer("Zebra, 42!").input_ids, skip_special_tokens=True)
        == "zebra , 4 2 !"
    )


def test_clip_scores_text_against_images(tiny_models):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_models["clip"]).eval()
    processor = CLIPProcessor.from_pretrained(tiny_models["clip"])
    inputs = processor(
        text=["a photo of a cat", "a red dog in a hat"],
        images=[random_image(0), random_image(1)],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()
    assert len(set(logits.flatten().tolist())) == 4


def test_the_package_import_stays_light():
    code = "import sys, paco_core.testing; print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
