"""Test double of ``comfy_api.latest.io`` (ComfyUI 0.33 V3 node API).

Same class names, the same constructor arguments in the same order, and the same
schema checks as ComfyUI's ``_io.py``; a smaller set of socket types. Nothing here
imports torch at module level, so importing the pack in a test stays cheap.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"
    gradient_slider = "gradientslider"


class ControlAfterGenerate(str, Enum):
    fixed = "fixed"
    increment = "increment"
    decrement = "decrement"
    randomize = "randomize"


class RemoteOptions:
    def __init__(
        self,
        route: str,
        refresh_button: bool,
        control_after_refresh: Literal["first", "last"] = "first",
        timeout: int = None,
        max_retries: int = None,
        refresh: int = None,
    ):
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self) -> dict:
        return _prune(
            {
                "route": self.route,
                "refresh_button": self.refresh_button,
                "control_after_refresh": self.control_after_refresh,
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "refresh": self.refresh,
            }
        )


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------- inputs and outputs


class _IO_V3:
    Parent: type[_ComfyType] = None

    def validate(self) -> None:
        pass

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    @property
    def Type(self):
        return self.Parent.Type


class Input(_IO_V3):
    """Base of every V3 input."""

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
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link
        self.advanced = advanced

    def as_dict(self) -> dict:
        return _prune(
            {
                "display_name": self.display_name,
                "optional": self.optional,
                "tooltip": self.tooltip,
                "lazy": self.lazy,
                "rawLink": self.rawLink,
                "advanced": self.advanced,
            }
        ) | _prune(self.extra_dict)

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> list[Input]:
        return [self]


class WidgetInput(Input):
    """Base of an input shown as a widget."""

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

    def as_dict(self) -> dict:
        return super().as_dict() | _prune(
            {
                "default": self.default,
                "socketless": self.socketless,
                "widgetType": self.widget_type,
                "forceInput": self.force_input,
            }
        )

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO_V3):
    """Base of every V3 output."""

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return _prune(
            {
                "display_name": self.display_name if self.display_name else self.id,
                "tooltip": self.tooltip,
                "is_output_list": self.is_output_list,
            }
        )

    def get_io_type(self) -> str:
        return self.io_type


# ---------------------------------------------------------------- socket types


class _ComfyType:
    Type = Any
    io_type: str = None


class ComfyTypeI(_ComfyType):
    """A type with an Input class only."""

    class Input(Input): ...


class ComfyTypeIO(ComfyTypeI):
    """A type with Input and Output classes."""

    class Output(Output): ...


def _subclass(base: type) -> type:
    return type(base.__name__, (base,), {"__module__": base.__module__, "__qualname__": base.__qualname__})


def comfytype(io_type: str, **kwargs):
    """Class decorator binding ``io_type``; each type gets its own Input/Output classes."""

    def decorator(cls):
        new_cls = cls if issubclass(cls, _ComfyType) else type(cls.__name__, (cls, ComfyTypeIO), {})
        if getattr(new_cls, "Input", None) is not None:
            new_cls.Input = _subclass(new_cls.Input)
            new_cls.Input.Parent = new_cls
        if getattr(new_cls, "Output", None) is not None:
            new_cls.Output = _subclass(new_cls.Output)
            new_cls.Output.Parent = new_cls
        new_cls.io_type = io_type
        return new_cls

    return decorator


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type for a custom ``io_type`` (e.g. ``io.Custom("PACO_PIPELINE")``)."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO): ...

    return CustomComfyType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

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

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

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
            control_after_generate: bool | ControlAfterGenerate = None,
            display_mode: NumberDisplay = None,
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
            self.min = min
            self.max = max
            self.step = step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _prune(
                {
                    "min": self.min,
                    "max": self.max,
                    "step": self.step,
                    "control_after_generate": self.control_after_generate,
                    "display": self.display_mode.value if self.display_mode else None,
                }
            )


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

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
            display_mode: NumberDisplay = None,
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
            self.min = min
            self.max = max
            self.step = step
            self.round = round
            self.display_mode = display_mode
            self.gradient_stops = gradient_stops

        def as_dict(self) -> dict:
            return super().as_dict() | _prune(
                {
                    "min": self.min,
                    "max": self.max,
                    "step": self.step,
                    "round": self.round,
                    "display": self.display_mode,
                    "gradient_stops": self.gradient_stops,
                }
            )


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

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

        def as_dict(self) -> dict:
            return super().as_dict() | _prune(
                {
                    "multiline": self.multiline,
                    "placeholder": self.placeholder,
                    "dynamicPrompts": self.dynamic_prompts,
                }
            )


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """Dropdown."""

        def __init__(
            self,
            id: str,
            options: list[str] | list[int] | type[Enum] = None,
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: str | int | Enum = None,
            control_after_generate: bool | ControlAfterGenerate = None,
            upload: UploadType = None,
            image_folder: FolderType = None,
            remote: RemoteOptions = None,
            socketless: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(
                id,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                socketless,
                None,
                None,
                extra_dict,
                raw_link,
                advanced,
            )
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | _prune(
                {
                    "multiselect": self.multiselect,
                    "options": self.options,
                    "control_after_generate": self.control_after_generate,
                    **({self.upload.value: True} if self.upload is not None else {}),
                    "image_folder": self.image_folder.value if self.image_folder else None,
                    "remote": self.remote.as_dict() if self.remote else None,
                }
            )

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
            self.options = options if options is not None else []


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list

    class Input(Combo.Input):
        def __init__(
            self,
            id: str,
            options: list[str],
            display_name: str = None,
            optional=False,
            tooltip: str = None,
            lazy: bool = None,
            default: list[str] = None,
            placeholder: str = None,
            chip: bool = None,
            control_after_generate: bool | ControlAfterGenerate = None,
            socketless: bool = None,
            extra_dict=None,
            raw_link: bool = None,
            advanced: bool = None,
        ):
            super().__init__(
                id,
                options,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                control_after_generate,
                socketless=socketless,
                extra_dict=extra_dict,
                raw_link=raw_link,
                advanced=advanced,
            )
            self.multiselect = True
            self.placeholder = placeholder
            self.chip = chip


@comfytype(io_type="IMAGE")
class Image(ComfyTypeIO):
    """torch.Tensor [B, H, W, C], float 0..1."""


@comfytype(io_type="MASK")
class Mask(ComfyTypeIO):
    """torch.Tensor [B, H, W]."""


@comfytype(io_type="LATENT")
class Latent(ComfyTypeIO):
    Type = dict


@comfytype(io_type="CONDITIONING")
class Conditioning(ComfyTypeIO):
    Type = list


@comfytype(io_type="SAMPLER")
class Sampler(ComfyTypeIO): ...


@comfytype(io_type="SIGMAS")
class Sigmas(ComfyTypeIO): ...


@comfytype(io_type="NOISE")
class Noise(ComfyTypeIO): ...


@comfytype(io_type="GUIDER")
class Guider(ComfyTypeIO): ...


@comfytype(io_type="CLIP")
class Clip(ComfyTypeIO): ...


@comfytype(io_type="VAE")
class Vae(ComfyTypeIO): ...


@comfytype(io_type="MODEL")
class Model(ComfyTypeIO): ...


@comfytype(io_type="CLIP_VISION")
class ClipVision(ComfyTypeIO): ...


@comfytype(io_type="LORA_MODEL")
class LoraModel(ComfyTypeIO):
    Type = dict


@comfytype(io_type="AUDIO")
class Audio(ComfyTypeIO):
    Type = dict


@comfytype(io_type="VIDEO")
class Video(ComfyTypeIO): ...


@comfytype(io_type="*")
class AnyType(ComfyTypeIO): ...


@comfytype(io_type="DICT")
class Dict(ComfyTypeIO):
    Type = dict


@comfytype(io_type="ARRAY")
class Array(ComfyTypeIO):
    Type = list


BUILTIN_IO_TYPES = frozenset(
    t.io_type
    for t in (Boolean, Int, Float, String, Combo, Image, Mask, Latent, Conditioning, Sampler, Sigmas)
    + (Noise, Guider, Clip, Vae, Model, ClipVision, LoraModel, Audio, Video, AnyType, Dict, Array)
)
"""Socket types ComfyUI itself defines (of those this stand-in carries)."""


# ---------------------------------------------------------------- hidden inputs


class Hidden(str, Enum):
    """Hidden values a node can ask for."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"
    comfy_usage_source = "COMFY_USAGE_SOURCE"


