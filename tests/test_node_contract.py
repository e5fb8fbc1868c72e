"""Contract over every node the pack registers (grid, judge, generation, training ...).

What ComfyUI needs and what users see: unique PaCo ids, PaCo/ categories, names,
descriptions and tooltips, valid socket types, sane widget defaults, a JSON-clean
/object_info entry; plus the import rules: a cheap pack import, ComfyUI only in nodes/.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pack_loader import REPO_ROOT, STUB_DIR, NodeInputError, all_node_classes, load_pack, run_node

NODE_CLASSES = all_node_classes()
io = importlib.import_module("comfy_api.latest").io  # the stand-in, on sys.path once the pack is loaded
SCHEMAS = {cls.GET_SCHEMA().node_id: cls.GET_SCHEMA() for cls in NODE_CLASSES}
CUSTOM_TYPE_RE = re.compile(r"^PACO_[A-Z0-9_]+$")
HEAVY_MODULES = ("diffusers", "transformers", "peft")
COMFY_RUNTIME_MODULES = ("comfy", "folder_paths", "server", "execution", "nodes", "comfy_extras")


def schema_items(schema):
    return [("input", item) for item in schema.inputs] + [("output", item) for item in schema.outputs]


def test_the_entrypoint_lists_every_node_of_every_node_module():
    nodes_package = importlib.import_module(f"{load_pack().__name__}.nodes")
    assert NODE_CLASSES == nodes_package.all_nodes()
    for name in nodes_package.NODE_MODULES:
        module = importlib.import_module(f"{nodes_package.__name__}.{name}")
        assert module.NODES, f"nodes/{name}.py exports an empty NODES"
        assert set(module.NODES) <= set(NODE_CLASSES)


def test_node_ids_are_unique_and_prefixed():
    ids = [cls.GET_SCHEMA().node_id for cls in NODE_CLASSES]
    assert len(ids) == len(set(ids)), f"duplicate node ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert [i for i in ids if not re.fullmatch(r"PaCo[A-Z][A-Za-z0-9]*", i)] == []


def test_the_pack_exports_no_v1_mappings():
    assert not hasattr(load_pack(), "NODE_CLASS_MAPPINGS"), "V1 mappings would hide comfy_entrypoint"


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_node_is_named_described_and_filed_under_paco(node_id):
    schema = SCHEMAS[node_id]
    assert schema.display_name and schema.display_name.strip()
    assert schema.category.startswith("PaCo/") and schema.category != "PaCo/"
    assert len(schema.description.strip()) >= 20, "describe what the node does in a sentence"


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_every_input_and_output_has_a_tooltip(node_id):
    missing = [
        f"{kind} {item.id}"
        for kind, item in schema_items(SCHEMAS[node_id])
        if not (item.tooltip or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_socket_types_are_comfy_types_or_paco_custom_types(node_id):
    unknown = [
        f"{kind} {item.id}: {item.get_io_type()}"
        for kind, item in schema_items(SCHEMAS[node_id])
        if item.get_io_type() not in io.stub_builtin_io_types and not CUSTOM_TYPE_RE.match(item.get_io_type())
    ]
    assert unknown == [], "custom socket types are io.Custom('PACO_...')"


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_outputs_have_display_names(node_id):
    assert [o.id for o in SCHEMAS[node_id].outputs if not o.display_name] == []


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_widget_defaults_are_valid_choices(node_id):
    for item in SCHEMAS[node_id].inputs:
        io_type = item.get_io_type()
        default = getattr(item, "default", None)
        if io_type == "COMBO":
            # A models dropdown may be empty (no files yet); a default must still be an option.
            assert default is None or default in item.options, f"{item.id}: default {default!r} not an option"
        elif io_type in ("INT", "FLOAT") and default is not None:
            low = item.min if item.min is not None else default
            high = item.max if item.max is not None else default
            assert low <= default <= high, f"{item.id}: default {default} outside [{item.min}, {item.max}]"
            if io_type == "INT":
                assert isinstance(default, int) and not isinstance(default, bool), f"{item.id}: INT default"


@pytest.mark.parametrize("node_class", NODE_CLASSES, ids=lambda cls: cls.__name__)
def test_object_info_entry_is_json(node_class):
    info = node_class.GET_NODE_INFO_V1()
    assert json.loads(json.dumps(info))["name"] == node_class.GET_SCHEMA().node_id


def test_importing_the_pack_and_listing_its_nodes_loads_no_model_library():
    script = f"""
