"""HTTP routes of the job actions artists expect from a trainer (docs/jobs.md, "Working with a job").

| method and path | answer |
| --- | --- |
| ``POST /paco/jobs/{id}/sample`` | ``{"id", "kind", "requested", "last"}``; body ``{"prompt": "..."}`` optional |
| ``POST /paco/jobs/{id}/save`` | the same for a checkpoint |
| ``GET /paco/jobs/{id}/requests`` | ``{"sample": {"pending", "done"}, "save": {...}}`` |
| ``GET /paco/jobs/{id}/requested-sample`` | the latest "sample now" grid, ``image/png`` (404 when none) |
| ``POST /paco/jobs/{id}/continue`` | the new job's record; body ``{"iterations": N, "from": "last"|"best", "name": "..."}`` |
| ``POST /paco/jobs/{id}/move`` | ``{"job": record, "positions": {...}}``; body ``{"where": "up"|"down"|"front"}`` |
| ``GET /paco/jobs/{id}/lineage`` | ``{"lineage": [record, ...], "children": [record, ...]}`` (oldest first) |
| ``GET /paco/jobs/{id}/prompts`` | ``{"train": [entry, ...], "eval": [...]}``, lowest reward first |
| ``GET /paco/job-queue`` | ``{"positions": {id: position in its device's queue}}`` |
| ``GET /paco/job-compare?ids=a,b`` | ``{"rows": [...], "curves": [...]}`` |

Errors as in :mod:`.routes`: 400 bad value, 404 unknown job, 409 the job's status forbids it.
"""

from __future__ import annotations

from aiohttp import web

from paco_core import run_requests
from paco_core.jobs import compare as compare_runs
from paco_core.jobs import controls, lineage, queue_order, runner

from . import jobs_bridge
from .routes import (
    RouteError,
    _handler,
    _run,
    add_routes_once,
    job_json_handler,
    json_body,
    png_response,
    sample_inside_run_folder,
)

PREFIX = "/paco/jobs"
MAX_COMPARED = 8


# --- the work, run in the executor ------------------------------------------------------------


def ask(job_id: str, kind: str, prompt: str | None) -> dict:
    return controls.request(jobs_bridge.job_store(), job_id, kind, prompt=prompt)


def request_state(job_id: str) -> dict:
    job = jobs_bridge.job_store().get(job_id)
    return {
        kind: {
            "pending": run_requests.pending_request(job.run_dir, kind),
            "done": run_requests.read_done(job.run_dir, kind),
        }
        for kind in run_requests.REQUEST_KINDS
    }


def requested_sample(job_id: str) -> bytes:
    job = jobs_bridge.job_store().get(job_id)
    found = run_requests.requested_samples(job.run_dir)
    if not found:
        raise RouteError(404, f"job {job_id} has no requested sample yet")
    return sample_inside_run_folder(job, found[-1][1])


def continue_(job_id: str, iterations, start_from: str, name: str | None) -> dict:
    store = jobs_bridge.job_store()
    child = lineage.continue_job(
        store, job_id, iterations=iterations, start_from=start_from, name=name, start=False
    )
    runner.dispatch(store)  # with the environment ComfyUI recorded in the job
    return store.get(child.id).to_record()


def move(job_id: str, where: str) -> dict:
    store = jobs_bridge.job_store()
    job = queue_order.move(store, job_id, where)
    return {"job": job.to_record(), "positions": queue_order.positions(store)}


def job_lineage(job_id: str) -> dict:
    store = jobs_bridge.job_store()
    return {
        "lineage": [job.to_record() for job in lineage.lineage(store, job_id)],
        "children": [job.to_record() for job in lineage.children(store, job_id)],
    }