class HiddenHolder:
    """``cls.hidden`` during execute: the hidden values by name, None when absent."""

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
        d = d or {}
        return cls(**{member.name: d.get(member, d.get(member.name)) for member in Hidden})


# ---------------------------------------------------------------- schema and node


@dataclass
class Schema:
    """Definition of a V3 node (same fields as ComfyUI's ``io.Schema``)."""

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
        """Input ids and output ids must each be unique (ComfyUI raises ValueError)."""
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs]
        issues = []
        if len(set(input_ids)) != len(input_ids):
            dupes = [k for k, n in Counter(input_ids).items() if n > 1]
            issues.append(f"Input ids must be unique, but {dupes} are not.")
        if len(set(output_ids)) != len(output_ids):
            dupes = [k for k, n in Counter(output_ids).items() if n > 1]
            issues.append(f"Output ids must be unique, but {dupes} are not.")
        if issues:
            raise ValueError("\n".join(issues))
        for item in [*self.inputs, *self.outputs]:
            item.validate()

    def finalize(self) -> None:
        """Add the hidden values output nodes get, and default ids for unnamed outputs."""
        self.inputs = self.inputs or []
        self.outputs = self.outputs or []
        self.hidden = self.hidden or []
        if self.is_output_node:
            for hidden in (Hidden.prompt, Hidden.extra_pnginfo):
                if hidden not in self.hidden:
                    self.hidden.append(hidden)
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"

    def get_v1_info(self, cls) -> dict:
        """The node's entry in ``/object_info`` (the V1 description ComfyUI serves)."""
        inputs: dict[str, dict] = {"required": {}}
        for item in self.inputs:
            options = item.as_dict()
            options.pop("optional", None)
            inputs.setdefault("optional" if item.optional else "required", {})[item.id] = (
                item.get_io_type(),
                options,
            )
        for hidden in self.hidden:
            inputs.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        return {
            "input": inputs,
            "input_order": {key: list(value) for key, value in inputs.items()},
            "is_input_list": self.is_input_list,
            "output": [o.io_type for o in self.outputs],
            "output_is_list": [o.is_output_list for o in self.outputs],
            "output_name": [o.display_name if o.display_name else o.io_type for o in self.outputs],
            "output_tooltips": [o.tooltip if o.tooltip else None for o in self.outputs],
            "name": self.node_id,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            "category": self.category,
            "output_node": self.is_output_node,
            "deprecated": self.is_deprecated,
            "experimental": self.is_experimental,
            "dev_only": self.is_dev_only,
            "api_node": self.is_api_node,
        }


def _real_override(cls: type, name: str, base: type) -> bool:
    own = inspect.getattr_static(cls, name)
    return own is not inspect.getattr_static(base, name)


def stub_overrides(node_cls: type, name: str) -> bool:
    """Whether a node overrides an optional classmethod such as ``validate_inputs``."""
    return _real_override(node_cls, name, ComfyNode)


class ComfyNode:
    """Base class of every V3 node: classmethods only, no instance state."""

    RELATIVE_PYTHON_MODULE = None
    SCHEMA = None
    hidden: HiddenHolder = None

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
        return [name for name in kwargs if kwargs[name] is None]

    @classmethod
    def VALIDATE_CLASS(cls) -> None:
        if not _real_override(cls, "define_schema", ComfyNode):
            raise Exception(f"No define_schema function was defined for node class {cls.__name__}.")
        if not _real_override(cls, "execute", ComfyNode):
            raise Exception(f"No execute function was defined for node class {cls.__name__}.")

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        """Check the class, build, finalise and validate the schema (as ComfyUI does)."""
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        cls.SCHEMA = schema
        return schema

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:
        return cls.GET_SCHEMA().get_v1_info(cls)


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
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index) -> Any:
        return self.args[index]
