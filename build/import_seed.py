"""`mammo-batch import-seed CKPT... --out BUNDLE`: the seed's fold checkpoints -> a scoring bundle.

    import_seed([SeedFold(Path("convnext_fold0/model_best.pth.tar"))], Path("bundle"))

Each checkpoint is read by the `seed` importer (train/importers/seed.py), which also says its
architecture; its input size is the seed's for that architecture unless given (PATH@HxW):
ConvNeXt-S 2048x1024, EfficientNet-B2/B5 1536x768. Each member is built by the one member
builder (member.py: ONNX, torch.export, FP16 ONNX, parity, the FP16 and bf16 gates) on views
prepared by the seed's own preprocessing (the `seed` profile), and recorded with the seed's
aggregation (mean over models, mean per breast, max per study). Provenance names every source
file and its sha256. No weights are shipped. The bundle is written atomically (staging.py).
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

from mammo_batch import __version__
from mammo_batch.build.member import BF16_GATE_VIEWS, GateViews, MemberSpec, ViewError, build_member
from mammo_batch.build.parity import ParityError
from mammo_batch.build.staging import StagingError, staged_bundle
from mammo_batch.engine.bundle import Bundle, BundleError, Member, sha256_file, write_bundle
from mammo_batch.engine.cli.options import parse_size
from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.train.importers.seed import import_seed as import_seed_weights
from mammo_batch.train.init_weights import InitWeightsError, load_init
from mammo_batch.train.labels import read_labels
from mammo_batch.train.models import ProbabilityModel, create_model

log = logging.getLogger("mammo_batch.build")

# The seed's input size per architecture (its README's fold runs).
SEED_SIZES = {"convnext_small": (2048, 1024), "tf_efficientnet_b5": (1536, 768),
              "tf_efficientnet_b2": (1536, 768)}


@dataclass(frozen=True)
class SeedFold:
    path: Path
    size: tuple[int, int] | None = None  # (H, W); None: the seed's size for the architecture

    @classmethod
    def parse(cls, spec: str) -> SeedFold:
        """"PATH" or "PATH@HxW"."""
        path, sep, size = spec.rpartition("@")
        if sep and re.fullmatch(r"\d+x\d+", size):
            return cls(Path(path), parse_size(size))
        return cls(Path(spec))


def import_seed(folds: list[SeedFold], out: Path, threshold: float = 0.5, name: str = "seed-ensemble",
                parity_views: Path | None = None) -> Path:
    """Export every fold into the bundle directory `out`, atomically; returns it."""
    if not folds:
        raise click.UsageError("no checkpoints given")
    with tempfile.TemporaryDirectory() as tmp, staged_bundle(out) as stage:
        views = gate_views(parity_views, Path(tmp))
        members = tuple(_member(fold, index, stage, views) for index, fold in enumerate(folds))
        write_bundle(stage, Bundle(
            name=name, members=members, threshold=threshold,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            description=f"{len(members)} fold checkpoints of the seed (Kaggle_SPR), imported by "
                        f"mammo-batch {__version__}; scored with the seed's preprocessing",
            provenance={"code_version": __version__, "command": sys.argv, "importer": "seed",
                        "sources": [{"file": str(f.path.resolve()), "sha256": sha256_file(f.path)} for f in folds],
                        "parity_views": str(parity_views) if parity_views else "synthetic",
                        "threshold_rule": "given"}))  # loads it back: what score will do
    return out


def _member(fold: SeedFold, index: int, directory: Path, views: GateViews) -> Member:
    arch = import_seed_weights(fold.path).arch  # the file says its architecture
    net = create_model(arch, "uint8")
    report = load_init(net, fold.path, "seed", arch=arch)
    if report.missing:
        raise InitWeightsError(f"{fold.path}: no weights for {', '.join(report.missing[:5])}")
    log.info("%s: %s", fold.path.name, report.summary())
    number = re.search(r"fold_?(\d+)", str(fold.path))
    spec = MemberSpec(name=f"fold{number.group(1) if number else index}_{arch}_{index}",
                      fold=int(number.group(1)) if number else index, arch=arch,
                      size=fold.size or SEED_SIZES[arch], settings=PreprocessSettings(profile="seed", window="minmax"))
    return build_member(ProbabilityModel(net).eval(), directory, spec, views)


def gate_views(folder: Path | None, tmp: Path) -> GateViews:
    """Views to check the exports on: the user's DICOM files, else synthetic studies. Labels, for
    the bf16 gate's study AUC, come from a labels.csv (the seed's train.csv format) in the folder."""
    if folder is None:
        from mammo_batch.synth import write_studies

        folder = tmp / "synthetic"
        write_studies(folder, 2, seed=0, size=(512, 416), positive_rate=0.5)
    files = sorted(p for p in folder.rglob("*.dcm") if p.is_file())
    if not files:
        raise click.UsageError(f"{folder}: no .dcm files to check parity on")
    labels = read_labels(folder / "labels.csv") if (folder / "labels.csv").is_file() else {}
    rows = []
    for path in files[:BF16_GATE_VIEWS]:
        record = read_view(path)
        label = labels.get(record.accession_number)
        rows.append({"path": path, "study_key": record.accession_number or record.study_instance_uid or str(path),
                     "laterality": record.laterality,
                     "target": None if label is None else label.target})
    return GateViews.of_rows(rows)


@click.command("import-seed")
@click.argument("checkpoints", nargs=-1, required=True, metavar="CKPT[@HxW]...")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The bundle directory to write.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Recall threshold on the study score (the seed's files carry none).")
@click.option("--name", default="seed-ensemble", show_default=True)
@click.option("--parity-views", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="DICOM views to check the exports on (default: synthetic studies).")
def import_seed_command(checkpoints: tuple[str, ...], out: Path, threshold: float, name: str,
                        parity_views: Path | None) -> None:
    """Import the seed's fold checkpoints (model_best.pth.tar; ConvNeXt-S or EfficientNet-B2/B5)
    into a bundle that `mammo-batch score --models` runs with the seed's preprocessing."""
    logging.getLogger("mammo_batch").setLevel(logging.INFO)
    try:
        path = import_seed([SeedFold.parse(c) for c in checkpoints], out, threshold, name, parity_views)
    except (InitWeightsError, ParityError, StagingError, BundleError, ViewError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"wrote bundle {path} ({len(checkpoints)} members, seed profile)")
