"""Random sequences of nights over small synthetic studies, scored by the engine and by the oracle.

Shared by the property test (a fast profile in the suite) and benchmarks/bench_nightly_property.py
(the long profile). A World owns a folder with two input roots, writes and changes DICOM files the
way a PACS export and a RIS do, runs `mammo_batch.score` on chosen roots and checks every output
row against nightly_oracle.Oracle.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
from nightly_oracle import Meta, Night, Oracle

import mammo_batch
from mammo_batch.synth import make_view_dataset, phantom_view

# Two test bundles (tests/onnx_members.py): members that see the mean intensity, thresholds apart.
BUNDLES = {
    "first": dict(members=[dict(name="wide", height=48, width=24, weight=8.0, bias=-3.0),
                           dict(name="upper", height=32, width=16, weight=6.0, bias=-2.0, region=(0, 16, 0, 8))],
                  threshold=0.5),
    "second": dict(members=[dict(name="wide", height=48, width=24, weight=5.0, bias=-2.0)], threshold=0.4),
}
SIZE = (96, 80)
CONTENTS = 5
VIEWS = ("CC", "MLO")


def content_image(index: int, laterality: str, view: str) -> np.ndarray:
    return phantom_view(np.random.default_rng(1000 + index), SIZE, laterality, view)


def write_file(path: Path, meta: Meta, mtime: int) -> None:
    ds = make_view_dataset(content_image(meta.content, meta.laterality, meta.view), "hologic", meta.laterality,
                           meta.view, patient_id=meta.patient, accession_number=meta.accession,
                           study_instance_uid=meta.uid, sop_instance_uid=meta.sop)
    if meta.damaged:  # the header reads; the J2K codestream is garbage: a decode failure
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        ds.PixelData = pydicom.encaps.encapsulate([bytes(range(256)) * 4])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    os.utime(path, ns=(mtime, mtime))  # a strictly newer mtime for every write, whatever the clock


def calibrate(folder: Path, bundles: dict[str, object]) -> dict[tuple[int, str, str, str], float]:
    """(content, laterality, view, bundle id) -> view probability, each file scored alone by the engine."""
    probs = {}
    for name, ensemble in bundles.items():
        root = folder / f"calibration-{name}"
        paths = {}
        for content in range(CONTENTS):
            for laterality in ("L", "R"):
                for view in VIEWS:
                    path = root / f"{content}{laterality}{view}.dcm"
                    tag = f"{content}.{ord(laterality)}.{len(view)}"
                    meta = Meta(f"CAL{tag}", f"C{tag}", f"9.{tag}", f"9.9.{tag}", laterality, view, content)
                    write_file(path, meta, 10**18)
                    paths[str(path.resolve())] = (content, laterality, view)
        out = folder / f"calibration-{name}.parquet"
        mammo_batch.score([root], out=out, models=ensemble, workers=1, progress=False, views_out=folder / "v.parquet")
        views = pq.read_table(folder / "v.parquet").to_pylist()
        for row in views:
            content, laterality, view = paths[row["path"]]
            probs[(content, laterality, view, ensemble.bundle.id)] = row["prob"]
    return probs


@dataclass
class World:
    folder: Path
    bundles: dict[str, object]  # name -> Ensemble
    probs: dict[tuple[int, str, str, str], float]
    rng: random.Random
    disk: dict[str, Meta] = field(default_factory=dict)
    clock: int = 10**18
    serial: int = 0
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.roots = [self.folder / "r1", self.folder / "r2"]
        for root in self.roots:
            root.mkdir(parents=True, exist_ok=True)
        self.out = self.folder / "out" / "scores.parquet"
        self.out.parent.mkdir(exist_ok=True)
        defaults = {e.bundle.id: (e.bundle.aggregation["breast"], e.bundle.aggregation["study"], e.bundle.threshold)
                    for e in self.bundles.values()}
        self.oracle = Oracle(self.probs, defaults)

    # -- changes on disk --------------------------------------------------------------------------

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def _write(self, path: Path, meta: Meta) -> None:
        self.clock += 1_000_000
        write_file(path, meta, self.clock)
        self.disk[str(path.resolve())] = meta

    def add_exam(self) -> None:
        n = self._next()
        root = self.rng.choice(self.roots)
        accession = "" if self.rng.random() < 0.25 else f"A{n:04d}"
        for i in range(self.rng.randint(1, 3)):
            laterality, view = self.rng.choice("LR"), self.rng.choice(VIEWS)
            meta = Meta(f"P{n}", accession, f"1.2.{n}", f"1.2.{n}.{i}", laterality, view,
                        self.rng.randrange(CONTENTS))
            self._write(root / f"exam{n}" / f"{i}.dcm", meta)
        self.log.append(f"add exam {n} in {root.name}")

    def _pick(self) -> str | None:
        return self.rng.choice(sorted(self.disk)) if self.disk else None

    def delete_file(self) -> None:
        path = self._pick()
        if path:
            os.unlink(path)
            del self.disk[path]
            self.log.append(f"delete {path}")

    def modify_file(self) -> None:
        path = self._pick()
        if path:
            meta = replace(self.disk[path], content=(self.disk[path].content + 1) % CONTENTS)
            self._write(Path(path), meta)
            self.log.append(f"modify {path}")

    def rename_file(self) -> None:
        path = self._pick()
        if path:
            target = Path(path).with_name(f"renamed{self._next()}.dcm")
            os.rename(path, target)
            self.disk[str(target.resolve())] = self.disk.pop(path)
            self.log.append(f"rename {path}")

    def move_folder(self) -> None:
        path = self._pick()
        if path:
            folder = Path(path).parent
            target_root = self.roots[1] if folder.is_relative_to(self.roots[0]) else self.roots[0]
            target = target_root / f"moved{self._next()}"
            shutil.move(str(folder), str(target))
            for old in [p for p in self.disk if Path(p).parent == folder]:
                self.disk[str((target / Path(old).name).resolve())] = self.disk.pop(old)
            self.log.append(f"move {folder} -> {target}")

    def _exam_files(self) -> list[str]:
        path = self._pick()
        if not path:
            return []
        meta = self.disk[path]
        return [p for p, m in self.disk.items() if m.uid == meta.uid and m.patient == meta.patient]

    def change_accession(self) -> None:
        files = self._exam_files()
        if files:
            accession = f"A{self._next():04d}"
            for path in files:
                self._write(Path(path), replace(self.disk[path], accession=accession))
            self.log.append(f"accession of {len(files)} files -> {accession}")

    def second_accession(self) -> None:
        files = self._exam_files()
        if files:
            meta = self.disk[files[0]]
            n = self._next()
            new = replace(meta, accession=f"A{n:04d}", sop=f"{meta.uid}.9{n}", content=self.rng.randrange(CONTENTS))
            self._write(Path(files[0]).parent / f"second{n}.dcm", new)
            self.log.append(f"second accession A{n:04d} for {meta.uid}")

    def split_over_roots(self) -> None:
        files = self._exam_files()
        if files:
            meta = self.disk[files[0]]
            n = self._next()
            other = self.roots[1] if Path(files[0]).is_relative_to(self.roots[0]) else self.roots[0]
            new = replace(meta, sop=f"{meta.uid}.8{n}", laterality=self.rng.choice("LR"))
            self._write(other / f"split{n}" / "0.dcm", new)
            self.log.append(f"split {meta.uid} into {other.name}")

    def duplicate(self, damaged: bool) -> None:
        path = self._pick()
        if path:
            meta = replace(self.disk[path], damaged=damaged)
            root = self.rng.choice(self.roots)
            self._write(root / f"copies{self._next()}" / "copy.dcm", meta)
            self.log.append(f"{'damaged' if damaged else 'intact'} copy of {path}")

    CHANGES = ("add_exam", "add_exam", "delete_file", "modify_file", "rename_file", "move_folder",
               "change_accession", "second_accession", "split_over_roots", "intact_copy", "damaged_copy")

    def random_change(self) -> None:
        change = self.rng.choice(self.CHANGES)
        if change.endswith("_copy"):
            self.duplicate(damaged=change == "damaged_copy")
        else:
            getattr(self, change)()

    # -- nights -----------------------------------------------------------------------------------

    def random_night(self) -> Night:
        roots = self.rng.choice([(self.roots[0],), (self.roots[1],), tuple(self.roots)])
        bundle = self.rng.choice(sorted(self.bundles))
        return Night(tuple(str(r.resolve()) for r in roots), bundle,
                     threshold=self.rng.choice([None, None, 0.45, 0.55]),
                     breast_agg=self.rng.choice([None, None, "max"]),
                     views=self.rng.choice([None, None, None, frozenset({"CC"})]),
                     max_studies=self.rng.choice([None, None, None, 1]))

    def run_night(self, night: Night) -> None:
        previous = _rows_by_key(self.out) if self.out.exists() else {}
        ensemble = self.bundles[night.bundle]
        summary = mammo_batch.score(list(night.roots), out=self.out, models=ensemble, workers=1, progress=False,
                                    threshold=night.threshold, breast_agg=night.breast_agg, view_filter=night.views,
                                    views_out=self.out.with_name("views.parquet"), max_studies=night.max_studies)
        self.log.append(f"night {night.roots} {night.bundle} t={night.threshold} b={night.breast_agg} "
                        f"v={sorted(night.views) if night.views else None} max={night.max_studies}")
        self.oracle.run(replace(night, bundle=ensemble.bundle.id), self.disk, previous)
        assert summary.interrupted is None and (summary.stopped is not None) <= (night.max_studies is not None)
        self.check()

    def check(self) -> None:
        scores = _rows_by_key(self.out)
        views = pq.read_table(self.out.with_name("views.parquet")).to_pylist()
        oracle, context = self.oracle, "\n".join(self.log[-12:])
        paths = [v["path"] for v in views]
        assert len(paths) == len(set(paths)), f"a file twice in views.parquet\n{context}"
        assert sorted(paths) == sorted(oracle.rows), f"views.parquet files differ\n{context}"
        status = oracle.view_status(oracle.keys)
        for view in views:
            path = view["path"]
            want = status[path]
            assert (view["study_key"], view["status"], view["reason"]) == (oracle.keys[path], *want), \
                f"{path}: {view['study_key'], view['status'], view['reason']} != {oracle.keys[path], *want}\n{context}"
            if want[0] == "ok":
                assert abs(view["prob"] - oracle.prob(path)) < 1e-6, f"{path} prob\n{context}"
        assert sorted(scores) == sorted(oracle.studies), f"study keys differ\n{context}"
        for key, want in oracle.studies.items():
            got = scores[key]
            for name in ("status", "n_views", "n_views_skipped", "bundle_id", "threshold", "recall"):
                assert got[name] == want[name], f"study {key} {name}: {got[name]!r} != {want[name]!r}\n{context}"
            if want["score"] is None:
                assert got["score"] is None, f"study {key} score\n{context}"
            else:
                assert abs(got["score"] - want["score"]) < 1e-6, f"study {key} score\n{context}"


def _rows_by_key(path: Path) -> dict[str, dict]:
    return {row["study_key"]: row for row in pq.read_table(path).to_pylist()}


def run_sequence(folder: Path, bundles: dict[str, object], probs: dict, seed: int, nights: int) -> list[str]:
    """One random sequence of nights; raises AssertionError (with the sequence's log) on a mismatch."""
    world = World(folder, bundles, probs, random.Random(seed))
    world.log.append(f"seed {seed}")
    for _ in range(nights):
        for _ in range(world.rng.randint(1, 3)):
            world.random_change()
        world.run_night(world.random_night())
    return world.log