import asyncio, importlib.util, json, sys
sys.path.insert(0, {str(STUB_DIR)!r})
spec = importlib.util.spec_from_file_location("paco_pack", {str(REPO_ROOT / "__init__.py")!r})
pack = importlib.util.module_from_spec(spec)
sys.modules["paco_pack"] = pack
spec.loader.exec_module(pack)
async def main():
    extension = await pack.comfy_entrypoint()
    await extension.on_load()
    return [cls.GET_NODE_INFO_V1()["name"] for cls in await extension.get_node_list()]
names = asyncio.run(main())
print(json.dumps({{"nodes": names, "loaded": [m for m in {HEAVY_MODULES!r} if m in sys.modules]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(report["nodes"]) == sorted(SCHEMAS)
    assert report["loaded"] == [], "move these imports inside execute()"


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def top_level(name: str) -> str:
    return name.split(".")[0]


def test_paco_core_never_imports_comfyui():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in sorted((REPO_ROOT / "paco_core").rglob("*.py"))
        for name in imported_modules(path)
        if top_level(name) in (*COMFY_RUNTIME_MODULES, "comfy_api")
    ]
    assert offenders == []


def test_nodes_reach_comfyui_only_through_comfy_api_latest_and_the_bridge():
    offenders = []
    for path in sorted((REPO_ROOT / "nodes").rglob("*.py")):
        for name in imported_modules(path):
            if top_level(name) == "comfy_api" and name != "comfy_api.latest":
                offenders.append(f"{path.name}: {name}")
            elif top_level(name) in COMFY_RUNTIME_MODULES and path.name != "comfy_bridge.py":
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


# ---------------------------------------------------------------- the stand-in and run_node


class EchoNode(io.ComfyNode):
    """A node for checking the harness itself: echoes its inputs."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PaCoTestEcho",
            display_name="Echo",
            category="PaCo/Test",
            inputs=[
                io.Int.Input("count", default=1, min=1, max=4, tooltip="t"),
                io.Combo.Input("mode", options=["a", "b"], default="a", tooltip="t"),
                io.Image.Input("image", optional=True, tooltip="t"),
            ],
            outputs=[io.Int.Output(tooltip="t"), io.String.Output(tooltip="t")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    async def execute(cls, count, mode, image=None):
        return io.NodeOutput(count, f"{mode}:{cls.hidden.unique_id}")

    @classmethod
    def validate_inputs(cls, count, mode, image=None):
        return True if (count, mode) != (4, "b") else "4 and b do not go together"


def test_stand_in_rejects_arguments_comfyui_rejects():
    with pytest.raises(TypeError, match="unexpected keyword argument 'defualt'"):
        io.Int.Input("n", defualt=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'inputs_list'"):
        io.Schema(node_id="X", inputs_list=[])


def test_stand_in_rejects_duplicate_input_ids():
    class Twice(EchoNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="X", inputs=[io.Int.Input("n"), io.Int.Input("n")])

    with pytest.raises(ValueError, match=r"Input ids must be unique, but \['n'\] are not"):
        Twice.GET_SCHEMA()


def test_run_node_awaits_async_execute_and_sets_hidden_values():
    import torch

    assert run_node(EchoNode, count=2, mode="b").args == (2, "b:1")
    assert (
        run_node(EchoNode, count=2, mode="a", image=torch.zeros(1, 2, 2, 3), hidden={"unique_id": "9"})[1]
        == "a:9"
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"mode": "a"}, "required input 'count' is missing"),
        ({"count": 1, "mode": "a", "steps": 3}, r"has no input\(s\) \['steps'\]"),
        ({"count": 5, "mode": "a"}, "5 is above the maximum 4"),
        ({"count": 0, "mode": "a"}, "0 is below the minimum 1"),
        ({"count": 1.5, "mode": "a"}, "expected an integer, got 1.5"),
        ({"count": 1, "mode": "c"}, r"'c' is not one of \['a', 'b'\]"),
        ({"count": 1, "mode": "a", "image": [0.5]}, "expected a 4-D IMAGE tensor, got list"),
        ({"count": 4, "mode": "b"}, "validate_inputs rejected the inputs: 4 and b do not go together"),
    ],
)
def test_run_node_validates_like_comfyui(inputs, message):
    with pytest.raises(NodeInputError, match=message):
        run_node(EchoNode, **inputs)


def test_run_node_rejects_a_wrong_number_of_outputs():
    class Short(EchoNode):
        @classmethod
        def execute(cls, count, mode, image=None):
            return io.NodeOutput(count)

    with pytest.raises(TypeError, match="returned 1 outputs, schema declares 2"):
        run_node(Short, count=1, mode="a")


@pytest.mark.parametrize("node_class", NODE_CLASSES, ids=lambda cls: cls.GET_SCHEMA().node_id)
def test_nodes_that_read_a_hidden_input_declare_it(node_class):
    # Regression: real ComfyUI passes None for an undeclared hidden input, so the
    # progress bar of such a node could not name it.
    import inspect

    source = inspect.getsource(node_class)
    declared = {getattr(item, "name", item) for item in (node_class.GET_SCHEMA().hidden or [])}
    used = set(re.findall(r"cls\.hidden\.(\w+)", source))
    assert used <= declared, f"uses hidden {sorted(used - declared)} without declaring it in the schema"


def test_nodes_that_only_show_a_report_are_output_nodes():
    # Regression: a graph of Judge Loader -> Set Consistency alone was refused by real
    # ComfyUI ("Prompt has no outputs"): scoring nodes show their report on the node.
    for node_id in ("PaCoSetConsistency", "PaCoEditScore", "PaCoJudgeReasons", "PaCoRankSets"):
        assert SCHEMAS[node_id].is_output_node, node_id


def test_run_node_leaves_undeclared_hidden_inputs_empty():
    class NoHidden(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="PaCoTestNoHidden",
                display_name="No hidden",
                category="PaCo/Test",
                description="Reports the unique id it was given.",
                outputs=[io.String.Output(tooltip="the id")],
            )

        @classmethod
        def execute(cls):
            return io.NodeOutput(str(cls.hidden.unique_id))

    assert run_node(NoHidden).args == ("None",)


STALE_CORE = "STALE = True\n"


@pytest.mark.parametrize("imported_first", [False, True], ids=["installed", "imported-first"])
def test_the_packs_own_paco_core_wins_over_a_stale_copy(tmp_path, imported_first):
    """A stale ``paco_core`` first on sys.path (an old pip install), or already imported by the
    time ComfyUI loads the pack: the nodes still run on the pack's own copy, and the log says so."""
    stale = tmp_path / "site-packages" / "paco_core"
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text(STALE_CORE)
    (stale / "prompts.py").write_text("STALE = True\n")
    script = f"""
import asyncio, importlib.util, json, sys
sys.path[:0] = [{str(stale.parent)!r}, {str(STUB_DIR)!r}]
if {imported_first!r}:
    import paco_core, paco_core.prompts
    assert paco_core.STALE
spec = importlib.util.spec_from_file_location("paco_pack", {str(REPO_ROOT / "__init__.py")!r})
pack = importlib.util.module_from_spec(spec)
sys.modules["paco_pack"] = pack
spec.loader.exec_module(pack)
async def names():
    extension = await pack.comfy_entrypoint()
    return [cls.GET_NODE_INFO_V1()["name"] for cls in await extension.get_node_list()]
import paco_core.prompts
print(json.dumps({{"core": paco_core.__file__, "prompts": paco_core.prompts.__file__,
                  "stale": hasattr(paco_core, "STALE"), "nodes": len(asyncio.run(names()))}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    own = REPO_ROOT / "paco_core"
    assert Path(report["core"]) == own / "__init__.py" and Path(report["prompts"]) == own / "prompts.py"
    assert report["stale"] is False and report["nodes"] == len(SCHEMAS)
    said = "another paco_core was already imported from" if imported_first else "an installed paco_core at"
    assert f"ComfyUI-PaCo: {said} {stale}" in done.stderr
    assert f"use the pack's own copy at {own}" in done.stderr
