"""Load the pack as ComfyUI does, with the ComfyUI test double, and run its nodes.

- ``load_pack()``: puts ``tests/comfy_stub`` first on ``sys.path`` and imports the repo
  root ``__init__.py`` as a package (``importlib.util.spec_from_file_location``, like
  ComfyUI's ``load_custom_node``); returns the package module.
- ``all_node_classes()``: the classes the pack's ``comfy_entrypoint()`` extension lists.
- ``run_node(node_cls, **inputs)``: checks the inputs against the schema the way
  ComfyUI validates a prompt, runs ``execute`` (awaiting it if async) and returns the
  ``io.NodeOutput``.
- ``widget_defaults(node_cls)``: the default of every widget input, to spread into
  ``run_node`` calls.
- ``check_inputs(node_cls, inputs)``: ``run_node``'s input checks on an API-format node
  (links allowed), without running it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STUB_DIR = Path(__file__).resolve().parent / "comfy_stub"
PACK_MODULE_NAME = "comfyui_paco"


class NodeInputError(ValueError):
    """An input a real ComfyUI would reject before running the node."""


def load_pack() -> ModuleType:
    """Import the pack root as ComfyUI's loader would; returns the package module."""
    if str(STUB_DIR) not in sys.path[:1]:
        sys.path.insert(0, str(STUB_DIR))
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(PACK_MODULE_NAME, REPO_ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_MODULE_NAME]
        raise
    return module


def all_node_classes() -> list[type]:
    """Every node class the pack registers through ``comfy_entrypoint()``."""
    pack = load_pack()

    async def node_list() -> list[type]:
        extension = await pack.comfy_entrypoint()
        await extension.on_load()
        return await extension.get_node_list()

    return asyncio.run(node_list())


def widget_defaults(node_cls: type) -> dict[str, Any]:
    """``{input id: default}`` for each input of the node that declares a default."""
    schema = node_cls.GET_SCHEMA()
    return {item.id: item.default for item in schema.inputs if getattr(item, "default", None) is not None}


def run_node(node_cls: type, *, hidden: dict | None = None, validate: bool = True, **inputs: Any):
    """Validate ``inputs`` like ComfyUI, run the node, return its ``io.NodeOutput``.

    Args:
        node_cls: a V3 node class (``io.ComfyNode`` subclass).
        hidden: hidden values by ``io.Hidden`` member or name; a declared ``unique_id``
            defaults to "1", undeclared ones are None (as in ComfyUI).
        validate: False skips ComfyUI's input checks, as for values that arrive through links
            (ComfyUI checks a dropdown value only when it is typed into the widget).
        **inputs: the node's inputs by id; optional inputs may be left out.

    Raises:
        NodeInputError: a required input is missing, an unknown one is given, a number is
            out of its min/max, a combo value is not an option, or the node's own
            ``validate_inputs`` returned a message.
    """
    from comfy_api.latest import io
    from comfy_api.latest._io import stub_overrides

    schema = node_cls.GET_SCHEMA()
    if validate:
        _check_inputs(schema, inputs)
    if validate and stub_overrides(node_cls, "validate_inputs"):
        verdict = node_cls.validate_inputs(**inputs)
        if verdict is not True:
            raise NodeInputError(f"{schema.node_id}.validate_inputs rejected the inputs: {verdict}")

    # Like ComfyUI, only the hidden inputs the schema declares are filled in.
    declared_hidden = {getattr(item, "name", item) for item in (schema.hidden or [])}
    defaults = {"unique_id": "1"} if "unique_id" in declared_hidden else {}
    hidden_values = {**defaults, **{getattr(k, "name", k): v for k, v in (hidden or {}).items()}}
    holder = io.HiddenHolder.from_dict({io.Hidden[name]: value for name, value in hidden_values.items()})
    runner = type(node_cls.__name__, (node_cls,), {"hidden": holder})
    result = runner.execute(**inputs)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    if not isinstance(result, io.NodeOutput):
        raise TypeError(f"{schema.node_id}.execute returned {type(result).__name__}, not io.NodeOutput")
    if result.block_execution is None and len(result.args) != len(schema.outputs):
        raise TypeError(
            f"{schema.node_id}.execute returned {len(result.args)} outputs, schema declares {len(schema.outputs)}"
        )
    return result


