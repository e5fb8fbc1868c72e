"""HTTP routes of the training jobs on ComfyUI's server, under ``/paco/jobs`` (also ``/api/paco/jobs``).

| method and path | answer |
| --- | --- |
| ``GET /paco/jobs`` | ``{"jobs": [record, ...]}`` oldest first |
| ``GET /paco/jobs/{id}`` | the record plus ``progress`` (progress.json), ``warnings``, ``eta_s``, ``lora_files``, ``sample_step`` |
| ``GET /paco/jobs/{id}/metrics`` | ``{"series": {name: [[step, value], ...]}}`` |
| ``GET /paco/jobs/{id}/sample[?step=N]`` | the latest (or step N's) sample grid, ``image/png`` |
| ``GET /paco/jobs/{id}/log?lines=N`` | ``{"lines": [...]}``: the last N lines of train.log (default 200), from its last MiB |
| ``POST /paco/jobs/{id}/cancel`` | the updated record |
| ``POST /paco/jobs/{id}/resume`` | the updated record (JSON body ``{"iterations": N}`` optional) |
| ``POST /paco/jobs/{id}/export`` | the detail record after exporting its LoRAs to models/loras/paco |
| ``DELETE /paco/jobs/{id}[?files=1]`` | the deleted job's record, ``removed_files`` and ``kept_because`` (files: only what the job wrote) |

Errors are ``{"error": message}`` with 400 (bad value), 404 (unknown job, no sample, a file
that leads out of the run folder), 409 (the job's status forbids it), 503 (the job store is
damaged, read-only or locked: the message says which). Handlers never block ComfyUI's event loop: store and file
work runs in the default executor. Ids are only looked up in the store and files are only
read from the job's own run folder; no user text becomes part of a path.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from paco_core.errors import InputError, PaCoError
from paco_core.jobs import runner
from paco_core.jobs.store import JobNotFoundError, JobStateError, JobStoreError
from paco_core.run_folder import RunFolder

from . import jobs_bridge

logger = logging.getLogger(__name__)

PREFIX = "/paco/jobs"
DEFAULT_LOG_LINES = 200
MAX_LOG_LINES = 5000


class RouteError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _run(function, *args):
    """Run blocking store / file work off the event loop; PaCo errors become JSON errors."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, function, *args)
    except JobNotFoundError as error:
        raise RouteError(404, str(error)) from None
    except JobStateError as error:
        raise RouteError(409, str(error)) from None
    except InputError as error:
        raise RouteError(400, str(error)) from None
    except JobStoreError as error:  # damaged, read-only or locked store: one line, no traceback
        logger.warning("PaCo jobs: %s", error)
        raise RouteError(503, str(error)) from None
    except PaCoError as error:  # e.g. a LoRA export on a full disk
        logger.warning("PaCo jobs: %s", error)
        raise RouteError(500, str(error)) from None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _handler(function):
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await function(request)
        except RouteError as error:
            return _error(error.status, str(error))
        except Exception as error:  # never a traceback page
            logger.exception("PaCo jobs route %s failed", request.path)
            return _error(500, f"{type(error).__name__}: {error}")

    handle.__name__ = function.__name__
    return handle


def job_json_handler(action, *args):
    """The handler of a route that answers ``action(job_id, *args)`` as JSON (run off the event loop)."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(await _run(action, request.match_info["job_id"], *args))

    answer.__name__ = action.__name__
    return _handler(answer)


def png_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})


async def json_body(request: web.Request, example: str) -> dict:
    """The request's JSON object body ({} when there is none); ``example`` shows a good body in the 400 answer."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise RouteError(400, f"the body should be JSON, e.g. {example}") from None
    if body is not None and not isinstance(body, dict):
        raise RouteError(400, f"the body should be a JSON object, e.g. {example}")
    return body or {}


