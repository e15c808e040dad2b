"""A trained fold model -> the bundle member's artifacts: ONNX and a torch.export program (.pt2).

    export_onnx(ProbabilityModel(net), "fold0.onnx", 256, 128, "uint8")
    export_torch(ProbabilityModel(net), "fold0.pt2", 256, 128, "uint8")

Both take image (batch, 1, H, W) of the member's input dtype and return prob (batch, 1)
float32, batch dynamic (docs/scoring.md, "Model artifacts"). ONNX goes through the
TorchScript exporter (dynamo=False, opset 17): the dynamo exporter gave wrong ConvNeXt
outputs on these machines (docs/training.md). Always follow an export with
`mammo_batch.build.parity.check_parity`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mammo_batch.engine.pixels.settings import DTYPES
from mammo_batch.train.models import FULL_SCALE, ProbabilityModel

OPSET = 17
INPUT_NAME = "image"  # the names the engine's ONNX runner checks
OUTPUT_NAME = "prob"
TORCH_DTYPES = {"uint8": torch.uint8, "uint16": torch.uint16, "float32": torch.float32, "int32": torch.int32}
INPUT_DTYPES = DTYPES  # the pixel path's dtypes (bundle input.dtype)
# torch.export specialises a dimension whose example size is 0 or 1 to that constant, so the
# program's example batch is 2; the runtime batch may then be anything in [1, MAX_BATCH].
TORCH_EXAMPLE_BATCH = 2
MAX_BATCH = 4096


def example_input(height: int, width: int, input_dtype: str = "uint8", batch: int = 1) -> torch.Tensor:
    """A random (batch, 1, H, W) image of the member's dtype and value range."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    generator = torch.Generator().manual_seed(0)
    if input_dtype == "float32":
        return torch.rand(batch, 1, height, width, generator=generator)
    # randint has no uint16 kernel: draw in int32 and cast (values fit).
    high = int(FULL_SCALE[input_dtype]) + 1
    values = torch.randint(0, high, (batch, 1, height, width), generator=generator, dtype=torch.int32)
    return values.to(TORCH_DTYPES[input_dtype])


def export_onnx(model: ProbabilityModel, path: str | Path, height: int, width: int,
                input_dtype: str = "uint8") -> Path:
    """Write `model` as ONNX (TorchScript exporter, opset 17, dynamic batch); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_dtype(model, input_dtype)
    # The TorchScript exporter has no uint16 type: trace with int32 (the same values; the
    # model's first op casts to float anyway), then declare the ONNX input uint16.
    traced_dtype = "int32" if input_dtype == "uint16" else input_dtype
    example = example_input(height, width, input_dtype).to(TORCH_DTYPES[traced_dtype])
    with evaluating(model), torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which we avoid on purpose.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    if traced_dtype != input_dtype:
        _retype_onnx_input(path, input_dtype)
    return path


def export_torch(model: ProbabilityModel, path: str | Path, height: int, width: int,
                 input_dtype: str = "uint8") -> Path:
    """Write `model` as a torch.export program (.pt2, dynamic batch); return the path.

    The program is traced in eval mode: the engine's torch runner cannot switch it later
    (exported programs have no train/eval), so BatchNorm must already use running stats.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_dtype(model, input_dtype)
    example = example_input(height, width, input_dtype, batch=TORCH_EXAMPLE_BATCH)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with evaluating(model), torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes={"image": {0: batch}})
    torch.export.save(program, str(path))
    return path


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_dtype(model: nn.Module, input_dtype: str) -> None:
    """The artifact's input dtype must be the one the model scales for (255 vs 65535 vs 1)."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    own = getattr(model, "input_dtype", input_dtype)
    if own != input_dtype:
        raise ValueError(f"the model was built for {own} input, not {input_dtype}")


def _retype_onnx_input(path: Path, input_dtype: str) -> None:
    """Declare the ONNX input as `input_dtype`; valid only where every consumer is a Cast."""
    import onnx  # only needed for uint16 members

    model = onnx.load(str(path))
    graph = model.graph
    consumers = [node for node in graph.node if INPUT_NAME in node.input]
    if not consumers or any(node.op_type != "Cast" for node in consumers):
        ops = sorted({node.op_type for node in consumers})
        raise RuntimeError(f"cannot declare the ONNX input {input_dtype}: it feeds {ops}, not only Cast")
    (image,) = [value for value in graph.input if value.name == INPUT_NAME]
    image.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
