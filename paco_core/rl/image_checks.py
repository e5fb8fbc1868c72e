"""Guardrail checks that need no second person and no extra model: the eval samples' image
statistics against the first evaluation's.

Reward gaming in RL on images shows in the pixels before anyone looks: grid artefacts and
high-frequency noise, blur, or over-saturation (reported across Flow-GRPO and DanceGRPO).
At every evaluation :func:`image_statistics` measures the eval images (fixed prompts and
seeds, so two evaluations differ only by the weights):

- ``high_frequency``: the share of the luminance spectrum's power above half the Nyquist
  frequency (noise, speckle);
- ``grid``: the share of power on the axis lines at multiples of 1/8 and 1/16 cycles per
  pixel (the VAE's 8-pixel and the packing's 16-pixel grid artefacts);
- ``sharpness``: the variance of the luminance Laplacian (falls when images blur);
- ``saturation``: the mean HSV saturation in [0, 1].

:class:`ImageChecks` keeps the first evaluation as the baseline and returns a warning when a
statistic moved the wrong way past ``tolerance`` (relative: 0.5 = up by half, or sharpness
down by half). A warning names the check, both values and both steps, so the sidebar can
show the baseline and the current sample side by side. Its state is plain JSON, saved in
the checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHECKS = {
    "high_frequency": ("up", "high-frequency energy (noise, speckle)"),
    "grid": ("up", "grid-pattern energy (8/16-pixel artefacts)"),
    "sharpness": ("down", "sharpness (the samples blur)"),
    "saturation": ("up", "colour saturation"),
}
"""Statistic -> (the direction that signals gaming, what it means)."""
FLOORS = {"high_frequency": 1e-4, "grid": 1e-4, "sharpness": 1e-6, "saturation": 0.02}
"""A baseline under its floor is compared as the floor (a flat first sample must not make
every later one look 'twice as noisy')."""
CODE_PREFIX = "image_"


def _luminance(image: Any) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _spectrum_shares(grey: np.ndarray) -> tuple[float, float]:
    """(high-frequency share, grid share) of the AC power of one luminance image."""
    height, width = grey.shape
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(height))[:, None]
    fx = np.abs(np.fft.fftfreq(width))[None, :]
    total = float(power.sum())
    if total <= 0:
        return 0.0, 0.0
    high = float(power[np.maximum(fx, fy) > 0.25].sum()) / total
    on_grid_x = np.zeros(width, dtype=bool)
    on_grid_y = np.zeros(height, dtype=bool)
    for period in (8, 16):
        for k in range(1, period // 2 + 1):
            on_grid_x |= np.isclose(np.abs(np.fft.fftfreq(width)), k / period, atol=0.5 / width)
            on_grid_y |= np.isclose(np.abs(np.fft.fftfreq(height)), k / period, atol=0.5 / height)
    grid_mask = (on_grid_y[:, None] & (fx == 0)) | (on_grid_x[None, :] & (fy == 0))
    grid_mask |= on_grid_y[:, None] & on_grid_x[None, :]
    return high, float(power[grid_mask].sum()) / total


def _sharpness(grey: np.ndarray) -> float:
    if min(grey.shape) < 3:
        return 0.0
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def _saturation(image: Any) -> float:
    return float(np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float64)[..., 1].mean() / 255.0)


def image_statistics(images: list) -> dict[str, float]:
    """The mean of each statistic over ``images`` (module doc); empty dict for no images.

    Example:
        >>> from PIL import Image
        >>> sorted(image_statistics([Image.new("RGB", (32, 32), (200, 40, 40))]))
        ['grid', 'high_frequency', 'saturation', 'sharpness']
    """
    if not images:
        return {}
    rows = []
    for image in images:
        grey = _luminance(image)
        high, grid = _spectrum_shares(grey)
        rows.append((high, grid, _sharpness(grey), _saturation(image)))
    means = np.asarray(rows).mean(axis=0)
    return dict(
        zip(("high_frequency", "grid", "sharpness", "saturation"), (float(v) for v in means), strict=True)
    )


class ImageChecks:
    """Compares every evaluation's image statistics with the first one's (see the module doc)."""

    def __init__(self, tolerance: float = 0.5):
        self.tolerance = tolerance
        self.baseline: dict[str, float] | None = None
        self.baseline_step: int | None = None
        self.fired: dict[str, int] = {}
        """Check -> the step it first fired (a check warns once, then updates its warning)."""

    def observe(self, step: int, stats: dict[str, float]) -> list[dict[str, Any]]:
        """Record an evaluation's statistics; returns the warnings of the checks that fire now."""
        if not stats:
            return []
        if self.baseline is None:
            self.baseline, self.baseline_step = dict(stats), step
            return []
        warnings = []
        for name, (direction, meaning) in CHECKS.items():
            if name not in stats or name not in self.baseline:
                continue
            base = max(self.baseline[name], FLOORS[name])
            value = stats[name]
            change = (value - base) / base
            if (direction == "up" and change > self.tolerance) or (
                direction == "down" and -change > self.tolerance
            ):
                self.fired.setdefault(name, step)
                warnings.append(self._warning(name, meaning, step, value, change))
        return warnings

    def _warning(self, name: str, meaning: str, step: int, value: float, change: float) -> dict[str, Any]:
        baseline = self.baseline[name]
        return {
            "code": f"{CODE_PREFIX}{name}",
            "check": name,
            "step": step,
            "since_step": self.fired[name],
            "baseline_step": self.baseline_step,
            "baseline": baseline,
            "value": value,
            "change": change,
            "samples": [self.baseline_step, step],
            "message": (
                f"The samples' {meaning} changed by {change:+.0%} since the first evaluation (step "
                f"{self.baseline_step}: {baseline:.4g}, step {step}: {value:.4g}; the check fires past "
                f"{self.tolerance:.0%}): the LoRA may be gaming its reward. Compare the two samples."
            ),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "baseline_step": self.baseline_step, "fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state.get("baseline")
        self.baseline_step = state.get("baseline_step")
        self.fired = {str(k): int(v) for k, v in (state.get("fired") or {}).items()}
