"""Background training jobs: a SQLite job store and a runner that starts detached trainers.

Importing this package imports nothing heavy (no torch, numpy or ComfyUI): the nodes,
the ComfyUI routes and the ``paco jobs`` command use it at startup.

- :mod:`~paco_core.jobs.store`: :class:`JobStore` (one row per job, statuses, migrations)
  and :func:`resolve_home` (where the store lives).
- :mod:`~paco_core.jobs.runner`: submit, dispatch (one running job per device), cancel,
  resume, delete, reconcile (pid + start time + the run folder's progress file).
- :mod:`~paco_core.jobs.supervise`: the small detached process that runs one trainer,
  records its end in the store and hands the device over to the next queued job.

See docs/jobs.md.
"""

from paco_core.jobs.store import JOB_STATUSES, Job, JobStore, resolve_home

__all__ = ["JOB_STATUSES", "Job", "JobStore", "resolve_home"]
