"""GPU yield: the trainer pauses at a step boundary while a pause is requested in the run folder.

ComfyUI (or a person, or the CLI) asks a run to give the GPU back by writing a request
file with :meth:`paco_core.run_folder.RunFolder.request_pause` (torch-free). With
``gpu_policy: yield`` the trainer looks for requests at every step boundary (between
iterations, between the rollout micro-batches and between evaluation rows); on one it

1. writes progress state ``paused`` (with ``paused_since`` and ``pause_latency_s``, the time
   from the oldest request to the pause),
2. empties the CUDA cache, and with ``yield_offload`` moves the models (pipeline
   components, judge, CLIP scorers), the optimizer state and the EMA shadow to the CPU,
3. waits, polling the requests every ``poll_s`` seconds and the stop request (SIGTERM,
   cancel hook),
4. moves everything back where it was, writes ``running`` and continues.

Nothing the run computes depends on a pause: the seeds are fixed per micro-batch, no
random number is drawn while paused, and moving a tensor to the CPU and back restores it
bit for bit. With ``gpu_policy: exclusive`` requests are ignored (a warning, once).
See docs/gpu-sharing.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from paco_core.run_folder import RunFolder

logger = logging.getLogger(__name__)

POLL_S = 0.2
"""How often a paused trainer looks for the release (and a stop request)."""


class GpuYield:
    """Pauses the trainer while its run folder holds a pause request.

    Args:
        run: the run folder whose ``control/`` is watched.
        policy: ``yield`` or ``exclusive``.
        offload: move the models and optimizer tensors to the CPU while paused.
        device: the training device (the CUDA cache is emptied when it is a GPU).
        report: ``report(state, **extra)`` writes progress (``paused`` / ``running``).
        stop_requested: returns True when the run should stop (ends a pause early).
        modules: returns the ``torch.nn.Module`` objects to offload.
        tensor_dicts: returns dicts of tensors to offload in place (optimizer state, EMA shadow).
    """

    def __init__(
        self,
        run: RunFolder,
        *,
        policy: str,
        offload: bool,
        device: Any,
        report: Callable[..., None],
        stop_requested: Callable[[], bool],
        modules: Callable[[], Iterable[torch.nn.Module]] = lambda: (),
        tensor_dicts: Callable[[], Iterable[dict[Any, Any]]] = lambda: (),
        poll_s: float = POLL_S,
    ):
        self.run = run
        self.policy = policy
        self.offload = offload
        self.device = torch.device(device)
        self.report = report
        self.stop_requested = stop_requested
        self.modules = modules
        self.tensor_dicts = tensor_dicts
        self.poll_s = poll_s
        self.pauses = 0
        self.paused_s = 0.0
        self.last_latency_s: float | None = None
        self._warned_exclusive = False

    def wanted(self) -> bool:
        """Whether a pause is requested and this run honours it (warns once under ``exclusive``)."""
        if not self.run.pause_requested():
            return False
        if self.policy != "yield":
            if not self._warned_exclusive:
                self._warned_exclusive = True
                logger.warning(
                    "a pause was requested in %s but gpu_policy is exclusive: training goes on "
                    "(set gpu_policy: yield to share the GPU)",
                    self.run.control_dir,
                )
            return False
        return True

    def pause(self, where: str) -> bool:
        """Pause while a request stands (see the module doc); returns whether it paused."""
        requests = self.run.pause_requests()
        if not requests:
            return False  # released before we got here
        started = time.time()
        latency = max(0.0, started - min(r["since"] for r in requests))
        self.last_latency_s = latency
        reasons = "; ".join(f"{r.get('holder')}: {r.get('reason') or 'no reason given'}" for r in requests)
        logger.info("pausing %s (%s), %.2f s after the request; the GPU is free", where, reasons, latency)
        self.report(
            "paused",
            paused_since=started,
            pause_latency_s=latency,
            pause_requests=[{k: r.get(k) for k in ("holder", "reason", "since")} for r in requests],
        )
        parked = self._park() if self.offload else []
        release_cached_memory(self.device)
        try:
            while self.run.pause_requested() and not self.stop_requested():
                time.sleep(self.poll_s)
        finally:
            self._unpark(parked)
        held = time.time() - started
        self.pauses += 1
        self.paused_s += held
        stopping = self.stop_requested()
        logger.info("continuing after a %.1f s pause%s", held, " to stop" if stopping else "")
        self.report("running")
        return True

    # ---------------------------------------------------------------- offload

    def _park(self) -> list[tuple[str, Any, Any, Any]]:
        """Move every module and tensor that is not on the CPU there; returns how to move it back."""
        cpu = torch.device("cpu")
        parked: list[tuple[str, Any, Any, Any]] = []
        seen: set[int] = set()
        for module in self.modules():
            if module is None or id(module) in seen:
                continue
            seen.add(id(module))
            devices = {p.device for p in module.parameters()} | {b.device for b in module.buffers()}
            if len(devices) != 1:
                continue  # empty, or spread over devices (device_map): leave it alone
            device = devices.pop()
            if device != cpu:
                module.to(cpu)
                parked.append(("module", module, None, device))
        for tensors in self.tensor_dicts():
            for key, value in list(tensors.items()):
                if torch.is_tensor(value) and value.device != cpu:
                    tensors[key] = value.to(cpu)
                    parked.append(("tensor", tensors, key, value.device))
                elif isinstance(value, dict):
                    for inner, tensor in list(value.items()):
                        if torch.is_tensor(tensor) and tensor.device != cpu:
                            value[inner] = tensor.to(cpu)
                            parked.append(("tensor", value, inner, tensor.device))
        if parked:
            logger.info("moved %d models and tensors to the CPU while paused", len(parked))
        return parked

    @staticmethod
    def _unpark(parked: list[tuple[str, Any, Any, Any]]) -> None:
        for kind, holder, key, device in parked:
            if kind == "module":
                holder.to(device)
            else:
                holder[key] = holder[key].to(device)


def release_cached_memory(device: Any) -> None:
    """Give the CUDA caching allocator's free blocks back to the driver (no-op off CUDA)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