def check_inputs(node_cls: type, inputs: dict[str, Any]) -> None:
    """Check one API-format node's inputs like ComfyUI validates a queued prompt, without
    running the node: a value ``[node_id, output_index]`` is a link (it counts as given; its
    type is the workflow's business), every other value is checked as ``run_node`` checks it.

    Raises:
        NodeInputError: as ``run_node``.
    """
    from comfy_api.latest._io import stub_overrides

    schema = node_cls.GET_SCHEMA()
    declared = {item.id: item for item in schema.inputs}
    unknown = sorted(set(inputs) - set(declared))
    if unknown and not schema.accept_all_inputs:
        raise NodeInputError(f"{schema.node_id} has no input(s) {unknown}; it has {sorted(declared)}")
    missing = [i for i, item in declared.items() if i not in inputs and not item.optional]
    if missing:
        raise NodeInputError(f"{schema.node_id}: required input '{missing[0]}' is missing")

    def is_link(value: Any) -> bool:
        return (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], int)
        )

    literal = {i: v for i, v in inputs.items() if i in declared and not is_link(v)}
    for input_id, value in literal.items():
        for item_value in value if schema.is_input_list else [value]:
            _check_value(schema.node_id, declared[input_id], item_value)
    if stub_overrides(node_cls, "validate_inputs"):
        verdict = node_cls.validate_inputs(**literal)
        if verdict is not True:
            raise NodeInputError(f"{schema.node_id}.validate_inputs rejected the inputs: {verdict}")


def _check_inputs(schema, inputs: dict[str, Any]) -> None:
    declared = {item.id: item for item in schema.inputs}
    unknown = sorted(set(inputs) - set(declared))
    if unknown and not schema.accept_all_inputs:
        raise NodeInputError(f"{schema.node_id} has no input(s) {unknown}; it has {sorted(declared)}")
    for input_id, item in declared.items():
        if input_id not in inputs:
            if not item.optional:
                raise NodeInputError(f"{schema.node_id}: required input '{input_id}' is missing")
            continue
        values = inputs[input_id] if schema.is_input_list else [inputs[input_id]]
        for value in values:
            _check_value(schema.node_id, item, value)


def _check_value(node_id: str, item, value: Any) -> None:
    io_type = item.get_io_type()
    where = f"{node_id}.{item.id}"
    if io_type in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NodeInputError(f"{where}: expected a number, got {value!r}")
        if io_type == "INT" and not float(value).is_integer():
            raise NodeInputError(f"{where}: expected an integer, got {value!r}")
        if item.min is not None and value < item.min:
            raise NodeInputError(f"{where}: {value} is below the minimum {item.min}")
        if item.max is not None and value > item.max:
            raise NodeInputError(f"{where}: {value} is above the maximum {item.max}")
    elif io_type == "STRING" and not isinstance(value, str):
        raise NodeInputError(f"{where}: expected a string, got {type(value).__name__}")
    elif io_type == "BOOLEAN" and not isinstance(value, bool):
        raise NodeInputError(f"{where}: expected a boolean, got {value!r}")
    elif io_type == "COMBO":
        chosen = value if getattr(item, "multiselect", False) else [value]
        missing = [v for v in chosen if v not in item.options]
        if missing:
            raise NodeInputError(f"{where}: {missing[0]!r} is not one of {item.options}")
    elif io_type in ("IMAGE", "MASK"):
        import torch

        dims = 4 if io_type == "IMAGE" else 3
        if not isinstance(value, torch.Tensor) or value.ndim != dims:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise NodeInputError(f"{where}: expected a {dims}-D {io_type} tensor, got {shape}")


def reset_comfy_stub(base_dir: str | Path) -> None:
    """Fresh ComfyUI state for one test: folders under ``base_dir``, no recorded
    progress, no memory calls, no pending interrupt, no recorded server events."""
    load_pack()
    import comfy.model_management
    import comfy.utils
    import folder_paths

    folder_paths.stub_configure(base_dir)
    comfy.utils.stub_reset()
    comfy.model_management.stub_reset()
    server = sys.modules.get("server")  # imported by whatever registers routes or sends events
    if server is not None and hasattr(server.PromptServer.instance, "stub_reset"):
        server.PromptServer.instance.stub_reset()
