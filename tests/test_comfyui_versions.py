"""The ComfyUI versions users have (0.3.64 and newer), checked with the test double where
a version's difference can be reproduced: no output id repeats an input id (0.3.6x refuses
the whole pack for it), the hooks are installed by get_node_list too (0.3.6x never calls
on_load), and a ComfyUI below the floor gets one clear line in its log."""

from __future__ import annotations

import asyncio
import logging
import sys
import types

import pytest
from pack_loader import all_node_classes, load_pack


@pytest.mark.parametrize("node_class", all_node_classes(), ids=lambda c: c.__name__)
def test_no_output_id_repeats_an_input_id(node_class):
    schema = node_class.GET_SCHEMA()
    shared = {item.id for item in schema.inputs} & {item.id for item in schema.outputs}
    assert not shared, f"{schema.node_id}: rename the output id(s) {shared} (keep their display_name)"


def test_a_host_that_never_calls_on_load_still_gets_the_unload_hook():
    import comfy.model_management as mm

    original = getattr(mm.unload_all_models, "__wrapped__", mm.unload_all_models)
    mm.unload_all_models = original  # as a fresh ComfyUI has it
    try:
        extension = asyncio.run(load_pack().comfy_entrypoint())
        asyncio.run(extension.get_node_list())  # what ComfyUI 0.3.64 calls; no on_load
        assert getattr(mm.unload_all_models, "paco_hook", False)
    finally:
        mm.unload_all_models = getattr(mm.unload_all_models, "__wrapped__", mm.unload_all_models)


@pytest.mark.parametrize(("version", "warned"), [("0.3.60", True), ("0.3.64", False), ("0.33.0", False)])
def test_below_the_oldest_comfyui_one_line_says_so(version, warned, caplog, monkeypatch):
    pack = load_pack()
    monkeypatch.setitem(sys.modules, "comfyui_version", types.SimpleNamespace(__version__=version))
    with caplog.at_level(logging.WARNING, logger="ComfyUI-PaCo"):
        pack._warn_below_the_oldest_comfyui()
    lines = [record.getMessage() for record in caplog.records]
    if warned:
        assert len(lines) == 1 and f"this is ComfyUI {version}" in lines[0] and "0.3.64 or newer" in lines[0]
    else:
        assert lines == []


def test_the_floor_is_the_same_in_pyproject_and_the_pack():
    import re

    from helpers import REPO

    declared = re.search(r'requires-comfyui = "([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert declared == ">=" + ".".join(map(str, load_pack().OLDEST_COMFYUI))
