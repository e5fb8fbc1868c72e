"""The "sample now" and "save now" for a running job (docs/jobs.md).

Each writes a request file into the job's run folder (:mod:`paco_core.run_requests`); the
trainer takes it at its next step boundary, writes a sample grid
(``samples/requested/step-<N>.png``) or a checkpoint, and records the outcome. The run's
result does not change. A typed prompt becomes prompt rows the way PaCo Train LoRA's text
box does (a set block for FLUX; an instruction applied to the held-out images for edit
pipelines).
"""

from __future__ import annotations

import time
from typing import Any

from paco_core import run_requests
from paco_core.errors import InputError
from paco_core.families import edit_kinds
from paco_core.jobs import runner
from paco_core.jobs import store as st
from paco_core.jobs.store import JobStateError, JobStore


def request(store: JobStore, job_id: str, kind: str, *, prompt: str | None = None) -> dict[str, Any]:
    """Ask running job ``job_id`` for a sample (``kind`` ``sample``) or a checkpoint (``save``).

    Returns:
        ``{"id", "kind", "requested": the request, "last": the outcome of the previous one or None}``.

    Raises:
        JobNotFoundError / JobStateError: unknown id, or the job is not running.
        InputError: an unknown kind, a prompt for a save, or a prompt that is empty or too long.
    """
    if kind not in run_requests.REQUEST_KINDS:
        raise InputError(f"request kind {kind!r} should be one of {', '.join(run_requests.REQUEST_KINDS)}")
    runner.reconcile(store)
    job = store.get(job_id)
    if job.status != st.RUNNING:
        raise JobStateError(
            f"job {job_id} is {job.status}; {kind} now needs a running job (it acts at the next step boundary)"
        )
    fields = _prompt_fields(job.config, prompt) if kind == "sample" else {}
    if kind == "save" and prompt:
        raise InputError("save now takes no prompt; give the prompt to sample now")
    last = run_requests.read_done(job.run_dir, kind)
    record = run_requests.write_request(job.run_dir, kind, **fields)
    return {"id": job.id, "kind": kind, "requested": record, "last": last}


def _prompt_fields(config: dict[str, Any], prompt: str | None) -> dict[str, Any]:
    if prompt is None:
        return {}
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty: type a prompt, or leave it out to sample the held-out prompts")
    if len(prompt) > run_requests.MAX_PROMPT_CHARS:
        raise InputError(f"the prompt has {len(prompt)} characters; at most {run_requests.MAX_PROMPT_CHARS}")
    if (config.get("model") or {}).get("kind") in edit_kinds():
        return {"instruction": prompt.strip()}
    from paco_core.jobs.training_prompts import set_rows_from_text

    return {"rows": set_rows_from_text(prompt)}


def wait_done(store: JobStore, job_id: str, kind: str, since: float, *, timeout: float, poll: float = 0.25):
    """The outcome recorded after ``since`` (a request's time), or None when the job ended or
    ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        done = run_requests.read_done(job.run_dir, kind)
        if done and float(done.get("done_at") or 0) >= since:
            return done
        if job.is_final:
            return None
        runner.reconcile(store)
        time.sleep(poll)
    return None
