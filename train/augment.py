"""Augmentations for mammogram batches, on tensors, per sample.

Every model input has the chest wall on the left (the pixel path's convention), so there
is no horizontal flip: it would teach the model a layout it never sees. Vertical flips,
small affine moves, contrast/brightness and noise are what screening images vary by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    vflip: float = 0.5  # probability
    rotate_deg: float = 10.0
    scale: float = 0.10  # +- fraction
    shift: float = 0.05  # +- fraction of the size
    contrast: float = 0.20  # +- fraction
    brightness: float = 0.10  # +- fraction of the full scale
    noise: float = 0.02  # std as a fraction of the full scale


def augment(batch: torch.Tensor, full_scale: float, generator: torch.Generator,
            config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """(B, 1, H, W) float in [0, full_scale] -> an augmented copy in the same range."""
    x = batch.float()
    b = x.shape[0]

    def uniform(spread: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * spread

    flip = torch.rand(b, generator=generator) < config.vflip
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-2), x)
    x = _affine(x, uniform(math.radians(config.rotate_deg)), 1 + uniform(config.scale),
                uniform(config.shift), uniform(config.shift))
    contrast = (1 + uniform(config.contrast)).view(b, 1, 1, 1)
    brightness = (uniform(config.brightness) * full_scale).view(b, 1, 1, 1)
    x = x * contrast + brightness * (x > 0)  # background stays black
    x = x + torch.randn(x.shape, generator=generator) * config.noise * full_scale
    return x.clamp(0, full_scale)


def _affine(x: torch.Tensor, angle, scale, shift_x, shift_y) -> torch.Tensor:
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1),
                         torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
