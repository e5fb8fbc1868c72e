"""Full tensors from FSDP2 shards and back (accelerate's ``fsdp_version: 2``).

Under FSDP2 (``torch.distributed.fsdp.fully_shard``, applied by ``accelerator.prepare``)
every parameter of the transformer is a ``DTensor`` holding this process's shard. The
trainer keeps its LoRA, EMA and optimizer state in that form while training, and gathers
full tensors (a collective: every process calls it) to write a checkpoint or a LoRA file,
then cuts them back into shards on resume. Under DDP or one process every helper here
returns its input unchanged.
"""

from __future__ import annotations

from typing import Any

import torch


def is_sharded(tensor: Any) -> bool:
    """Whether ``tensor`` is an FSDP2 shard (a ``DTensor``)."""
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (collective: every process must call it); others as they are."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` cut like ``like`` (its mesh and placements; collective), on its device and dtype."""
    if not is_sharded(like):
        return full.to(like.device, like.dtype)
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(
        full.to(like.device_mesh.device_type, like.dtype), like.device_mesh, like.placements
    )


def _parameters(optimizer: Any) -> list[torch.Tensor]:
    return [param for group in optimizer.param_groups for param in group["params"]]


def full_optimizer_state(optimizer: Any) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded state tensor gathered (collective).

    Keys stay the parameter positions, as under DDP, so a checkpoint holds the same
    optimizer state whichever way it was trained.
    """
    state_dict = optimizer.state_dict()
    state = {
        index: {
            key: full_tensor(value) if isinstance(value, torch.Tensor) else value
            for key, value in entry.items()
        }
        for index, entry in state_dict["state"].items()
    }
    return {**state_dict, "state": state}


def load_full_optimizer_state(optimizer: Any, state_dict: dict[str, Any]) -> None:
    """Load a state from :func:`full_optimizer_state`, cutting tensors shaped like their
    parameter into that parameter's shards (collective under FSDP2)."""
    params = _parameters(optimizer)
    if any(is_sharded(param) for param in params):
        state = {}
        for index, entry in state_dict["state"].items():
            param = params[int(index)]
            state[index] = {
                key: shard_like(value, param)
                if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(param.shape)
                else value
                for key, value in entry.items()
            }
        state_dict = {**state_dict, "state": state}
    optimizer.load_state_dict(state_dict)
