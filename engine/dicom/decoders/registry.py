"""The decoders, declared once, in `auto`'s order: `--decoder` choices, help, `auto`, errors and
`mammo-batch doctor` derive from DECODERS.

auto = the first spec marked for auto that can run here: nvImageCodec on a CUDA device, else the
CPU decoder (pydicom + pylibjpeg / openjpeg / pyjpegls), which always can. DALI only on request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from mammo_batch.engine.dicom.decoders import cpu, dali, nvimgcodec
from mammo_batch.engine.dicom.decoders.base import DecoderBackend, DecoderUnavailableError


@dataclass(frozen=True)
class DecoderSpec:
    name: str  # the --decoder choice
    device: str  # where it decodes: cpu | cuda
    device_arrays: bool  # its images are tensors on the GPU (the GPU preparer renders them there)
    in_auto: bool  # may auto pick it
    summary: str  # one line for --help and doctor
    why_unavailable: Callable[[str], str | None]  # (device) -> None when it can run there, else why not
    make: Callable[[str, int], DecoderBackend]  # (device, max batch) -> the backend


DECODERS: tuple[DecoderSpec, ...] = (
    DecoderSpec("nvimgcodec", "cuda", True, True, "NVIDIA nvImageCodec on the GPU (the gpu extra)",
                nvimgcodec.why_unavailable, lambda device, batch: nvimgcodec.NvImageCodecDecoder(device)),
    DecoderSpec("cpu", "cpu", False, True, "pydicom + pylibjpeg/openjpeg/pyjpegls in worker processes",
                lambda device: cpu.why_unavailable(), lambda device, batch: cpu.CpuDecoder()),
    DecoderSpec("dali", "cuda", True, False, "NVIDIA DALI on the GPU (the dali extra; on request only)",
                dali.why_unavailable, lambda device, batch: dali.DaliDecoder(device, max_batch=batch)),
)
SPECS = {spec.name: spec for spec in DECODERS}
CHOICES = ("auto", *SPECS)


class DecoderChoice(NamedTuple):
    name: str  # a spec's name
    reason: str  # one line for people


def decoder_help() -> str:
    names = "; ".join(f"{spec.name}: {spec.summary}" for spec in DECODERS)
    return f"Pixel decoder: {names}. auto = nvimgcodec where it can run, else cpu; it says which and why."


def choose_decoder(requested: str = "auto", device: str = "cuda") -> DecoderChoice:
    """Which backend `requested` means here; DecoderUnavailableError when it cannot run."""
    if requested == "auto":
        whys = []
        for spec in DECODERS:
            if spec.in_auto:
                why = spec.why_unavailable(device if spec.device != "cpu" else "cpu")
                if why is None:
                    detail = "; ".join(whys) or ("CUDA device" if spec.device != "cpu" else "auto")
                    return DecoderChoice(spec.name, f"{spec.name} ({detail})")
                whys.append(f"not {spec.name}: {why}")
        raise AssertionError("the cpu decoder can always run")  # pragma: no cover
    spec = SPECS.get(requested)
    if spec is None:
        raise DecoderUnavailableError(f"unknown decoder {requested!r}: choose one of {', '.join(CHOICES)}")
    why = spec.why_unavailable(device if spec.device != "cpu" else "cpu")
    if why:
        raise DecoderUnavailableError(f"--decoder {requested}: {why}")
    return DecoderChoice(requested, f"{requested} (requested)")


def make_decoder(name: str, device: str = "cuda", max_batch: int = 16) -> DecoderBackend:
    spec = SPECS.get(name)
    if spec is None:
        raise DecoderUnavailableError(f"unknown decoder {name!r}: choose one of {', '.join(SPECS)}")
    return spec.make(device, max_batch)