def _int_query(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RouteError(400, f"{name} should be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise RouteError(400, f"{name} should be between {low} and {high}, got {value}")
    return value


# --- the work, run in the executor ------------------------------------------------------------


def list_jobs() -> dict:
    store = jobs_bridge.job_store()
    runner.reconcile(store)
    return {"jobs": [job.to_record() for job in store.list()]}


def one_job(job_id: str) -> dict:
    store = jobs_bridge.job_store()
    runner.reconcile(store)
    return jobs_bridge.job_detail(store.get(job_id))


def metrics(job_id: str) -> dict:
    job = jobs_bridge.job_store().get(job_id)
    folder = RunFolder(job.run_dir)
    series = {}
    for name in folder.metric_names():
        points = [
            [step, value] for step, value in folder.metric_series(name) if jobs_bridge.plain_number(value)
        ]
        if points:
            series[name] = points
    return {"series": series}


def sample_bytes(job_id: str, step: int | None) -> bytes:
    job = jobs_bridge.job_store().get(job_id)
    folder = RunFolder(job.run_dir)
    path = folder.latest_sample() if step is None else folder.sample_path(step)
    if path is None or not Path(path).is_file():
        what = "no sample yet" if step is None else f"no sample of step {step}"
        raise RouteError(404, f"job {job_id} has {what}")
    return sample_inside_run_folder(job, path)


def sample_inside_run_folder(job, path) -> bytes:
    """The sample's bytes; 404 when ``path`` leads out of the job's run folder (a link)."""
    if Path(job.run_dir).resolve() not in Path(path).resolve().parents:
        raise RouteError(404, f"job {job.id}'s sample is outside its run folder")
    return Path(path).read_bytes()


def log_lines(job_id: str, count: int) -> dict:
    """The last ``count`` lines of train.log, from at most its last MiB (a huge log is never read whole)."""
    job = jobs_bridge.job_store().get(job_id)
    try:
        return {"lines": runner.read_log_tail(job, count)}
    except InputError as error:  # a link out of the run folder
        raise RouteError(404, str(error)) from None


def cancel(job_id: str) -> dict:
    store = jobs_bridge.job_store()
    runner.reconcile(store)
    return runner.cancel(store, job_id).to_record()


def resume(job_id: str, iterations: int | None) -> dict:
    store = jobs_bridge.job_store()
    job = runner.resume(store, job_id, num_iterations=iterations, start=False)
    runner.dispatch(store)  # with the environment ComfyUI recorded in the job
    return store.get(job.id).to_record()


def delete(job_id: str, files: bool) -> dict:
    return runner.delete(jobs_bridge.job_store(), job_id, files=files).to_record()


def export(job_id: str) -> dict:
    job = jobs_bridge.job_store().get(job_id)
    jobs_bridge.export_loras(job)
    return jobs_bridge.job_detail(job)


# --- the handlers ------------------------------------------------------------------------------


@_handler
async def get_jobs(request: web.Request) -> web.Response:
    return web.json_response(await _run(list_jobs))


get_job = job_json_handler(one_job)


get_metrics = job_json_handler(metrics)


@_handler
async def get_sample(request: web.Request) -> web.Response:
    step = _int_query(request, "step", None, 0, 10**9)
    body = await _run(sample_bytes, request.match_info["job_id"], step)
    return png_response(body)


@_handler
async def get_log(request: web.Request) -> web.Response:
    count = _int_query(request, "lines", DEFAULT_LOG_LINES, 1, MAX_LOG_LINES)
    return web.json_response(await _run(log_lines, request.match_info["job_id"], count))


post_cancel = job_json_handler(cancel)


@_handler
async def post_resume(request: web.Request) -> web.Response:
    iterations = None
    if request.can_read_body:
        iterations = (await json_body(request, '{"iterations": 500}')).get("iterations")
        if iterations is not None and (not isinstance(iterations, int) or isinstance(iterations, bool)):
            raise RouteError(400, f"iterations should be a whole number, got {iterations!r}")
    return web.json_response(await _run(resume, request.match_info["job_id"], iterations))


post_export = job_json_handler(export)


@_handler
async def delete_job(request: web.Request) -> web.Response:
    files = request.query.get("files", "0").lower() in ("1", "true", "yes")
    return web.json_response(await _run(delete, request.match_info["job_id"], files))


ROUTES = (
    ("GET", PREFIX, get_jobs),
    ("GET", PREFIX + "/{job_id}", get_job),
    ("GET", PREFIX + "/{job_id}/metrics", get_metrics),
    ("GET", PREFIX + "/{job_id}/sample", get_sample),
    ("GET", PREFIX + "/{job_id}/log", get_log),
    ("POST", PREFIX + "/{job_id}/cancel", post_cancel),
    ("POST", PREFIX + "/{job_id}/resume", post_resume),
    ("POST", PREFIX + "/{job_id}/export", post_export),
    ("DELETE", PREFIX + "/{job_id}", delete_job),
)

_registered: set[int] = set()


def add_routes_once(server, routes, registered: set[int]) -> bool:
    """Add ``routes`` to ``server.routes`` unless ``registered`` holds that route table; True when added now."""
    if server is None or id(server.routes) in registered:
        return False
    for method, path, handler in routes:
        server.routes.route(method, path)(handler)
    registered.add(id(server.routes))
    return True


def register_routes(server) -> bool:
    """Add the routes to ``server.routes`` (once per route table); True when added now."""
    return add_routes_once(server, ROUTES, _registered)


__all__ = ["ROUTES", "register_routes"]
