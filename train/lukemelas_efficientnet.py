"""Mammo-CLIP's EfficientNet-B2/B5 as timm modules that compute exactly what the original does.

    net = mammo_clip_efficientnet("b5")      # timm keys; seed head; lukemelas padding at any size

Mammo-CLIP (and the seed, which finetuned it) runs lukemelas' `efficientnet_pytorch`, whose
stride-2 convolutions pad by amounts fixed once from the nominal image size (B2 260 px, B5
456 px). timm's `tf_` models pad dynamically from the actual input, which differs whenever
a stride-2 conv sees an input whose parity differs from the nominal one: at the seed's
1536x768 every one does, and B5 outputs then move by whole units. `fix_same_pads` replaces
those convolutions by ones with lukemelas' fixed pads, keeping parameter names, so the
weights load unchanged and the ONNX / torch.export graphs carry constant pads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# lukemelas' nominal image size per variant (efficientnet_params), which fixes the pads.
NOMINAL_SIZE = {"b2": 260, "b5": 456}
BN_MOMENTUM = 0.01  # lukemelas: batch_norm_momentum 0.99 in TF terms = 0.01 in torch's
DROP_PATH_RATE = 0.2  # lukemelas' drop_connect_rate, scaled by block index as timm does
HIDDEN = 512  # the seed's head: Dropout, Linear(F, 512), ReLU, Dropout, Linear(512, n)
HEAD_DROPOUT = 0.1


class FixedPadConv2d(nn.Conv2d):
    """A convolution that zero-pads by a fixed (left, right, top, bottom) before convolving."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                         conv.dilation, conv.groups, conv.bias is not None)
        self.fixed_pad = pad
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.fixed_pad), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fixed_pad={self.fixed_pad}"


def lukemelas_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding lukemelas' Conv2dStaticSamePadding computes for an input side."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def fix_same_pads(model: nn.Module, image_size: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Replace every dynamic-"same" conv of a timm `tf_` model by lukemelas' fixed-pad one.

    Walks the convolutions in forward order, tracking the side length at `image_size` (square,
    as lukemelas assumes); returns (module name, pad) for each replaced conv.
    """
    from timm.layers.conv2d_same import Conv2dSame

    size, fixed = image_size, []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Conv2d):
            continue
        stride = module.stride[0]
        if isinstance(module, Conv2dSame):
            before, after = lukemelas_pad(size, module.kernel_size[0], stride, module.dilation[0])
            pad = (before, after, before, after)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, FixedPadConv2d(module, pad))
            fixed.append((name, pad))
        elif stride != 1:
            raise ValueError(f"{name}: a stride-{stride} conv with static padding; not a tf_ EfficientNet")
        size = math.ceil(size / stride)
    return fixed


def seed_head(in_features: int, num_classes: int = 1) -> nn.Sequential:
    """The seed's classifier (keys `1.*`, `4.*`, as its checkpoints' `classifier.1`/`classifier.4`)."""
    return nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Linear(in_features, HIDDEN), nn.ReLU(),
                         nn.Dropout(HEAD_DROPOUT), nn.Linear(HIDDEN, num_classes))


def mammo_clip_efficientnet(variant: str, num_classes: int = 1) -> nn.Module:
    """timm `tf_efficientnet_{variant}` with lukemelas' pads, BN momentum and the seed's head.

    Features are lukemelas' `_avg_pooling(extract_features(x))` (no post-pool dropout: Mammo-CLIP's
    encoder returns pooled features), then the seed's MLP head under the timm name `classifier`.
    """
    import timm

    if variant not in NOMINAL_SIZE:
        raise ValueError(f"variant must be one of {', '.join(NOMINAL_SIZE)}, got {variant!r}")
    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False, num_classes=num_classes,
                              in_chans=3, drop_rate=0.0, drop_path_rate=DROP_PATH_RATE)
    fix_same_pads(model, NOMINAL_SIZE[variant])
    model.classifier = seed_head(model.num_features, num_classes)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = BN_MOMENTUM
    return model
