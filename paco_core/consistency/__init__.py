"""Tools that act on the judge's verdict: reference-anchored sets (``reference_sets``) and
repair of the odd panel (``repair``). Each is a function taking a pipeline, a judge and
hooks, returning a dataclass with the images, the scores and a log of what was tried.

Import the submodule you need; this package imports nothing heavy.
"""
