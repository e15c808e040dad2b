"""ONNX Runtime on the CPU: the runtime that works everywhere (no torch, no GPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mammo_batch.engine.bundle import BundleError, Member
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError, as_probabilities, host_array

INPUT_NAME = "image"  # the artifact contract of docs/scoring.md
ORT_TYPES = {"uint8": "tensor(uint8)", "uint16": "tensor(uint16)", "float32": "tensor(float)"}


def cpu_count() -> int:
    """Cores this process may use (a container or taskset may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class OnnxCpuRuntime:
    """Loads members' ONNX artifacts into ONNX Runtime sessions on the CPUExecutionProvider."""

    name = "onnxruntime-cpu"
    accepts_device_arrays = False

    def __init__(self, threads: int | None = None, artifact: str = "onnx") -> None:
        # One session runs at a time per batch, so all cores go to the ops inside it (intra-op);
        # inter-op parallelism only helps graphs with independent branches and oversubscribes.
        self.threads = threads if threads is not None else cpu_count()
        # "onnx_fp16": the member's FP16 copy, which the build's FP16 gate runs here (ONNX Runtime
        # computes FP16 on the CPU) to check what TensorRT engines are built from.
        self.artifact = artifact
        if artifact not in ("onnx", "onnx_fp16"):
            raise ValueError(f"artifact must be onnx or onnx_fp16, got {artifact!r}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    def load(self, member: Member, bundle_dir: Path) -> OnnxRunner:
        file = getattr(member.artifacts, self.artifact)
        if file is None:
            raise RuntimeUnavailableError(f"member {member.name!r} has no {self.artifact} artifact")
        path = Path(bundle_dir) / file
        try:
            session = ort.InferenceSession(str(path), self._options(), providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for a bad or missing file
            raise BundleError(f"{path}: ONNX Runtime cannot load member {member.name!r}: {safe_error(e)}") from None
        check_signature(session, member, path)
        return OnnxRunner(member, session)

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle inference threads must sleep, not spin: the decode workers need those cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options


class OnnxRunner:
    """One member in one ONNX Runtime session. Sessions are thread-safe for `run`."""

    def __init__(self, member: Member, session: ort.InferenceSession) -> None:
        self.member = member
        self.name = member.name
        self.input_size = member.input_size
        self.session = session
        self._output = session.get_outputs()[0].name

    def predict(self, batch: Any) -> np.ndarray:
        """(B, H, W) of the member's dtype, numpy or a host tensor -> (B,) float32 probabilities."""
        batch = host_array(self.member, batch)
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32)
        images = np.ascontiguousarray(batch[:, np.newaxis])  # the model's (B, 1, H, W)
        (output,) = self.session.run([self._output], {INPUT_NAME: images})
        return as_probabilities(self.member, output, len(batch))


def check_signature(session: ort.InferenceSession, member: Member, path: Path) -> None:
    """Refuse a model whose input/output do not match bundle.json: fail at load, not mid-run."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"one input {INPUT_NAME!r} of {member.input.dtype} (batch, 1, {member.input.height}, " \
               f"{member.input.width}) and one float output"
    problem = None
    if len(inputs) != 1 or len(outputs) != 1:
        problem = f"{len(inputs)} inputs and {len(outputs)} outputs"
    elif inputs[0].name != INPUT_NAME:
        problem = f"input named {inputs[0].name!r}"
    elif inputs[0].type != ORT_TYPES[member.input.dtype]:
        problem = f"input type {inputs[0].type}"
    elif not _shape_fits(inputs[0].shape, [1, member.input.height, member.input.width]):
        problem = f"input shape {inputs[0].shape}"
    elif outputs[0].type != "tensor(float)":
        problem = f"output type {outputs[0].type}"
    if problem:
        raise BundleError(f"{path}: member {member.name!r} should have {expected}; the model has {problem}")


def _shape_fits(shape: list, expected: list[int]) -> bool:
    """(batch, 1, H, W) with any batch dimension; symbolic (named) H or W are accepted."""
    if len(shape) != 4:
        return False
    return all(not isinstance(dim, int) or dim == want for dim, want in zip(shape[1:], expected, strict=True))
