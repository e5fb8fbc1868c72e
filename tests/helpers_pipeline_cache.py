"""What the tests read of the pipeline cache (``paco_core.models.pipelines``), which the pack never lists."""

from __future__ import annotations

from paco_core.models import pipelines


def cached_pipelines() -> list[pipelines.LoadedPipeline]:
    """The cached pipelines, least recently used first."""
    with pipelines._CACHE_LOCK:
        return pipelines._CACHE.values()
