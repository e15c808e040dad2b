"""`--decoder auto|cpu|nvimgcodec|dali`: the decoder backend for a run, and why."""

from __future__ import annotations

from typing import NamedTuple

from mammo_batch.engine.dicom.decoders import cpu, dali, nvimgcodec
from mammo_batch.engine.dicom.decoders.base import DecoderBackend, DecoderUnavailableError

DECODERS = ("auto", "cpu", "nvimgcodec", "dali")


class DecoderChoice(NamedTuple):
    name: str  # cpu | nvimgcodec | dali
    reason: str  # one line for people


def choose_decoder(requested: str = "auto", device: str = "cuda") -> DecoderChoice:
    """Which backend `requested` means here; DecoderUnavailableError when it cannot run.

    auto = nvimgcodec where a CUDA device and the package exist, else cpu, with the reason.
    """
    if requested not in DECODERS:
        raise DecoderUnavailableError(f"unknown decoder {requested!r}: choose one of {', '.join(DECODERS)}")
    if requested == "cpu":
        return DecoderChoice("cpu", "cpu (requested)")
    if requested == "auto":
        why = nvimgcodec.why_unavailable(device)
        return DecoderChoice("cpu", f"cpu ({why})") if why else DecoderChoice("nvimgcodec", "nvimgcodec (CUDA device)")
    module = nvimgcodec if requested == "nvimgcodec" else dali
    why = module.why_unavailable(device)
    if why:
        raise DecoderUnavailableError(f"--decoder {requested}: {why}")
    return DecoderChoice(requested, f"{requested} (requested)")


def make_decoder(name: str, device: str = "cuda", max_batch: int = 16) -> DecoderBackend:
    if name == "cpu":
        return cpu.CpuDecoder()
    if name == "nvimgcodec":
        return nvimgcodec.NvImageCodecDecoder(device)
    if name == "dali":
        return dali.DaliDecoder(device, max_batch=max_batch)
    raise DecoderUnavailableError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS[1:])}")
