"""PaCo LoRA's choices for a first run: "(none)" runs the base model, a downloaded LoRA
repository folder is a choice and loads, and a linked lora_name raises no warning."""

from __future__ import annotations

import logging
import shutil

import pytest
import test_generate_nodes
from pack_loader import run_node, widget_defaults
from test_generate_nodes import write_lora

from paco_core.errors import LoraError
from paco_core.models.lora_files import is_lora_folder, read_lora

generation = test_generate_nodes.generation  # the generation nodes' module and ComfyUI folders
comfy = test_generate_nodes.comfy  # with the tiny models (comfy["models"])


def load(generation):
    loader = generation.PaCoPipelineLoader
    return run_node(loader, **{**widget_defaults(loader), "model": "tiny-flux"})[0]


def test_none_is_the_first_choice_and_passes_the_pipeline_on(generation, comfy):
    schema = generation.PaCoLora.GET_SCHEMA()
    (lora_input,) = [item for item in schema.inputs if item.id == "lora_name"]
    assert lora_input.options[0] == generation.NO_LORA == "(none)"
    pipeline = load(generation)
    out, info = run_node(generation.PaCoLora, pipeline=pipeline, lora_name="(none)", strength=1.0)
    assert out is pipeline and out.loras == ()
    assert info.startswith("(none)")


def test_a_downloaded_lora_folder_is_a_choice_and_loads(generation, comfy, tiny_models):
    repo = comfy["models"] / "loras" / "PaCo-FLUX.1-dev-Lora"
    written = write_lora(repo, tiny_models)
    (repo / "README.md").write_text("model card")
    assert is_lora_folder(repo)
    schema = generation.PaCoLora.GET_SCHEMA()
    (lora_input,) = [item for item in schema.inputs if item.id == "lora_name"]
    assert "PaCo-FLUX.1-dev-Lora" in lora_input.options
    assert read_lora(repo).state_dict.keys() == read_lora(written).state_dict.keys()
    pipeline = load(generation)
    out, info = run_node(
        generation.PaCoLora, pipeline=pipeline, lora_name="PaCo-FLUX.1-dev-Lora", strength=1.0
    )
    assert len(out.loras) == 1 and "8 of 8 keys matched" in info


def test_a_folder_with_no_or_several_loras_is_a_one_line_error(tmp_path, tiny_models):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoraError, match="holds no .safetensors"):
        read_lora(empty)
    written = write_lora(tmp_path / "two", tiny_models)
    shutil.copy(written, written.with_name("other.safetensors"))
    assert not is_lora_folder(tmp_path / "two")
    with pytest.raises(LoraError, match="several .safetensors files .*choose one"):
        read_lora(tmp_path / "two")


def test_a_linked_lora_name_gives_no_warning(generation, comfy, caplog):
    with caplog.at_level(logging.WARNING):
        assert generation.PaCoLora.fingerprint_inputs(lora_name=None, strength=1.0) is None
        assert generation.PaCoLora.fingerprint_inputs(lora_name="(none)", strength=1.0) is None
    assert not caplog.records
