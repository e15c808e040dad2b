"""A temporary bundle of random-weight members, to time the seed's real architectures.

The weights are random, so the scores mean nothing; only the cost of the networks matters.
Built by the one member builder (build/member.py) exactly as `build` builds trained runs, with
the checks skipped (random weights: there is nothing to hold the artifacts to but themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from mammo_batch.build.member import MemberSpec, build_member
from mammo_batch.engine.bundle import Bundle, Member, write_bundle
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.train.models import ProbabilityModel, create_model, list_archs

Size = tuple[int, int]  # (height, width)

# The timm names the seed's write-up uses -> our architecture names (train/models.py).
TIMM_NAMES = {"tf_efficientnet_b2": "efficientnet_b2", "tf_efficientnet_b5": "efficientnet_b5"}


def arch_name(arch: str) -> str:
    """Our architecture name for `arch` (ours or its timm name); ValueError if unknown."""
    name = TIMM_NAMES.get(arch, arch)
    if name not in list_archs():
        raise ValueError(f"unknown arch {arch!r}; choose one of "
                         f"{', '.join(sorted({*list_archs(), *TIMM_NAMES}))}")
    return name


def random_member_bundle(members: Sequence[tuple[str, Size]], directory: Path, seed: int = 0) -> Path:
    """Export each (arch, (H, W)) with random weights into one bundle at `directory`.

    Member i is fold i, seeded `seed + i`; with several members it is named `fold{i}_{arch}` (as
    import-seed names them), so two members of one architecture stay apart; a lone member is `arch`.
    """
    if not members:
        raise ValueError("no member to build")
    directory.mkdir(parents=True, exist_ok=True)
    built = tuple(_random_member(arch, size, directory, i, seed + i, len(members) > 1)
                  for i, (arch, size) in enumerate(members))
    write_bundle(directory, Bundle(
        name="bench-" + "-".join(dict.fromkeys(m.arch for m in built)), members=built, threshold=0.5,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        description="random weights for timing only: NOT a model, its scores mean nothing",
        provenance={"written_by": "mammo-batch bench --arch", "random_seed": seed}))
    return directory


def _random_member(arch: str, size: Size, directory: Path, fold: int, seed: int,
                   numbered: bool) -> Member:
    name = arch_name(arch)
    torch.manual_seed(seed)
    model = ProbabilityModel(create_model(name)).eval()
    spec = MemberSpec(f"fold{fold}_{name}" if numbered else name, fold, name, size, PreprocessSettings())
    return build_member(model, directory, spec, views=None)
