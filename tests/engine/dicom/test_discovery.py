"""Discovery of awkward trees: folder links followed once (loop-safe), what is not followed or
not read is reported with a reason, FIFOs never block, lying headers refused before allocating,
and the Arrow catalog (spilled or not) gives back exactly the records read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dicom_files import write_view

from mammo_batch.engine.dicom import discover, read_view


def by_name(records) -> dict[str, tuple[str, str]]:
    return {Path(r.path).name: (r.status, r.reason) for r in records}


def test_folder_links_are_followed_once_and_loops_reported(tmp_path):
    volume = tmp_path / "volume"
    write_view(volume / "study7" / "LCC.dcm", "P7", "A7", "1.2.7")
    write_view(tmp_path / "root" / "study1" / "LCC.dcm", "P1", "A1", "1.2.1")
    root = tmp_path / "root"
    os.symlink(volume / "study7", root / "study7")  # a study folder on another volume
    os.symlink(volume / "study7", root / "zagain")  # the same real folder again (later by name)
    os.symlink(root, root / "study1" / "up")  # a loop back to a parent
    os.symlink(tmp_path / "gone", root / "dangling")  # a broken link
    records = list(discover([root], workers=1))
    real = {r.path for r in records if r.scorable}
    assert real == {str(volume.resolve() / "study7" / "LCC.dcm"),
                    str(root.resolve() / "study1" / "LCC.dcm")}
    assert by_name(r for r in records if not r.scorable) == {
        "zagain": ("skipped", "symlink_seen"), "up": ("skipped", "symlink_loop"),
        "dangling": ("failed", "broken_link")}


def test_a_link_cycle_between_two_folders_terminates(tmp_path):
    write_view(tmp_path / "a" / "x.dcm", "P1", "A1", "1.2.1")
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "b", tmp_path / "a" / "to_b")
    os.symlink(tmp_path / "a", tmp_path / "b" / "to_a")
    records = list(discover([tmp_path / "a"], workers=1))
    assert by_name(records) == {"x.dcm": ("ok", ""), "to_a": ("skipped", "symlink_loop")}


def test_a_fifo_is_reported_and_never_opened(tmp_path):
    """Run in a subprocess with a timeout: opening the FIFO would block forever."""
    write_view(tmp_path / "s" / "x.dcm", "P1", "A1", "1.2.1")
    os.mkfifo(tmp_path / "s" / "pipe.dcm")
    code = ("import sys; from mammo_batch.engine.dicom import discover; "
            "print(sorted((r.status, r.reason) for r in discover([sys.argv[1], sys.argv[2]], workers=1)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s"), str(tmp_path / "s" / "pipe.dcm")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted([("ok", ""), ("skipped", "special_file"),
                                             ("skipped", "special_file")]))
    assert read_view(tmp_path / "s" / "pipe.dcm").reason == "special_file"


def test_a_header_claiming_a_huge_matrix_is_refused_before_reading(tmp_path):
    path = write_view(tmp_path / "huge.dcm", "P1", "A1", "1.2.1", Rows=65535, Columns=65535)
    record = read_view(path)
    assert (record.status, record.reason) == ("failed", "too_large")
    assert "65535 x 65535" in record.detail


def test_error_texts_carry_no_values_or_addresses():
    from mammo_batch.engine.dicom.quiet import safe_error

    class Odd(Exception):
        pass

    text = safe_error(Odd("bad value 'Doe^Jane' in <object at 0x7f3a2c1b9e80> b'\\x01\\x02'"))
    assert "Doe" not in text and "0x7f" not in text and text.startswith("Odd: bad value")


def test_the_catalog_gives_back_every_record_spilled_or_not(tmp_path):
    from mammo_batch.engine.dicom.catalog import HeaderCatalog

    for i in range(7):
        write_view(tmp_path / f"v{i}.dcm", f"P{i}", f"A{i}", f"1.2.{i}")
    (tmp_path / "notes.txt").write_text("not dicom")
    records = list(discover([tmp_path], workers=1))
    spilled = HeaderCatalog.from_records(records, batch_rows=3, spill_rows=2, spill_dir=tmp_path / "..")
    assert spilled.spilled and len(spilled) == 8
    assert [r.to_dict() for r in spilled] == [r.to_dict() for r in records]
    assert [b.num_rows for b in spilled.batches(["path"])] == [3, 3, 2]