def prompts(job_id: str) -> dict:
    """Each prompt with its latest rewards, the lowest (first reward's) mean first: what the LoRA has not learned."""
    job = jobs_bridge.job_store().get(job_id)
    found = run_requests.read_prompt_rewards(job.run_dir)
    answer = {}
    for part, entries in found.items():
        rows = [{"index": index, **entry} for index, entry in entries.items() if isinstance(entry, dict)]
        answer[part] = sorted(rows, key=_first_mean)
    return answer


def _first_mean(row: dict) -> float:
    rewards = row.get("rewards") if isinstance(row.get("rewards"), dict) else {}
    for value in rewards.values():
        if isinstance(value, dict) and isinstance(value.get("mean"), int | float):
            return float(value["mean"])
    return float("inf")


def queue_positions() -> dict:
    store = jobs_bridge.job_store()
    runner.reconcile(store)
    return {"positions": queue_order.positions(store)}


def compare(ids: list[str]) -> dict:
    store = jobs_bridge.job_store()
    return {"rows": compare_runs.compare(store, ids), "curves": compare_runs.curves(store, ids)}


# --- the handlers ------------------------------------------------------------------------------


@_handler
async def post_sample(request: web.Request) -> web.Response:
    body = await json_body(request, '{"prompt": "a red fox"}')
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise RouteError(400, f"prompt should be text, got {prompt!r}")
    return web.json_response(await _run(ask, request.match_info["job_id"], "sample", prompt))


post_save = job_json_handler(ask, "save", None)


get_requests = job_json_handler(request_state)


@_handler
async def get_requested_sample(request: web.Request) -> web.Response:
    body = await _run(requested_sample, request.match_info["job_id"])
    return png_response(body)


@_handler
async def post_continue(request: web.Request) -> web.Response:
    body = await json_body(request, '{"iterations": 200}')
    iterations = body.get("iterations")
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise RouteError(
            400,
            f'iterations should be a whole number (how many more), e.g. {{"iterations": 200}}, got {iterations!r}',
        )
    start_from = body.get("from", "last")
    name = body.get("name") or None
    if name is not None and not isinstance(name, str):
        raise RouteError(400, f"name should be text, got {name!r}")
    return web.json_response(
        await _run(continue_, request.match_info["job_id"], iterations, start_from, name)
    )


@_handler
async def post_move(request: web.Request) -> web.Response:
    body = await json_body(request, '{"where": "front"}')
    return web.json_response(await _run(move, request.match_info["job_id"], body.get("where")))


get_lineage = job_json_handler(job_lineage)


get_prompts = job_json_handler(prompts)


@_handler
async def get_queue(request: web.Request) -> web.Response:
    return web.json_response(await _run(queue_positions))


@_handler
async def get_compare(request: web.Request) -> web.Response:
    ids = [part for part in request.query.get("ids", "").split(",") if part.strip()]
    if len(ids) > MAX_COMPARED:
        raise RouteError(400, f"compare at most {MAX_COMPARED} jobs at once, got {len(ids)}")
    return web.json_response(await _run(compare, [part.strip() for part in ids]))


ROUTES = (
    ("POST", PREFIX + "/{job_id}/sample", post_sample),
    ("POST", PREFIX + "/{job_id}/save", post_save),
    ("GET", PREFIX + "/{job_id}/requests", get_requests),
    ("GET", PREFIX + "/{job_id}/requested-sample", get_requested_sample),
    ("POST", PREFIX + "/{job_id}/continue", post_continue),
    ("POST", PREFIX + "/{job_id}/move", post_move),
    ("GET", PREFIX + "/{job_id}/lineage", get_lineage),
    ("GET", PREFIX + "/{job_id}/prompts", get_prompts),
    ("GET", "/paco/job-queue", get_queue),
    ("GET", "/paco/job-compare", get_compare),
)

_registered: set[int] = set()


def register_action_routes(server) -> bool:
    """Add the routes to ``server.routes`` (once per route table); True when added now."""
    return add_routes_once(server, ROUTES, _registered)


__all__ = ["ROUTES", "register_action_routes"]
