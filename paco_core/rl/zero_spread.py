"""Groups that teach nothing: prompts whose images all got the same rewards.

A group's advantages are its images' rewards minus the group mean, over the std: when
every reward is (nearly) the same for all of a group's images, every advantage is (nearly)
0, the PPO loss has no gradient, and the group's whole rollout was spent for nothing
(a prompt the model always fails, or always gets right, or a judge that always answers
the same). :func:`zero_spread_groups` finds them from the iteration's reward matrix; the
trainer counts them in ``groups/zero_spread`` every iteration and, with
``data.drop_zero_spread_prompts``, no longer samples their prompts
(:meth:`PromptSampler.drop <paco_core.rl.data.PromptSampler.drop>`; other prompts take
their place). Dropping changes which prompts train, so it is off in the released presets.

Example:
    >>> import numpy as np
    >>> zero_spread_groups(np.array([[0.5], [0.5], [0.1], [0.9]]), np.array([0, 0, 1, 1]))
    [0]
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1e-4
"""Spread (std) under which a reward is 'the same' within a group: the advantages' own epsilon."""


def zero_spread_groups(
    rewards: np.ndarray, groups: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE
) -> list[int]:
    """The group ids whose scored images have every reward's std at most ``tolerance``.

    Args:
        rewards: ``(N, K)`` reward matrix, NaN where a reward could not score an image.
        groups: ``(N,)`` group id of each image.
        tolerance: the std at or under which a reward column counts as constant.

    Returns:
        Sorted group ids; groups with fewer than 2 fully scored images are not counted
        (they are left out of the update for another reason: unscorable images).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim == 1:
        rewards = rewards[:, None]
    groups = np.asarray(groups)
    scored = ~np.isnan(rewards).any(axis=1)
    found = []
    for group in np.unique(groups):
        members = rewards[(groups == group) & scored]
        if members.shape[0] >= 2 and bool((members.std(axis=0) <= tolerance).all()):
            found.append(int(group))
    return found
