"""The prepared GPU check (issue 9, section 5): one command on a GPU machine without network.

    python benchmarks/gpu_check.py OUT_DIR [--device cuda|cpu] [--budget-s 450]

Writes OUT_DIR/gpu_check.json with, per step, what ran, its numbers and whether it passed:
  decode   synthetic J2K + HTJ2K views decoded by nvImageCodec on the device vs pydicom (bit-exact)
  render   torch render on the device vs the numpy render (within 1 grey level on >= 99.9% of pixels)
  fp16     torch-cuda FP16 runtime vs ONNX Runtime FP32 (<= 1e-2): tf_efficientnet_b2 1536x768,
           tf_efficientnet_b5 1536x768, convnext_small 2048x1024 (random weights)
  stages   decode, render and model alone (views/s)
  e2e      mammo_batch.score from J2K DICOM, the seed's 4-member ensemble (random weights) at batch 8 and 16
Each step is timed and guarded: one failing step is recorded and the others still run. `--device cpu`
dry-runs every step at toy sizes on a machine without a GPU (the code paths, not the numbers).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

# (name, arch, height, width): the seed's ensemble (REFERENCE.md, "Performance anchors")
ENSEMBLE = [("convnext_s_a", "convnext_small", 2048, 1024), ("convnext_s_b", "convnext_small", 2048, 1024),
            ("effnet_b5", "efficientnet_b5", 1536, 768), ("effnet_b2", "efficientnet_b2", 1536, 768)]
FP16_MEMBERS = [("efficientnet_b2", 1536, 768), ("efficientnet_b5", 1536, 768), ("convnext_small", 2048, 1024)]
VIEW_SIZE = (3328, 2560)  # a full-field detector image (8.5 Mpixel)
TOY = {"view": (416, 320), "model": (128, 64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--studies", type=int, default=0, help="studies for the end-to-end run (default by device)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    path = args.out / "gpu_check.json"
    check = Check(args.device, args.studies or (24 if args.device == "cuda" else 2), path)
    with tempfile.TemporaryDirectory() as tmp:
        check.run(Path(tmp))
    print(json.dumps({k: v.get("ok") for k, v in check.report["steps"].items()}))
    print(f"wrote {path}")
    return 0 if all(step.get("ok") for step in check.report["steps"].values()) else 1


class Check:
    def __init__(self, device: str, studies: int, path: Path) -> None:
        import torch

        self.path = path  # rewritten after every step: a check cut short by its time limit still reports
        self.torch, self.device, self.studies = torch, device, studies
        self.toy = device == "cpu"
        self.view_size = TOY["view"] if self.toy else VIEW_SIZE
        self.report: dict = {"device": device, "environment": environment(torch), "steps": {}}

    def run(self, tmp: Path) -> None:
        files = self.step("synth", lambda: self.synth(tmp / "studies"))
        if not files:
            return
        self.step("decode", lambda: self.decode(files))
        self.step("render", lambda: self.render(files))
        self.step("fp16", lambda: self.fp16(tmp / "fp16"))
        bundle = self.step("bundle", lambda: self.bundle(tmp / "bundle"))
        self.step("stages", lambda: self.stages(files, bundle))
        self.step("e2e", lambda: self.e2e(tmp, bundle))

    def step(self, name: str, body):
        started = time.perf_counter()
        logging.info("step %s", name)
        try:
            result = body()
            record = {"ok": True, **(result if isinstance(result, dict) else {})}
        except Exception as exc:
            result, record = None, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                    "traceback": traceback.format_exc()[-3000:]}
        record["seconds"] = round(time.perf_counter() - started, 2)
        self.report["steps"][name] = {k: v for k, v in record.items() if k != "value"}
        logging.info("step %s: %s in %.1f s", name, "ok" if record["ok"] else record["error"], record["seconds"])
        self.path.write_text(json.dumps(self.report, indent=2, default=str) + "\n")
        return record.get("value", result) if record["ok"] else None

    # -- steps ---------------------------------------------------------------------------------------

    def synth(self, root: Path) -> dict:
        from mammo_batch.synth import write_studies

        write_studies(root / "j2k", self.studies, seed=0, size=self.view_size, variants=["hologic"], workers=4,
                      layout="accession")
        write_studies(root / "htj2k", max(1, self.studies // 4), seed=1, size=self.view_size, variants=["htj2k"],
                      workers=4, layout="accession")
        j2k, htj2k = sorted((root / "j2k").rglob("*.dcm")), sorted((root / "htj2k").rglob("*.dcm"))
        return {"value": {"root": root, "j2k": j2k, "htj2k": htj2k}, "j2k_files": len(j2k), "htj2k_files": len(htj2k)}

    def decode(self, files: dict) -> dict:
        import pydicom

        from mammo_batch.engine.dicom.decoders.codestream import encode_route
        from mammo_batch.engine.dicom.decoders.registry import make_decoder

        decoder = make_decoder("nvimgcodec", self.device)
        out = {}
        for kind in ("j2k", "htj2k"):
            datasets = [pydicom.dcmread(p) for p in files[kind][:16]]
            encoded = [encode_route(ds) for ds in datasets]
            self.sync()
            started = time.perf_counter()
            images = decoder.decode(encoded)
            self.sync()
            seconds = time.perf_counter() - started
            exact = sum(not isinstance(im, Exception) and np.array_equal(im.cpu().numpy(), ds.pixel_array)
                        for im, ds in zip(images, datasets, strict=True))
            out[kind] = {"views": len(datasets), "bit_exact": int(exact),
                         "views_per_s": round(len(datasets) / seconds, 1)}
            if exact != len(datasets):
                raise AssertionError(f"{kind}: {exact} of {len(datasets)} views bit-exact: {out}")
        return out

    def render(self, files: dict) -> dict:
        from mammo_batch.engine.dicom.decode import read_and_decode
        from mammo_batch.engine.pixels import PreprocessSettings
        from mammo_batch.engine.pixels.plan import plan_view
        from mammo_batch.engine.pixels.render import render
        from mammo_batch.engine.pixels.render_torch import render_torch

        sizes = [(h, w) for _, _, h, w in ENSEMBLE] if not self.toy else [TOY["model"]]
        worst = 1.0
        for path in files["j2k"][:8]:
            ds, stored = read_and_decode(path)
            plan = plan_view(ds, stored, PreprocessSettings())
            reference = render(stored, plan, sizes)
            ours = render_torch(self.torch.from_numpy(stored.astype(np.int32)).to(self.device), plan, sizes)
            for size in set(sizes):
                diff = np.abs(ours[size].cpu().numpy().astype(int) - reference[size].astype(int))
                worst = min(worst, float((diff <= 1).mean()))
        if worst < 0.999:
            raise AssertionError(f"only {worst:.5f} of pixels within one grey level")
        return {"worst_share_within_1": worst}

    def fp16(self, root: Path) -> dict:
        from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime
        from mammo_batch.engine.runtimes.torch_runner import load_torch_runner

        out = {}
        for arch, height, width in FP16_MEMBERS:
            if self.toy:
                height, width = TOY["model"]
            member, directory = member_artifacts(root / arch, arch, arch, height, width)
            images = np.random.default_rng(0).integers(0, 256, (2, height, width), dtype=np.uint8)
            reference = OnnxCpuRuntime().load(member, directory).predict(images)
            ours = load_torch_runner(member, directory, self.device, "fp16").predict(images)
            out[f"{arch}_{height}x{width}"] = float(np.abs(ours - reference).max())
        if max(out.values()) > 1e-2:
            raise AssertionError(f"FP16 vs FP32 over 1e-2: {out}")
        return {"max_prob_diff": out}

    def bundle(self, root: Path) -> dict:
        from mammo_batch.engine.bundle import Bundle, write_bundle

        members = []
        for name, arch, height, width in ENSEMBLE:
            if self.toy:
                height, width = TOY["model"]
            members.append(member_artifacts(root, name, arch, height, width)[0])
        write_bundle(root, Bundle(name="gpu-check", created="2026-01-01T00:00:00Z", members=tuple(members),
                                  description="random weights, for speed only", threshold=0.5,
                                  provenance={"written_by": "benchmarks/gpu_check.py"}))
        return {"value": root, "members": [m.name for m in members]}

    def stages(self, files: dict, bundle: Path) -> dict:
        from mammo_batch.engine.dicom.decode import read_dataset
        from mammo_batch.engine.dicom.decoders.codestream import encode_route
        from mammo_batch.engine.dicom.decoders.registry import make_decoder
        from mammo_batch.engine.ensemble import Ensemble
        from mammo_batch.engine.schedule.gpu_preparer import GpuPreparer, _Read

        ensemble = Ensemble.load(bundle, "auto" if not self.toy else "onnx")
        preparer = GpuPreparer(ensemble.sizes, ensemble.settings, make_decoder("nvimgcodec", self.device))
        reads = [_Read(i, encode_route(read_dataset(p)), started=time.perf_counter())
                 for i, p in enumerate(files["j2k"][:16])]
        preparer.prepare_batch(reads[:2])  # warm-up
        preparer.stage_s.clear()
        self.sync()
        started = time.perf_counter()
        prepared = preparer.prepare_batch(reads)
        self.sync()
        prepare_s = time.perf_counter() - started
        preparer.close()
        n = len(reads)
        out = {"views": n, "prepare_views_per_s": round(n / prepare_s, 1), "runtime": ensemble.runtime_reason,
               **{f"{k}_views_per_s": round(n / v, 1) for k, v in preparer.stage_s.items() if v and k != "read"}}
        for batch_size in (8, 16):
            model_s = 0.0
            for size, runners in ensemble.by_size.items():
                batch = self.torch.stack([p.inputs[size] for p in prepared[:batch_size]] * 2)[:batch_size]
                if not ensemble.runtime.accepts_device_arrays:
                    batch = batch.cpu().numpy()  # a CPU runtime (the dry run) takes host arrays
                for runner in runners:
                    runner.predict(batch)  # warm-up (cuDNN autotune)
                    self.sync()
                    started = time.perf_counter()
                    runner.predict(batch)
                    self.sync()
                    model_s += (time.perf_counter() - started) / batch_size
            out[f"model_views_per_s_batch{batch_size}"] = round(1 / model_s, 1)
        return out

    def e2e(self, tmp: Path, bundle: Path) -> dict:
        import mammo_batch

        out = {}
        for batch_size in (8, 16):
            summary = mammo_batch.score([tmp / "studies" / "j2k"], out=tmp / f"scores{batch_size}.parquet",
                                        models=bundle, decoder="nvimgcodec" if not self.toy else "cpu",
                                        runtime="auto" if not self.toy else "onnx", batch_size=batch_size,
                                        progress=False)
            out[f"batch{batch_size}"] = {"views": summary.views, "views_per_s": round(summary.views_per_second, 2),
                                         "runtime": summary.runtime, "counts": summary.counts,
                                         "timings": summary.timings}
        floor_ms = 2.0  # REFERENCE.md: ~1.6 TFLOP per view at ~800 TFLOP/s
        best = max(v["views_per_s"] for v in out.values())
        out["ratio_to_compute_floor"] = round(best / (1000 / floor_ms), 3)
        return out

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()


def member_artifacts(root: Path, name: str, arch: str, height: int, width: int):
    """Random-weight member: ONNX FP32 + torch.export, as `build` exports them; (member, root)."""
    import torch

    from mammo_batch.build.export import export_onnx, export_torch
    from mammo_batch.engine.bundle import new_member
    from mammo_batch.train.models import ProbabilityModel, create_model

    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    model = ProbabilityModel(create_model(arch, "uint8")).eval()
    export_onnx(model, root / f"{name}.onnx", height, width, "uint8")
    export_torch(model, root / f"{name}.pt2", height, width, "uint8")
    member = new_member(root, name=name, fold=0, arch=arch, height=height, width=width, onnx=f"{name}.onnx",
                        torch=f"{name}.pt2")
    return member, root


def environment(torch) -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=f"{major}.{minor}")
    for module in ("nvidia.nvimgcodec", "onnxruntime", "timm", "pydicom"):
        try:
            info[module] = getattr(__import__(module, fromlist=["_"]), "__version__", "?")
        except Exception as exc:
            info[module] = f"missing: {exc}"
    return info


if __name__ == "__main__":
    sys.exit(main())
