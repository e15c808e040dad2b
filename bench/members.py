"""A temporary bundle of one random-weight member, to time the seed's real architectures.

The weights are random, so the scores mean nothing; only the cost of the network matters.
Built by the one member builder (build/member.py) exactly as `build` builds trained runs, with
the checks skipped (random weights: there is nothing to hold the artifacts to but themselves).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from mammo_batch.build.member import MemberSpec, build_member
from mammo_batch.engine.bundle import Bundle, write_bundle
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.train.models import ProbabilityModel, create_model, list_archs

# The timm names the seed's write-up uses -> our architecture names (train/models.py).
TIMM_NAMES = {"tf_efficientnet_b2": "efficientnet_b2", "tf_efficientnet_b5": "efficientnet_b5"}


def arch_name(arch: str) -> str:
    """Our architecture name for `arch` (ours or its timm name); ValueError if unknown."""
    name = TIMM_NAMES.get(arch, arch)
    if name not in list_archs():
        raise ValueError(f"unknown arch {arch!r}; choose one of "
                         f"{', '.join(sorted({*list_archs(), *TIMM_NAMES}))}")
    return name


def random_member_bundle(arch: str, size: tuple[int, int], directory: Path, seed: int = 0) -> Path:
    """Export `arch` with random weights at `size` (H, W) into a bundle at `directory`."""
    name = arch_name(arch)
    torch.manual_seed(seed)
    model = ProbabilityModel(create_model(name)).eval()
    directory.mkdir(parents=True, exist_ok=True)
    member = build_member(model, directory, MemberSpec(name, 0, name, size, PreprocessSettings()), views=None)
    write_bundle(directory, Bundle(
        name=f"bench-{name}", members=(member,), threshold=0.5,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        description="random weights for timing only: NOT a model, its scores mean nothing",
        provenance={"written_by": "mammo-batch bench --arch", "random_seed": seed}))
    return directory
