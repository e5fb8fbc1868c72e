"""Inputs and schema parts that several nodes share, each written once so that the same widget
reads the same (name, range, default) on every node that shows it."""

from __future__ import annotations

from comfy_api.latest import io

from paco_core.devices import DTYPE_CHOICES, OFFLOAD_CHOICES

SEED_MAX = 2**63 - 1


def output_node_schema(
    node_id: str, display_name: str, category: str, description: str, inputs: list, outputs: list
) -> io.Schema:
    """The schema of a node that shows a report on itself (an output node) and names itself in
    the progress bar (the hidden unique id)."""
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category=category,
        is_output_node=True,
        hidden=[io.Hidden.unique_id],
        description=description,
        inputs=inputs,
        outputs=outputs,
    )


def steps_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("steps", default=28, min=1, max=200, tooltip=tooltip)


def seed_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True, tooltip=tooltip)


def panel_side_input(name: str, tooltip: str) -> io.Int.Input:
    return io.Int.Input(name, default=512, min=16, max=2048, step=16, tooltip=tooltip)


def guidance_inputs(default: float, model_default_tooltip: str, guidance_tooltip: str) -> list:
    """The model_guidance switch (each model's own guidance) and the guidance value used when it is off."""
    return [
        io.Boolean.Input(
            "model_guidance",
            default=True,
            label_on="model default",
            label_off="use guidance",
            tooltip=model_default_tooltip,
        ),
        io.Float.Input("guidance", default=default, min=0.0, max=30.0, step=0.1, tooltip=guidance_tooltip),
    ]


def dtype_input(tooltip: str) -> io.Combo.Input:
    return io.Combo.Input(
        "dtype", options=list(DTYPE_CHOICES), default=next(iter(DTYPE_CHOICES)), tooltip=tooltip
    )


def offload_input(tooltip: str) -> io.Combo.Input:
    return io.Combo.Input(
        "offload", options=list(OFFLOAD_CHOICES), default=next(iter(OFFLOAD_CHOICES)), tooltip=tooltip
    )
