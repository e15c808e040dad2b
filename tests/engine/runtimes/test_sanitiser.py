"""One sanitiser (engine/dicom/quiet.safe_error) for every exception that becomes stored or printed
text: no object addresses, no quoted header values; the decode paths use it. And discovery's header
readers are spawned, never forked (issue 16, item 5)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mammo_batch.engine.dicom.decode import DecodeError, decode_pixels, read_dataset
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.synth import write_studies


def test_object_reprs_keep_their_type_and_lose_their_address() -> None:
    text = safe_error(ValueError("cannot decode <_io.BytesIO object at 0x7f3a2c1b9e80> for 'DOE^JANE'"))
    assert text == "ValueError: cannot decode <_io.BytesIO> for '...'"
    assert safe_error(RuntimeError("at 0x7f00aa")) == "RuntimeError"  # nothing left but the type


def test_the_same_fault_gives_the_same_text_in_every_process() -> None:
    # An address differs per process (and per engine): a rerun must see the same error for the same file.
    first = safe_error(OSError(f"read failed on {io.BytesIO()!r}"))
    second = safe_error(OSError(f"read failed on {io.BytesIO()!r}"))
    assert first == second == "OSError: read failed on <_io.BytesIO>"


def test_decode_errors_are_sanitised(tmp_path: Path) -> None:
    with pytest.raises(DecodeError) as info:
        read_dataset(io.BytesIO(b"not a DICOM file" * 10))
    assert "0x" not in str(info.value) and "'DICM'" not in str(info.value)
    write_studies(tmp_path, 1, seed=0, size=(256, 208), variants=["hologic"], layout="accession")
    path = sorted(tmp_path.rglob("*.dcm"))[0]
    ds = read_dataset(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # a truncated J2K codestream
    ds.PatientName = "DOE^JANE"
    with pytest.raises(DecodeError) as info:
        decode_pixels(ds)
    assert "DOE" not in str(info.value) and " at 0x" not in str(info.value)


def test_discovery_spawns_its_header_readers() -> None:
    # Forked after the ensemble was loaded, each reader copied the models and the runtime's threads.
    from mammo_batch.engine.dicom.discover import header_pool

    with header_pool(1) as pool:
        assert pool._mp_context.get_start_method() == "spawn"
