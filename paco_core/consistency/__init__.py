"""Tools that act on the judge's verdict: reference-anchored sets (``reference_sets``), repair
of the odd panel (``repair``), the most consistent set from a pool of candidates (``pool``)
and edit chains guarded against drift (``drift``).

Each tool is a function taking the judge (and, where it generates, a pipeline) and hooks,
and returning a dataclass with the images, the scores and a log of what was tried.
Heavy libraries are imported inside the functions.
"""

from paco_core.consistency.drift import GuardedChainResult, GuardOptions, guarded_edit_chain
from paco_core.consistency.pool import PoolResult, assemble_from_pool, choose_panels, score_pool

__all__ = [
    "GuardOptions",
    "GuardedChainResult",
    "PoolResult",
    "assemble_from_pool",
    "choose_panels",
    "guarded_edit_chain",
    "score_pool",
]
