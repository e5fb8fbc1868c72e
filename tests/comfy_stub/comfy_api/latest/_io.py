"""Test double of ``comfy_api.latest.io`` (ComfyUI 0.33 V3 node API), written for this project.

Only what the pack uses: the widget types Boolean, Int, Float, String and Combo, the
Image socket, ``Custom`` socket types, hidden inputs, ``Schema``, ``ComfyNode`` and
``NodeOutput``. Every constructor takes exactly the arguments ComfyUI's does (checked by
tests/test_comfyui_integration.py), so a misspelt argument fails here as it fails there.
Nothing here imports torch. Names outside ``__all__`` are for the tests only.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _given(values: dict) -> dict:
    """The entries that were set (ComfyUI leaves None values out of /object_info)."""
    return {key: value for key, value in values.items() if value is not None}


def _plain(value: Any) -> Any:
    """An enum option as its value, as it appears in /object_info."""
    return value.value if isinstance(value, Enum) else value


# ---------------------------------------------------------------- inputs and outputs


class _Socket:
    """What inputs and outputs share: the socket type of the type they belong to."""

    Parent: type[ComfyTypeI] = None

    def validate(self) -> None:
        pass

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self) -> str:
        return self.io_type


class Input(_Socket):
    """Base of every input: a socket, or a widget when the type has one."""

    def __init__(
        self,
        id: str,
        display_name: str = None,
        optional=False,
        tooltip: str = None,
        lazy: bool = None,
        extra_dict=None,
        raw_link: bool = None,
        advanced: bool = None,
    ):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict or {}
        self.raw_link = raw_link
        self.advanced = advanced

    def as_dict(self) -> dict:
        """The input's options in /object_info."""
        own = {
            "display_name": self.display_name,
            "optional": self.optional,
            "tooltip": self.tooltip,
            "lazy": self.lazy,
            "rawLink": self.raw_link,
            "advanced": self.advanced,
        }
        return _given(own) | _given(self.extra_dict)


class WidgetInput(Input):
    """An input the frontend shows as a widget (with a default value)."""

    def __init__(
        self,
        id: str,
        display_name: str = None,
        optional=False,
        tooltip: str = None,
        lazy: bool = None,
        default: Any = None,
        socketless: bool = None,
        widget_type: str = None,
        force_input: bool = None,
        extra_dict=None,
        raw_link: bool = None,
        advanced: bool = None,
    ):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def _widget_options(self) -> dict:
        """The options a widget type adds (overridden per type)."""
        return {}

    def as_dict(self) -> dict:
        own = {
            "default": self.default,
            "socketless": self.socketless,
            "widgetType": self.widget_type,
            "forceInput": self.force_input,
        }
        return super().as_dict() | _given(own) | _given(self._widget_options())

    def get_io_type(self) -> str:
        return self.widget_type or self.io_type


class Output(_Socket):
    """Base of every output."""

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name or id
        self.tooltip = tooltip
        self.is_output_list = is_output_list


# ---------------------------------------------------------------- socket types


class ComfyTypeI:
    """A socket type with an input only."""

    io_type: str = None

    class Input(Input): ...


class ComfyTypeIO(ComfyTypeI):
    """A socket type with an input and an output."""

    class Output(Output): ...


def _bind(io_type: str):
    """Give a type its io_type and its own Input/Output subclasses that point back at it."""

    def bind(type_cls):
        type_cls.io_type = io_type
        for name in ("Input", "Output"):
            socket_cls = getattr(type_cls, name, None)
            if socket_cls is not None:
                setattr(type_cls, name, type(name, (socket_cls,), {"Parent": type_cls}))
        return type_cls

    return bind


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type of the pack's own, e.g. ``io.Custom("PACO_PIPELINE")``."""
    return _bind(io_type)(type("CustomComfyType", (ComfyTypeIO,), {}))


@_bind("BOOLEAN")
class Boolean(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: bool = None,
            label_on: str = None,
            label_off: str = None,
            socketless: bool = None,
            force_input: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                socketless,
                None,
                force_input,
                extra_dict,
                raw_link,
                advanced,
            )
            self.label_on = label_on
            self.label_off = label_off

        def _widget_options(self) -> dict:
            return {"label_on": self.label_on, "label_off": self.label_off}


