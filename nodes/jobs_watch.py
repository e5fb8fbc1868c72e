"""The jobs watcher: one daemon thread inside ComfyUI that keeps the training jobs moving.

Started once when the pack loads in a running ComfyUI (``start_watcher``; never in a
plain import). Every ``interval`` seconds, and at once when a prompt is posted, it:

1. reconciles and dispatches the store (a queued job starts when its device frees, a dead
   trainer becomes interrupted), in ComfyUI's user directory;
2. sends ``paco.job`` websocket events (``PromptServer.send_sync``) when a job's status,
   step, checkpoints, error or progress state (running / paused) change: the job record
   plus ``eta_s`` and ``metrics`` (see :func:`.jobs_bridge.job_event`); a deleted job
   sends ``{"id", "status": "deleted"}``;
3. exports new checkpoints' LoRAs into ``models/loras/paco/<lora name>/``;
4. yields the GPU: while ComfyUI's prompt queue has work (``prompt_queue.get_tasks_remaining()``),
   every active job with ``gpu_policy`` ``yield`` on ComfyUI's device gets a pause request in
   its run folder (``control/pause-comfyui-<pid>.json``, one per ComfyUI process; the trainer
   pauses at its next step boundary and frees its GPU memory, and runs only when no holder
   wants the GPU); when the queue is idle this ComfyUI's request is withdrawn, never another's.
   The request records this process, so it lapses if ComfyUI dies meanwhile.

The thread never touches the prompt worker and never blocks the event loop; every error is
logged and the loop goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from paco_core.errors import PaCoError
from paco_core.jobs import runner
from paco_core.run_folder import RunFolder

from . import jobs_bridge

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
POSTED_GRACE_S = 2.0
WATCH_ENV = "PACO_JOBS_WATCH"
"""Set to 0 to keep the watcher from starting inside ComfyUI."""


def queue_busy(server) -> bool:
    """Whether ComfyUI has a prompt running or waiting."""
    queue = getattr(server, "prompt_queue", None)
    if queue is None:
        return False
    try:
        return queue.get_tasks_remaining() > 0
    except Exception:  # the queue is being torn down
        return False


def request_pause(run_dir: str, reason: str, holder: str) -> bool:
    """ComfyUI's pause request; it lapses by itself if this ComfyUI dies (``while_alive``)."""
    RunFolder(run_dir).request_pause(reason, holder=holder, while_alive=True)
    return True


def release_pause(run_dir: str, holder: str) -> bool:
    """Withdraw this ComfyUI's request (and requests left by ComfyUIs that died); never another live one's."""
    run = RunFolder(run_dir)
    run.release_lapsed_pauses()
    return run.release_pause(holder=holder)


class JobsWatcher:
    """The watcher loop (see the module doc). ``tick()`` is one pass; ``start()`` runs it in a thread."""

    def __init__(self, server, *, interval: float = DEFAULT_INTERVAL_S, holder: str | None = None):
        self.server = server
        self.interval = interval
        self.holder = holder or jobs_bridge.comfy_pause_holder()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple] = {}
        self._paused: set[str] = set()
        self._first = True
        self._problem: str | None = None
        self._posted_at = float("-inf")
        self.pause_log: list[tuple[float, str, str]] = []
        """(time, job id, "pause" | "release"): what the watcher asked, for tests and logs."""

    # -- thread

    def start(self) -> JobsWatcher:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="paco-jobs-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Run the next pass now (a prompt was posted)."""
        self._wake.set()

    def on_prompt(self, json_data):
        """A ``PromptServer`` on-prompt handler: a new prompt wakes the watcher (GPU yield at once)."""
        self._posted_at = time.monotonic()
        self.wake()
        return json_data

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self._problem = None
            except PaCoError as error:  # a damaged, read-only or locked store: one line, once
                if str(error) != self._problem:
                    logger.warning("PaCo jobs watcher: %s (trying again)", error)
                self._problem = str(error)
            except Exception:
                logger.exception("PaCo jobs watcher: a pass failed; trying again")
            self._wake.wait(self.interval)
            self._wake.clear()

    # -- one pass

    def tick(self) -> None:
        store = jobs_bridge.job_store()
        runner.dispatch(store)
        jobs = store.list()
        # a prompt posted a moment ago may not be in the queue yet
        busy = queue_busy(self.server) or time.monotonic() - self._posted_at < POSTED_GRACE_S
        slot = jobs_bridge.comfy_device_slot()
        for job in jobs:
            self._yield_gpu(job, busy, slot)
            state = RunFolder(job.run_dir).read_progress().get("state")
            signature = (
                job.status,
                job.step,
                job.total,
                job.last_checkpoint,
                job.best_checkpoint,
                job.error,
                state,
            )
            if self._seen.get(job.id) == signature:
                continue
            self._seen[job.id] = signature
            try:
                jobs_bridge.export_loras(job)
            except (OSError, PaCoError) as error:
                logger.warning("PaCo jobs: cannot export the LoRAs of %s: %s", job.id, error)
            self._send(jobs_bridge.job_event(job))
        gone = set(self._seen) - {job.id for job in jobs}
        for job_id in gone:
            del self._seen[job_id]
            self._paused.discard(job_id)
            self._send({"id": job_id, "status": "deleted"})
        self._first = False

    def _yield_gpu(self, job, busy: bool, slot: str) -> None:
        shares = job.is_active and jobs_bridge.gpu_policy(job) == "yield" and job.device == slot
        if shares and busy:
            if job.id not in self._paused and request_pause(
                job.run_dir, "ComfyUI is running a prompt", self.holder
            ):
                self._paused.add(job.id)
                self.pause_log.append((time.time(), job.id, "pause"))
        elif job.id in self._paused or (self._first and job.is_active):
            # idle again, the job ended, or a request left by a ComfyUI that was killed
            if release_pause(job.run_dir, self.holder) or job.id in self._paused:
                self.pause_log.append((time.time(), job.id, "release"))
            self._paused.discard(job.id)

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self.server.send_sync("paco.job", payload)
        except Exception as error:  # no clients, or the server is shutting down
            logger.debug("PaCo jobs: cannot send an event: %s", error)


_watcher: JobsWatcher | None = None


def start_watcher(server, *, interval: float = DEFAULT_INTERVAL_S) -> JobsWatcher | None:
    """Start the watcher once per process (None when ``PACO_JOBS_WATCH=0``)."""
    global _watcher
    if os.environ.get(WATCH_ENV, "1") == "0":
        return None
    if _watcher is None:
        _watcher = JobsWatcher(server, interval=interval)
        if hasattr(server, "add_on_prompt_handler"):
            server.add_on_prompt_handler(_watcher.on_prompt)
    return _watcher.start()


def install_server_hooks() -> None:
    """Inside a running ComfyUI: the /paco/jobs routes and the watcher thread. A no-op without a server."""
    from . import comfy_bridge
    from .routes import register_routes
    from .routes_actions import register_action_routes

    server = comfy_bridge.prompt_server()
    if server is None:
        return

    register_routes(server)
    register_action_routes(server)
    if getattr(server, "loop", None) is not None:  # a real, started ComfyUI (not a bare import)
        start_watcher(server)
