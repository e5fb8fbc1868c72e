"""nodes/comfy_bridge.py against the ComfyUI stand-in (progress, cancel, memory, folders, model labels)."""

from __future__ import annotations

import importlib
import os

import pytest
from pack_loader import load_pack, reset_comfy_stub

bridge = importlib.import_module(f"{load_pack().__name__}.nodes.comfy_bridge")

import comfy.model_management as mm  # noqa: E402  (the stand-in is on sys.path after load_pack)
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_comfy(tmp_path):
    reset_comfy_stub(tmp_path)
    yield tmp_path
    reset_comfy_stub(tmp_path)


def test_hooks_report_progress_to_the_progress_bar():
    hooks = bridge.hooks_for("7", total=3)
    for done in range(1, 4):
        hooks.step(done, 3)
    assert [(u.node_id, u.value, u.total) for u in comfy.utils.PROGRESS_UPDATES] == [
        ("7", 1, 3),
        ("7", 2, 3),
        ("7", 3, 3),
    ]


def test_hooks_stop_the_work_when_the_user_cancels():
    hooks = bridge.hooks_for("7", total=4)
    hooks.step(1, 4)
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        hooks.check_cancel()
    assert not mm.processing_interrupted(), "the flag is consumed by the raise, as in ComfyUI"


def test_cancel_is_seen_at_the_next_progress_update_too():
    hooks = bridge.hooks_for(None, total=2)
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        hooks.step(1, 2)
    assert comfy.utils.PROGRESS_UPDATES == []


def test_free_comfy_memory_unloads_models_and_empties_the_cache():
    bridge.free_comfy_memory()
    assert mm.CALLS == {"unload_all_models": 1, "soft_empty_cache": 1}


def test_comfy_device_is_the_device_comfy_chose():
    assert str(bridge.comfy_device()) == "cpu"


def test_model_choices_lists_files_of_a_models_folder(fresh_comfy):
    loras = fresh_comfy / "models" / "loras"
    (loras / "paco").mkdir(parents=True)
    (loras / "paco" / "t2is.safetensors").write_bytes(b"0")
    (loras / "notes.txt").write_text("not a model")
    assert bridge.model_choices("loras") == ["paco/t2is.safetensors"]


def test_model_choices_lists_diffusers_folders_with_a_model_index(fresh_comfy):
    diffusers = fresh_comfy / "models" / "diffusers"
    (diffusers / "flux-tiny").mkdir(parents=True)
    (diffusers / "flux-tiny" / "model_index.json").write_text("{}")
    (diffusers / "half-copied").mkdir()
    assert bridge.model_choices("diffusers") == ["flux-tiny"]


def test_resolve_model_path_finds_files_and_folders_and_hub_ids_where_allowed(fresh_comfy):
    from paco_core.errors import ModelLoadError

    lora = fresh_comfy / "models" / "loras" / "a.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"0")
    pipeline = fresh_comfy / "models" / "diffusers" / "flux-tiny"
    pipeline.mkdir(parents=True)
    assert bridge.resolve_model_path("loras", "a.safetensors") == str(lora)
    assert bridge.resolve_model_path("diffusers", "flux-tiny") == str(pipeline)
    assert bridge.resolve_model_path("loras", str(lora)) == str(lora)  # absolute, inside models/
    hub_id = "black-forest-labs/FLUX.1-dev"
    assert bridge.resolve_model_path("diffusers", hub_id, hub=True) == hub_id
    with pytest.raises(ModelLoadError, match="'black-forest-labs/FLUX.1-dev' not found in models/diffusers"):
        bridge.resolve_model_path("diffusers", hub_id)  # a dropdown value is never a hub id
    with pytest.raises(ModelLoadError, match="LoRA 'missing.safetensors' not found in models/loras"):
        bridge.resolve_model_path("loras", "missing.safetensors", what="LoRA")


def test_output_directory_is_comfys(fresh_comfy):
    assert bridge.output_directory() == folder_paths.get_output_directory() == str(fresh_comfy / "output")


def test_comfyui_package_dir_of_comfys_namespace_package(tmp_path, monkeypatch):
    # ComfyUI's comfy/ has no __init__.py: a namespace package, whose __file__ is None
    import sys
    import types

    folder = tmp_path / "ComfyUI" / "comfy"
    folder.mkdir(parents=True)
    namespace = types.ModuleType("comfy")
    namespace.__file__, namespace.__path__ = None, [str(folder)]
    monkeypatch.setitem(sys.modules, "comfy", namespace)
    assert bridge.comfyui_package_dir() == str(folder)


# how a status line names a model (model_label): the model's name, never a machine path


def test_an_existing_folder_is_named_by_its_last_part(tmp_path):
    folder = tmp_path / "models" / "PaCo-Reward-7B"
    folder.mkdir(parents=True)
    assert bridge.model_label(str(folder)) == "PaCo-Reward-7B"
    assert bridge.model_label(f"{folder}/") == "PaCo-Reward-7B"


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("/mnt/projects/secret/models/flux-typo", "flux-typo"),  # a typed path that does not exist
        ("models/FLUX.1-Kontext-dev", "FLUX.1-Kontext-dev"),
        ("D:\\art\\models\\qwen-image-edit\\", "qwen-image-edit"),  # a Windows path, on Linux too
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