@_bind("INT")
class Int(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: int = None,
            min: int = None,
            max: int = None,
            step: int = None,
            control_after_generate: bool = None,
            display_mode: str = None,
            socketless: bool = None,
            force_input: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                socketless,
                None,
                force_input,
                extra_dict,
                raw_link,
                advanced,
            )
            self.min, self.max, self.step = min, max, step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def _widget_options(self) -> dict:
            return {
                "min": self.min,
                "max": self.max,
                "step": self.step,
                "control_after_generate": _plain(self.control_after_generate),
                "display": _plain(self.display_mode) or None,
            }


@_bind("FLOAT")
class Float(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: float = None,
            min: float = None,
            max: float = None,
            step: float = None,
            round: float = None,
            display_mode: str = None,
            gradient_stops: list[dict] = None,
            socketless: bool = None,
            force_input: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                socketless,
                None,
                force_input,
                extra_dict,
                raw_link,
                advanced,
            )
            self.min, self.max, self.step, self.round = min, max, step, round
            self.display_mode = display_mode
            self.gradient_stops = gradient_stops

        def _widget_options(self) -> dict:
            return {
                "min": self.min,
                "max": self.max,
                "step": self.step,
                "round": self.round,
                "display": _plain(self.display_mode),
                "gradient_stops": self.gradient_stops,
            }


@_bind("STRING")
class String(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            multiline=False,
            placeholder: str = None,
            default: str = None,
            dynamic_prompts: bool = None,
            socketless: bool = None,
            force_input: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                socketless,
                None,
                force_input,
                extra_dict,
                raw_link,
                advanced,
            )
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def _widget_options(self) -> dict:
            return {
                "multiline": self.multiline,
                "placeholder": self.placeholder,
                "dynamicPrompts": self.dynamic_prompts,
            }


@_bind("COMBO")
class Combo(ComfyTypeIO):
    class Input(WidgetInput):
        """A dropdown; ``options`` may also be an Enum class (its values become the options)."""

        def __init__(
            self,
            id: str,
            options: list[str] | list[int] | type[Enum] = None,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: str | int | Enum = None,
            control_after_generate: bool = None,
            upload: Enum = None,
            image_folder: Enum = None,
            remote: Any = None,
            socketless: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                _plain(default),
                socketless,
                None,
                None,
                extra_dict,
                raw_link,
                advanced,
            )
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            self.options = options
            self.multiselect = False
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def _widget_options(self) -> dict:
            return {
                "multiselect": self.multiselect,
                "options": self.options,
                "control_after_generate": _plain(self.control_after_generate),
                **({_plain(self.upload): True} if self.upload is not None else {}),
                "image_folder": _plain(self.image_folder),
                "remote": self.remote.as_dict() if self.remote is not None else None,
            }

    class Output(Output):
        def __init__(
            self,
            id: str = None,
            display_name: str = None,
            options: list[str] = None,
            tooltip: str = None,
            is_output_list=False,
        ):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options or []


@_bind("IMAGE")
class Image(ComfyTypeIO):
    """A batch of images: torch.Tensor [B, H, W, C], float 0..1."""


# ---------------------------------------------------------------- hidden inputs


