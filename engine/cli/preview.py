"""`mammo-batch preview PATH --out DIR`: the exact model inputs as PNGs, and a contact sheet per study."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import click
import cv2
import numpy as np

from mammo_batch.engine.cli.options import (
    parse_size,
    parse_views,
    study_key_option,
    view_filter_option,
    workers_option,
)
from mammo_batch.engine.dicom import DecodeError, discover
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.pixels.voi import VOI_DICOM, VOI_MINMAX
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.studies import Study, group_studies

SHEET_TILE_HEIGHT = 512
# Hanging order on the sheet: right then left, CC before MLO.
VIEW_ORDER = {"CC": 0, "MLO": 1}


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNGs (created).")
@click.option("--size", default="1024x512", show_default=True, help="Model input HxW.")
@click.option("--window", type=click.Choice([VOI_DICOM, VOI_MINMAX]), default=VOI_DICOM,
              show_default=True, help="Use the file's VOI (window / LUT), or min-max.")
@click.option("--no-crop", is_flag=True, help="Keep the whole image (no breast crop).")
@click.option("--dtype", type=click.Choice(["uint8", "uint16"]), default="uint8", show_default=True,
              help="Model input type; uint16 writes 16-bit PNGs.")
@study_key_option
@view_filter_option
@workers_option
def preview(paths, out_dir: Path, size: str, window: str, no_crop: bool, dtype: str,
            study_key: str, view_filter: str | None, workers: int) -> None:
    """Write what the model will see: per view the model input, per study a labelled contact sheet.

    Files are named by position (study_0001/view_01.png), never by DICOM tag values;
    index.csv maps each PNG to its source file, laterality and view, and lists every file that
    was not rendered with its reason (status `skipped`: not a mammogram, duplicate, too_large, ...;
    `failed`: the pixel path failed on it).
    """
    height_width = parse_size(size)
    settings = PreprocessSettings(window=window, crop=not no_crop, dtype=dtype)
    # exclude: an --out inside an input folder holds this command's own PNGs and index, never inputs
    records = discover(paths, views=parse_views(view_filter), workers=workers, exclude=[out_dir])
    all_studies, orphans = group_studies(records, study_key)
    skipped = [v for s in all_studies for v in s.views if not v.scorable] + orphans
    studies = [s for s in all_studies if s.scorable]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    # A bar on a terminal only: off a terminal, click would print its label as a stray line.
    progress = (click.progressbar(studies, label="preview", show_pos=True, file=sys.stderr)
                if sys.stderr.isatty() else contextlib.nullcontext(studies))
    with ProcessPoolExecutor(max_workers=workers or None) as pool, progress as bar:
        for index, study in enumerate(bar, start=1):
            rows += _write_study(pool, study, out_dir / f"study_{index:04d}", height_width, settings)
    _write_index(out_dir / "index.csv", rows + [_skipped_row(v) for v in skipped])
    failed = sum(1 for r in rows if r["status"] != "ok")
    click.echo(f"wrote {len(rows) - failed} views of {len(studies)} studies to {out_dir} "
               f"({failed} failed, {_not_rendered(skipped)}; see index.csv)")


def _skipped_row(record: ViewRecord) -> dict:
    """index.csv's row for a file that was never rendered: why (the view policy's reason)."""
    error = f"{record.reason}: {record.detail}" if record.detail else record.reason
    return {"png": "", "study": "", "path": record.path, "sop_instance_uid": record.sop_instance_uid,
            "laterality": record.laterality, "view": record.view, "status": "skipped", "error": error}


def _not_rendered(skipped: list[ViewRecord]) -> str:
    """'3 not rendered: duplicate 1, too_large 2' (most common first), or '0 not rendered'."""
    counts = Counter(v.reason or v.status for v in skipped)
    by_reason = ", ".join(f"{reason} {n}" for reason, n in counts.most_common())
    return f"{len(skipped)} not rendered" + (f": {by_reason}" if by_reason else "")


def _write_study(pool, study: Study, folder: Path, size, settings) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    views = sorted(study.scorable, key=lambda v: (v.laterality != "R", VIEW_ORDER.get(v.view, 9)))
    results = pool.map(partial(_prepare_one, size=size, settings=settings), [v.path for v in views])
    rows, tiles = [], []
    for number, (view, (image, error)) in enumerate(zip(views, results, strict=True), start=1):
        png = folder / f"view_{number:02d}.png"
        if image is not None:
            cv2.imwrite(str(png), image)
            tiles.append((f"{view.laterality} {view.view}", image))
        rows.append({
            "png": str(png) if image is not None else "", "study": folder.name, "path": view.path,
            "sop_instance_uid": view.sop_instance_uid, "laterality": view.laterality,
            "view": view.view, "status": "ok" if image is not None else "failed", "error": error,
        })
    if tiles:
        cv2.imwrite(str(folder / "sheet.png"), contact_sheet(tiles))
    return rows


def _prepare_one(path: str, size, settings) -> tuple[np.ndarray | None, str]:
    try:
        return prepare_file(path, [size], settings).inputs[size], ""
    except (DecodeError, ValueError) as exc:
        return None, safe_error(exc, 300)


def contact_sheet(tiles: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """The views side by side at one height, each labelled in its top-left corner."""
    row = []
    for label, image in tiles:
        tile = _to_uint8(image)
        scale = SHEET_TILE_HEIGHT / tile.shape[0]
        tile = cv2.resize(tile, (round(tile.shape[1] * scale), SHEET_TILE_HEIGHT),
                          interpolation=cv2.INTER_AREA)
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (80, 80, 80), 1)
        cv2.putText(tile, label, (8, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 200, 255), 2)
        row.append(tile)
    return np.concatenate(row, axis=1)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _write_index(path: Path, rows: list[dict]) -> None:
    fields = ["png", "study", "path", "sop_instance_uid", "laterality", "view", "status", "error"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
