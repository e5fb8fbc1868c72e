"""A new user's first run, as the README writes it: the pack's command without installing
the package (``python -m paco_core`` from the pack folder, as inside ComfyUI), and the tiny
models put into a ComfyUI's folders with ``paco tiny-models --comfyui``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO, offline_env

from paco_core.models.lora_files import is_lora_folder, read_lora


def paco(tmp_path, *args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "paco_core", *args],
        cwd=cwd,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def fake_comfyui(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("# ComfyUI\n")
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "mine.safetensors").write_bytes(b"a user's own file")
    return root


def test_python_m_paco_core_is_the_paco_command(tmp_path):
    result = paco(tmp_path, "--help")
    assert result.returncode == 0 and "tiny-models" in result.stdout


@pytest.mark.slow
def test_tiny_models_go_into_comfyuis_folders_under_the_workflows_tiny_names(tmp_path):
    root = fake_comfyui(tmp_path)
    result = paco(tmp_path, "tiny-models", "--comfyui", str(root))
    assert result.returncode == 0, result.stderr
    models = root / "models"
    for name in ("tiny-flux", "tiny-flux-kontext", "tiny-qwen-image-edit"):
        assert (models / "diffusers" / name / "model_index.json").is_file()
    assert (models / "text_encoders" / "tiny-judge" / "config.json").is_file()
    assert read_lora(models / "loras" / "paco_tiny.safetensors").num_keys > 0
    assert (models / "loras" / "mine.safetensors").read_bytes() == b"a user's own file"
    again = paco(tmp_path, "tiny-models", "--comfyui", str(root))  # nothing is rebuilt or overwritten
    assert again.returncode == 0 and not is_lora_folder(models / "loras")


def test_tiny_models_into_a_folder_that_is_no_comfyui_is_one_line(tmp_path):
    result = paco(tmp_path, "tiny-models", "--comfyui", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no ComfyUI here" in result.stderr
    assert not (tmp_path / "models").exists()
