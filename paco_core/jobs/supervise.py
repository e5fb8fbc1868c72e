"""The supervisor of one job: ``python -m paco_core.jobs.supervise <job id> --home DIR``.

Started detached by :func:`paco_core.jobs.runner.dispatch` once the job holds its device.
It writes the job's config into the run folder, starts the trainer in its own process
group (output appended to ``train.log``), records the trainer's pid and start time, keeps
step / total / checkpoints in the store up to date, and when the trainer ends records its
exit code and final status, then dispatches the next queued job: the device is handed
over even when nobody else is running (no ComfyUI, no CLI).

If the supervisor itself dies, the trainer goes on; whoever reads the store next
reconciles the job from the trainer's pid and the progress file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from paco_core.errors import PaCoError
from paco_core.jobs import runner
from paco_core.jobs import store as st
from paco_core.run_folder import RunFolder
from paco_core.run_folder.processes import process_start_time

REFRESH_S = 2.0


def supervise(store: st.JobStore, job_id: str) -> int:
    """Run job ``job_id`` (already claimed by dispatch) to its end; returns the trainer's exit code."""
    me = os.getpid()
    if not store.update(
        job_id, expect=st.ACTIVE_STATUSES, supervisor_pid=me, supervisor_start=process_start_time(me)
    ):
        _say(f"job {job_id} is not claimed for a run; nothing to do")
        return 0
    job = store.get(job_id)
    if job.status == st.STOPPING:
        store.update(job_id, expect=(st.STOPPING,), status=st.STOPPED, ended_at=time.time())
        runner.dispatch(store)
        return 0
    try:
        if job.resume and not runner.has_checkpoint(job.run_dir):
            # nothing to resume from: start over, clearing what the failed attempt left
            RunFolder(job.run_dir).clear()
        runner.write_job_config(job)
        command = runner.trainer_command(job)
        _say(f"job {job_id} attempt {job.attempts}: {' '.join(command)}")
        with open(os.path.join(job.run_dir, runner.LOG_FILE), "ab") as log:
            trainer = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                env=trainer_env(),
            )
    except (OSError, PaCoError) as error:
        store.update(
            job_id, status=st.FAILED, ended_at=time.time(), error=f"cannot start the trainer: {error}"
        )
        runner.dispatch(store)
        return 1
    store.update(job_id, pid=trainer.pid, pid_start=process_start_time(trainer.pid))
    if store.get(job_id).status == st.STOPPING:  # cancelled while the trainer was being started
        runner.signal_group(trainer.pid, process_start_time(trainer.pid))
    while True:
        try:
            code = trainer.wait(timeout=REFRESH_S)
            break
        except subprocess.TimeoutExpired:
            _keep_going(_refresh, store, job_id)  # a full disk or a locked store never stops the trainer
    _say(f"job {job_id}: trainer exited with code {code}")
    for _attempt in range(FINAL_TRIES):  # record the end once the store can be written again
        if _keep_going(_record_end, store, job_id, code):
            break
        time.sleep(REFRESH_S)
    else:
        _say(f"job {job_id}: could not record its end; the next reader of the store reconciles it")
        return code
    _keep_going(runner.dispatch, store)
    return code


FINAL_TRIES = 150
"""How often (every REFRESH_S) the supervisor tries to record the trainer's end in a store it
cannot write (disk full, locked, read-only): about five minutes."""


def _refresh(store: st.JobStore, job_id: str) -> None:
    job = store.get(job_id)
    changed = {k: v for k, v in runner.progress_fields(job).items() if getattr(job, k) != v}
    if changed:
        store.update(job_id, expect=st.ACTIVE_STATUSES, **changed)


def _record_end(store: st.JobStore, job_id: str, code: int) -> None:
    job = store.get(job_id)
    status, error = runner.final_status(job, code)
    store.update(
        job_id,
        expect=st.ACTIVE_STATUSES,
        status=status,
        error=error,
        exit_code=code,
        ended_at=time.time(),
        **runner.progress_fields(job),
    )
    _say(f"job {job_id}: status {status}")


def _keep_going(step, *args) -> bool:
    """Run ``step``; a store or file error is said in the log (one line) instead of ending the supervisor."""
    global _last_problem
    try:
        step(*args)
    except (PaCoError, OSError) as error:
        problem = " ".join(str(error).split())
        if problem != _last_problem:  # said once, not every REFRESH_S
            _say(f"cannot update the job store now ({problem}); trying again")
        _last_problem = problem
        return False
    _last_problem = None
    return True


_last_problem: str | None = None


def trainer_env() -> dict[str, str]:
    """The trainer's environment: this one with progress bars off (train.log is a file: no
    carriage-return lines), unless the job's recorded environment says otherwise."""
    return {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", **os.environ}


def _say(message: str) -> None:
    print(f"[paco jobs {time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paco_core.jobs.supervise")
    parser.add_argument("job_id")
    parser.add_argument("--home", required=True)
    args = parser.parse_args(argv)
    try:
        supervise(st.JobStore(args.home), args.job_id)
    except PaCoError as error:  # the store could not be used before the trainer started
        _say(f"job {args.job_id}: cannot start: {' '.join(str(error).split())}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
