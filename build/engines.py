"""`mammo-batch build-engines BUNDLE`: TensorRT 11 engines from the members' FP16 ONNX, on this GPU.

TensorRT 11 networks are strongly typed: each layer's precision is the FP16 ONNX's (build/fp16.py),
so there are no precision flags to set. Per member: parse the ONNX, one optimization profile over
the batch sizes (min, opt, max), the timing cache kept beside the bundle (later builds reuse it),
`build_serialized_network`; then the engine is run on real preprocessed views against ONNX Runtime
FP32 on the CPU and recorded in bundle.json with the GPU, compute capability, TensorRT version,
precision, batch sizes and sha256. An engine runs only on the GPU model and TensorRT version it
was built with, so engines are built where they run and never shipped. A member whose FP16 ONNX
missed its gate gets no engine (logged); the bundle is replaced atomically (staging.py).

TensorRT and a CUDA device are needed: nothing here runs in the CPU test suite (reference/gpu.md
has the API this follows; docs/gpu.md says what has run on a GPU).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

import numpy as np

from mammo_batch.build.staging import staged_bundle
from mammo_batch.engine.bundle import Bundle, Member, TensorRTEngine, load_bundle, with_checksums, write_bundle
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.runtimes.onnx import INPUT_NAME, OnnxCpuRuntime
from mammo_batch.engine.runtimes.tensorrt import TensorRTRuntime, import_tensorrt, this_gpu

log = logging.getLogger("mammo_batch.build")

TIMING_CACHE = "tensorrt.timing-cache"
ENGINE_TOLERANCE = 1e-2  # max |prob diff| vs ONNX Runtime FP32
CHECK_VIEWS = 8


class EngineBuildError(RuntimeError):
    """A member's engine could not be built or disagrees with ONNX Runtime; the message says which."""


def build_engines(bundle_dir: Path, batch_sizes: tuple[int, ...] = (1, 8, 16), workspace_gb: float = 8.0,
                  views: list[Path] | None = None, device: str = "cuda") -> list[dict]:
    """Build, check and record one engine per member whose FP16 ONNX passed its gate; returns a
    summary per engine. The bundle is replaced atomically (staging.py) only when every engine was
    built and agrees with ONNX Runtime: a failure leaves it as it was."""
    trt = import_tensorrt()
    current = load_bundle(bundle_dir)
    usable = [m for m in current.members if _why_no_engine(m) is None]
    for member in current.members:
        if member not in usable:
            log.warning("%s: no TensorRT engine: %s (it scores on another runtime)", member.name,
                        _why_no_engine(member))
    if not usable:
        raise EngineBuildError("no member has an FP16 ONNX that passed its gate: "
                               + "; ".join(f"{m.name}: {_why_no_engine(m)}" for m in current.members))
    capability, gpu = this_gpu(device)
    logger = trt.Logger(trt.Logger.WARNING)
    images = check_images(current, views)
    summaries = []
    with staged_bundle(current.path, copy_of=current.path) as stage:
        engines = {}
        for member in usable:
            file = f"{member.name}.sm{capability.replace('.', '')}.trt{trt.__version__}.fp16.engine"
            engine = TensorRTEngine(file=file, compute_capability=capability, tensorrt_version=trt.__version__,
                                    precision="fp16", gpu_name=gpu,
                                    batch_sizes=(min(batch_sizes), _opt(batch_sizes), max(batch_sizes)))
            plan = _build(trt, logger, stage / member.artifacts.onnx_fp16, member, batch_sizes, workspace_gb,
                          stage / TIMING_CACHE)
            _replace_file(stage / engine.file, plan)
            engines[member.name] = engine
        members = tuple(_with_engine(m, engines.get(m.name), stage) for m in current.members)
        bundle = write_bundle(stage, dataclasses.replace(current, members=members))
        for member in bundle.members:  # run each engine as `score` will
            if member.name in engines:
                diff = _check(member, bundle, images, device)
                log.info("%s: TensorRT engine vs ONNX Runtime FP32 max |prob diff| %.2e", member.name, diff)
                summaries.append({**dataclasses.asdict(engines[member.name]), "max_diff": diff})
    return summaries


def _why_no_engine(member: Member) -> str | None:
    """None when the member's FP16 ONNX may be compiled; else why not."""
    if not member.artifacts.onnx_fp16:
        return "no FP16 ONNX (rebuild the bundle with this version)"
    gate = member.fp16_gate
    if gate is not None and not gate.passed:
        return f"its FP16 ONNX missed its gate ({gate.reason})"
    return None


def _with_engine(member: Member, engine: TensorRTEngine | None, directory: Path) -> Member:
    """`member` with `engine` replacing one for the same GPU and TensorRT version (whose file goes)."""
    if engine is None:
        return member
    key = (engine.compute_capability, engine.tensorrt_version)
    for old in member.artifacts.tensorrt:
        if (old.compute_capability, old.tensorrt_version) == key and old.file != engine.file:
            (directory / old.file).unlink(missing_ok=True)
    kept = tuple(e for e in member.artifacts.tensorrt if (e.compute_capability, e.tensorrt_version) != key)
    artifacts = dataclasses.replace(member.artifacts, tensorrt=(*kept, engine))
    return with_checksums(dataclasses.replace(member, artifacts=artifacts), directory)


def _replace_file(path: Path, data: bytes) -> None:
    """Write a new file: the staged copy hard-links the old bundle's files, so never write into one."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _build(trt, logger, onnx_path: Path, member: Member, batch_sizes: tuple[int, ...], workspace_gb: float,
           cache_path: Path) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network()  # strongly typed: the only kind in TensorRT 11
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"member {member.name!r}: TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    height, width = member.input_size
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (min(batch_sizes), 1, height, width), (_opt(batch_sizes), 1, height, width),
                      (max(batch_sizes), 1, height, width))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"member {member.name!r}: TensorRT failed to build an engine (see its log above)")
    _replace_file(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def _opt(batch_sizes: tuple[int, ...]) -> int:
    """The profile's optimum: the largest batch size below the maximum (8 of 1,8,16), else the maximum."""
    below = sorted(b for b in batch_sizes if b < max(batch_sizes))
    return below[-1] if below else max(batch_sizes)


def check_images(bundle: Bundle, views: list[Path] | None) -> dict[tuple[int, int], np.ndarray]:
    """Real preprocessed views per member size: the given DICOM files, else a few synthetic studies."""
    sizes, settings = bundle.sizes, bundle.settings
    with tempfile.TemporaryDirectory() as tmp:
        if not views:
            from mammo_batch.synth import write_studies

            write_studies(Path(tmp), 2, seed=0, variants=["hologic", "planmed"], layout="accession")
            views = sorted(Path(tmp).rglob("*.dcm"))
        prepared = [prepare_file(path, sizes, settings).inputs for path in views[:CHECK_VIEWS]]
    return {size: np.stack([p[size] for p in prepared]) for size in sizes}


def _check(member: Member, bundle: Bundle, images: dict, device: str) -> float:
    batch = images[member.input_size]
    reference = OnnxCpuRuntime().load(member, bundle.path).predict(batch)
    engine = TensorRTRuntime(device).load(member, bundle.path).predict(batch)
    diff = float(np.max(np.abs(engine.astype(np.float64) - reference)))
    if not diff <= ENGINE_TOLERANCE:
        raise EngineBuildError(f"member {member.name!r}: the TensorRT engine differs from ONNX Runtime FP32 by "
                               f"up to {diff:.3g} in probability (tolerance {ENGINE_TOLERANCE:g})")
    return diff
