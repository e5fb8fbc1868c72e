"""How a node's status line names a model (nodes/comfy_bridge.py ``model_label``): the model's
name, never a machine path or a URL's credentials, whether or not the path exists."""

from __future__ import annotations

import importlib
import os

import pytest
from pack_loader import load_pack

bridge = importlib.import_module(f"{load_pack().__name__}.nodes.comfy_bridge")


def test_an_existing_folder_is_named_by_its_last_part(tmp_path):
    folder = tmp_path / "models" / "PaCo-Reward-7B"
    folder.mkdir(parents=True)
    assert bridge.model_label(str(folder)) == "PaCo-Reward-7B"
    assert bridge.model_label(f"{folder}/") == "PaCo-Reward-7B"


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("/home/artist/secret-project/models/flux-dev-typo", "flux-dev-typo"),  # a typed path that does not exist
        ("models/FLUX.1-Kontext-dev", "FLUX.1-Kontext-dev"),
        ("C:\\Users\\artist\\models\\qwen-image-edit\\", "qwen-image-edit"),  # a Windows path, read on Linux too
        ("black-forest-labs/FLUX.1-dev", "FLUX.1-dev"),  # a hub id: its model name
        ("PaCo-Reward-7B", "PaCo-Reward-7B"),
        ("http://127.0.0.1:8000/v1", "127.0.0.1:8000"),  # a judge server: its address
        ("https://user:token@judge.example:8443/v1", "judge.example:8443"),  # never the credentials
    ],
)
def test_the_label_is_the_models_name(source, label):
    assert not os.path.exists(source)
    assert bridge.model_label(source) == label


def test_a_long_name_is_cut_to_the_label_width():
    name = "a-very-long-model-name-" * 5
    label = bridge.model_label(f"/mnt/somewhere/private/{name}")
    assert len(label) == bridge.MODEL_LABEL_WIDTH and label.endswith("\u2026")
    assert label.startswith("a-very-long-model-name-") and "/" not in label