class Hidden(str, Enum):
    """Values ComfyUI passes to a node that declares them in ``Schema.hidden``."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"
    comfy_usage_source = "COMFY_USAGE_SOURCE"


class HiddenHolder:
    """``cls.hidden`` during ``execute``: each hidden value, None when not declared."""

    def __init__(
        self,
        unique_id: str,
        prompt: Any,
        extra_pnginfo: Any,
        dynprompt: Any,
        auth_token_comfy_org: str,
        api_key_comfy_org: str,
        comfy_usage_source: str = None,
        **kwargs,
    ):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org
        self.comfy_usage_source = comfy_usage_source

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None) -> HiddenHolder:
        """From ``{io.Hidden member: value}`` (keyed by the member, as ComfyUI keys it)."""
        d = d or {}
        return cls(**{member.name: d.get(member) for member in Hidden})


# ---------------------------------------------------------------- schema and node


@dataclass
class Schema:
    """A V3 node's definition: the same fields, in the same order, as ComfyUI's."""

    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    search_aliases: list[str] = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_dev_only: bool = False
    is_api_node: bool = False
    price_badge: Any = None
    not_idempotent: bool = False
    enable_expand: bool = False
    accept_all_inputs: bool = False
    essentials_category: str | None = None
    has_intermediate_output: bool = False

    def validate(self) -> None:
        """Input ids and output ids must each be unique (ValueError, as in ComfyUI)."""
        problems = []
        for kind, items in (("Input", self.inputs), ("Output", self.outputs)):
            repeated = [key for key, count in Counter(item.id for item in items).items() if count > 1]
            if repeated:
                problems.append(f"{kind} ids must be unique, but {repeated} are not.")
        shared = {item.id for item in self.inputs} & {item.id for item in self.outputs}
        if shared:  # ComfyUI 0.3.6x refuses the whole pack for this; 0.33 accepts it
            problems.append(f"Ids must be unique between inputs and outputs, but {shared} are not.")
        if problems:
            raise ValueError("\n".join(problems))
        for item in [*self.inputs, *self.outputs]:
            item.validate()

    def finalize(self) -> None:
        """Add the hidden values API and output nodes get; name unnamed outputs."""
        self.inputs, self.outputs, self.hidden = self.inputs or [], self.outputs or [], self.hidden or []
        added = []
        if self.is_api_node:
            added += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org, Hidden.comfy_usage_source]
        if self.is_output_node:
            added += [Hidden.prompt, Hidden.extra_pnginfo]
        self.hidden += [hidden for hidden in added if hidden not in self.hidden]
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"


def _overrides(node_cls: type, name: str) -> bool:
    return inspect.getattr_static(node_cls, name) is not inspect.getattr_static(ComfyNode, name)


def stub_overrides(node_cls: type, name: str) -> bool:
    """Whether a node defines its own optional classmethod (e.g. ``validate_inputs``)."""
    return _overrides(node_cls, name)


class ComfyNode:
    """Base class of every V3 node: classmethods only, no instance state."""

    RELATIVE_PYTHON_MODULE = None
    SCHEMA = None
    hidden: HiddenHolder = None

    def __init__(self):
        self.VALIDATE_CLASS()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]

    @classmethod
    def VALIDATE_CLASS(cls) -> None:
        for name in ("define_schema", "execute"):
            if not _overrides(cls, name):
                raise Exception(f"No {name} function was defined for node class {cls.__name__}.")

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        """Check the class, then build, finalize and validate its schema (as ComfyUI does)."""
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        cls.SCHEMA = schema
        return schema

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:
        """The node's entry in ``/object_info``."""
        schema = cls.GET_SCHEMA()
        inputs: dict[str, dict] = {"required": {}}
        for item in schema.inputs:
            options = item.as_dict()
            options.pop("optional", None)
            inputs.setdefault("optional" if item.optional else "required", {})[item.id] = (
                item.get_io_type(),
                options,
            )
        for hidden in schema.hidden:
            inputs.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        outputs = schema.outputs
        return {
            "input": inputs,
            "input_order": {section: list(entries) for section, entries in inputs.items()},
            "is_input_list": schema.is_input_list,
            "output": [o.io_type for o in outputs],
            "output_is_list": [o.is_output_list for o in outputs],
            "output_name": [o.display_name or o.io_type for o in outputs],
            "output_tooltips": [o.tooltip or None for o in outputs],
            "output_matchtypes": None,
            "name": schema.node_id,
            "display_name": schema.display_name,
            "description": schema.description,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            "category": schema.category,
            "output_node": schema.is_output_node,
            "deprecated": schema.is_deprecated,
            "experimental": schema.is_experimental,
            "dev_only": schema.is_dev_only,
            "api_node": schema.is_api_node,
            "price_badge": None,
            "search_aliases": schema.search_aliases or None,
            "essentials_category": schema.essentials_category,
            "has_intermediate_output": schema.has_intermediate_output,
        }


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class NodeOutput:
    """What ``execute`` returns: the outputs in schema order, plus optional UI data."""

    def __init__(
        self, *args: Any, ui: _UIOutput | dict = None, expand: dict = None, block_execution: str = None
    ):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args or None

    def __getitem__(self, index) -> Any:
        return self.args[index]


stub_builtin_io_types = frozenset(t.io_type for t in (Boolean, Int, Float, String, Combo, Image))
"""The socket types of ComfyUI's own that this double carries."""

__all__ = [
    "Input",
    "WidgetInput",
    "Output",
    "ComfyTypeI",
    "ComfyTypeIO",
    "Custom",
    "Boolean",
    "Int",
    "Float",
    "String",
    "Combo",
    "Image",
    "Hidden",
    "HiddenHolder",
    "Schema",
    "ComfyNode",
    "NodeOutput",
]
