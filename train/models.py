"""Fold model architectures: a registry of backbones and the wrappers that make them bundle members.

    net = create_model("efficientnet_b2", input_dtype="uint8")     # RecallNet: logits (B, 1)
    exported = ProbabilityModel(net)                               # probabilities (B, 1), float32

Every backbone takes 3 channels and returns one logit. `RecallNet` puts the pixel path's
output (one channel, unnormalised, of the bundle's dtype) into that form, so the exported
artifacts take exactly what the engine feeds them (docs/scoring.md, "Model artifacts").
Graphs stay free of data-dependent control flow so that both exporters can trace them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from mammo_batch.engine.pixels.settings import FULL_SCALE  # the pixel path's white per dtype


class TinyNet(nn.Module):
    """A small CNN (~130k parameters) for tests and the demo; fast on a CPU at 256x128.

    Five stages of two conv-bn-relu each (the first halves the resolution), then global max
    pooling and a linear layer. Max, not average: the score is about the most suspicious
    spot, and averaging dilutes a small lesion over the whole breast. On synthetic phantoms
    at 256x128 this learnt planted lesions in 2-4 epochs of 600 views (3 seeds), where one
    conv per stage with max+avg pooling often stalled for 5-8 epochs.
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 1,
                 widths: Sequence[int] = (16, 24, 32, 48, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for width in widths:
            layers += _conv_bn_relu(channels, width, stride=2) + _conv_bn_relu(width, width, stride=1)
            channels = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def get_classifier(self) -> nn.Module:
        """The final layer, named as timm models name theirs."""
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).amax(dim=(2, 3)))


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def _timm(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    """A factory for a timm model with one output and 3 input channels, no downloads."""

    def build() -> nn.Module:
        import timm  # imported here: `list_archs()` and `tiny` work without timm

        return timm.create_model(name, pretrained=False, num_classes=1, in_chans=3, **kwargs)

    build.__doc__ = f"timm {name!r} {kwargs or ''}".strip()
    return build


def _tiny() -> nn.Module:
    """TinyNet, defined above."""
    return TinyNet(in_chans=3, num_classes=1)


def _mammo_clip(variant: str) -> Callable[[], nn.Module]:
    """Mammo-CLIP's EfficientNet as the seed finetuned it (train/lukemelas_efficientnet.py)."""

    def build() -> nn.Module:
        from mammo_batch.train.lukemelas_efficientnet import mammo_clip_efficientnet

        return mammo_clip_efficientnet(variant)

    build.__doc__ = f"timm tf_efficientnet_{variant} with lukemelas' fixed pads and the seed's head"
    return build


# name -> factory of the bare backbone (3-channel input, one logit out).
ARCHS: dict[str, Callable[[], nn.Module]] = {
    "tiny": _tiny,
    "resnet18": _timm("resnet18"),
    "efficientnet_b2": _timm("tf_efficientnet_b2"),
    "efficientnet_b5": _timm("tf_efficientnet_b5"),
    # global max pooling, as the RSNA 2023 winner's ConvNeXt-S (docs/training.md); with one
    # output this is also the seed's FineTuneRSNA
    "convnext_small": _timm("convnext_small", global_pool="max"),
    # Mammo-CLIP's encoders, exactly (fixed "same" pads of lukemelas' code, BN momentum 0.01),
    # with the seed's MLP head: the seed's FineTuneMammoClip
    "tf_efficientnet_b2": _mammo_clip("b2"),
    "tf_efficientnet_b5": _mammo_clip("b5"),
}


def list_archs() -> list[str]:
    """The architecture names `create_model` accepts."""
    return list(ARCHS)


class RecallNet(nn.Module):
    """Backbone + input handling: (B, 1, H, W) pixels -> (B, 1) logits.

    The input is the pixel path's output as it is (uint8 0..255, uint16 0..65535 or float32
    0..1), or a float tensor in that same range (augmented training batches). It is scaled
    to [0, 1] by the dtype's constant, normalised with `mean`/`std` (one value, or three for
    per-channel statistics such as ImageNet's) and repeated to the backbone's 3 channels.
    """

    def __init__(self, backbone: nn.Module, input_dtype: str = "uint8",
                 mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5) -> None:
        super().__init__()
        if input_dtype not in FULL_SCALE:
            raise ValueError(f"input_dtype must be one of {sorted(FULL_SCALE)}, got {input_dtype!r}")
        self.backbone = backbone
        self.input_dtype = input_dtype
        self.full_scale = FULL_SCALE[input_dtype]
        # Buffers, not constants: they travel with state_dict() and into the exported graphs.
        self.register_buffer("mean", _channel_stats(mean, "mean"))
        self.register_buffer("std", _channel_stats(std, "std"))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.float32) / self.full_scale
        # (B,1,H,W) - (1,C,1,1) broadcasts to C channels; expand makes it 3 without copying.
        x = (x - self.mean) / self.std
        return self.backbone(x.expand(-1, 3, -1, -1))


class ProbabilityModel(nn.Module):
    """The exported form of a RecallNet: (B, 1, H, W) pixels -> (B, 1) float32 probabilities."""

    def __init__(self, net: RecallNet) -> None:
        super().__init__()
        self.net = net

    @property
    def input_dtype(self) -> str:
        return self.net.input_dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(image).to(torch.float32))


def create_model(arch: str, input_dtype: str = "uint8", init: str | Path | None = None, *,
                 mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 trust_pickle: bool = False) -> RecallNet:
    """Build `arch` (one of `list_archs()`) as a RecallNet, optionally with weights from `init`.

    `init` is "FORMAT:PATH" (a format of `mammo_batch.train.importers.IMPORTERS`: mammo-clip,
    rsna-convnext, mirai, seed) or a bare path to a state dict ("auto"), loaded by
    `mammo_batch.train.init_weights.load_init_spec`; `trust_pickle` lets the restricted
    unpickler read a whole pickled model (Mirai).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(list_archs())}")
    net = RecallNet(ARCHS[arch](), input_dtype=input_dtype, mean=mean, std=std)
    if init is not None:
        from mammo_batch.train.init_weights import load_init_spec  # init_weights imports this module

        load_init_spec(net, init, trust_pickle=trust_pickle, arch=arch)
    return net


def _channel_stats(value: float | Sequence[float], what: str) -> torch.Tensor:
    """One value or three (per channel) as a (1, C, 1, 1) float32 tensor."""
    values = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) not in (1, 3):
        raise ValueError(f"{what} must be one value or three, got {len(values)}")
    if what == "std" and min(values) <= 0:
        raise ValueError(f"std must be positive, got {values}")
    return torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)
