"""Bundles are written atomically: into a temporary sibling folder, renamed into place only after
every check passed. A failure (an exception, Ctrl-C) leaves the previous bundle byte-identical and
no debris; readers never see a half-written bundle.

    with staged_bundle(out) as stage:          # an empty folder beside `out`
        ... write artifacts and bundle.json into stage; load_bundle(stage) ...
    # here `out` is the new bundle; the old one is gone

    with staged_bundle(out, copy_of=out) as stage:   # build-engines: start from the current bundle
        ...

The swap is two renames (old aside, new in) and then the old copy is removed; a crash between the
two renames leaves the old bundle beside `out` as `.NAME.old-*`, never a mixture of the two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mammo_batch.engine.bundle import BUNDLE_FILE


class StagingError(ValueError):
    """The output folder cannot be (re)placed: it holds something that is not a bundle."""


@contextlib.contextmanager
def staged_bundle(out: Path, copy_of: Path | None = None) -> Iterator[Path]:
    out = Path(os.path.abspath(out))
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        if copy_of is not None:
            _link_tree(copy_of, stage)
        yield stage
        _swap(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _check_replaceable(out: Path) -> None:
    """Replacing `out` deletes it: only an empty folder or a bundle may be replaced."""
    if out.exists() and not out.is_dir():
        raise StagingError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
        raise StagingError(f"{out}: not empty and not a bundle (no {BUNDLE_FILE}); refusing to replace it")


def _link_tree(source: Path, stage: Path) -> None:
    """A copy of `source` in `stage`; files hard-linked where the file system allows (artifacts are
    never modified in place, only added or replaced, so sharing their inodes is safe)."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, stage, copy_function=link_or_copy, dirs_exist_ok=True)


def _swap(stage: Path, out: Path) -> None:
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; a bundle is a shared model directory
    if not out.exists():
        os.rename(stage, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, aside / "bundle")
    try:
        os.rename(stage, out)
    except BaseException:
        os.rename(aside / "bundle", out)  # put the old one back
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
