"""Both sides on the same studies with the same members: views/s, ratio, stage breakdown.

    result = compare(BenchSettings(paths=["/studies"], bundle_dir=Path("models/b2")), work_dir)
    print(format_table(result))

Ours runs through the public API (`mammo_batch.score`), once per requested runtime; the
seed-style side then scores exactly the views ours scored (same files, same members), so
both produce scores for the same studies. Every file is read once first, so that neither
side pays for a cold page cache. It is a benchmark: the numbers depend on the machine and
on what else runs on it (the load average is recorded before and after).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import mammo_batch
from mammo_batch.bench.seed_style import SeedMember, run_seed_style
from mammo_batch.engine.bundle import load_bundle
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.runtimes.onnx import cpu_count
from mammo_batch.engine.runtimes.torch_cpu import why_no_cpu_bf16

OUR_STAGES = ("discovery_s", "prepare_s", "model_s", "write_s", "wall_s")  # ScoreSummary.timings


@dataclass(frozen=True)
class BenchSettings:
    paths: list[str]
    bundle_dir: Path
    runtimes: tuple[str, ...] = ("auto",)
    workers: int = 0  # decode processes on both sides; 0 = one per core
    batch_size: int = 4
    threads: int | None = None  # inference threads on both sides; None = one per core
    study_key: str = "auto"
    seed_side: bool = True
    note: str = ""  # e.g. "machine shared with 5 other sessions"


def compare(settings: BenchSettings, work_dir: Path) -> dict:
    """Run ours (per runtime) and the seed-style side; return the result document."""
    bundle = load_bundle(settings.bundle_dir)
    workers = settings.workers or cpu_count()
    load_before = os.getloadavg()
    _read_once(settings.paths)
    ours = [_ours(settings, runtime, work_dir / f"ours-{i}", workers)
            for i, runtime in enumerate(settings.runtimes)]
    scored = ours[0].pop("_scored")  # path -> study_key of the views ours scored
    for run in ours[1:]:
        run.pop("_scored")
    inputs = [prepare_file(path, bundle.sizes, bundle.settings).inputs for path in sorted(scored)]
    for run in ours:
        run["model_stage"] = _model_stage(settings, run["runtime_requested"], inputs)
    result = {
        "benchmark": "mammo-batch bench (seed-style vs mammo-batch)",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine_version": mammo_batch.__version__,
        "machine": _machine(settings.note),
        "settings": {**asdict(settings), "paths": [str(p) for p in settings.paths],
                     "bundle_dir": str(settings.bundle_dir), "workers": workers},
        "members": [{"name": m.name, "arch": m.arch, "input_size": list(m.input_size)}
                    for m in bundle.members],
        "views": len(scored), "studies": len(set(scored.values())),
        "ours": ours,
    }
    if settings.seed_side:
        members = [SeedMember(m.name, m.input_size, bundle.path / m.artifacts.torch) for m in bundle.members
                   if m.artifacts.torch is not None]
        if len(members) != len(bundle.members):
            raise ValueError("the seed-style side runs torch members: every member needs a torch artifact")
        result["seed_style"] = _seed(sorted(scored), scored, members, work_dir / "seed", workers,
                                     settings.threads)
        for run in ours:
            run["ratio_to_seed"] = run["views_per_second"] / result["seed_style"]["views_per_second"]
        result["same_studies"] = result["seed_style"]["study_keys"] == sorted(set(scored.values()))
    result["machine"]["load_average_before"] = [round(x, 2) for x in load_before]
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _ours(settings: BenchSettings, runtime: str, directory: Path, workers: int) -> dict:
    """One `mammo_batch.score` call, timed from the outside too (loading the members included)."""
    directory.mkdir(parents=True)
    started = time.perf_counter()
    summary = mammo_batch.score(settings.paths, out=directory / "scores.parquet", models=settings.bundle_dir,
                                views_out=directory / "views.parquet", runtime=runtime, workers=workers,
                                batch_size=settings.batch_size, threads=settings.threads,
                                study_key=settings.study_key, progress=False)
    call_s = time.perf_counter() - started
    views = pq.read_table(directory / "views.parquet", columns=["path", "study_key", "status"]).to_pylist()
    scored = {row["path"]: row["study_key"] for row in views if row["status"] == "ok"}
    return {"runtime_requested": runtime, "runtime": summary.runtime, "views": len(scored),
            # end to end, as the seed side is timed: the whole call, member loading included
            "views_per_second": len(scored) / call_s,
            "views_per_second_scoring": summary.views_per_second,  # the API's: the streaming phase only
            "counts": dict(summary.counts),
            "timings": {**{k: round(float(summary.timings[k]), 3) for k in OUR_STAGES if k in summary.timings},
                        "call_s": round(call_s, 3)},
            "_scored": scored}


def _model_stage(settings: BenchSettings, runtime: str, inputs: list[dict]) -> dict:
    """The members alone on prepared views, after one warm-up batch: the model stage's own speed,
    to say which stage a run loses in (a short run pays first-call kernel set-up in its model_s)."""
    ensemble = mammo_batch.Ensemble.load(settings.bundle_dir, runtime, settings.threads)
    warmup_s = model_s = 0.0
    b = settings.batch_size
    for size, runners in ensemble.by_size.items():
        stacked = np.stack([views[size] for views in inputs])
        for runner in runners:
            started = time.perf_counter()
            runner.predict(stacked[:b])
            warmup_s += time.perf_counter() - started
            started = time.perf_counter()
            for i in range(0, len(stacked), b):
                runner.predict(stacked[i:i + b])
            model_s += time.perf_counter() - started
    return {"views_per_second": len(inputs) / model_s if model_s else 0.0, "model_s": round(model_s, 3),
            "warmup_batch_s": round(warmup_s, 3)}


def _seed(paths: list[str], study_of: dict[str, str], members: list[SeedMember], directory: Path,
          workers: int, threads: int | None) -> dict:
    directory.mkdir(parents=True)
    result = run_seed_style(paths, members, directory, workers, threads)
    studies: dict[str, float] = {}
    for path, prob in result.probs.items():  # the seed's code: max over all images of the exam
        key = study_of[path]
        studies[key] = max(studies.get(key, 0.0), prob)
    return {"views": len(result.probs), "failed": result.failed,
            "views_per_second": result.views_per_second,
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "study_keys": sorted(studies), "study_scores": studies}


def _read_once(paths: list[str]) -> None:
    """Warm the page cache for both sides alike."""
    for root in paths:
        files = [Path(root)] if Path(root).is_file() else (p for p in Path(root).rglob("*") if p.is_file())
        for file in files:
            with open(file, "rb") as handle:
                while handle.read(1 << 24):
                    pass


def _machine(note: str) -> dict:
    model = ""
    if Path("/proc/cpuinfo").exists():
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "usable_cores": cpu_count(),
            "bf16": why_no_cpu_bf16() or "yes", "python": platform.python_version(), "note": note}


def format_table(result: dict) -> str:
    """The side-by-side table people read."""
    header = f"{'side':44} {'views':>5} {'views/s':>8} {'ratio':>6}  " + " ".join(
        f"{name[:-2]:>9}" for name in OUR_STAGES) + f" {'model-only views/s':>19}"
    lines = [header, "-" * len(header)]
    seed = result.get("seed_style")
    if seed:
        t = seed["timings"]
        lines.append(f"{'seed-style (PNG, eager fp32 torch, batch 1)':44} {seed['views']:>5} "
                     f"{seed['views_per_second']:>8.2f} {1.0:>6.2f}  {'':>9} {t['preprocess_s']:>9.1f} "
                     f"{t['model_s']:>9.1f} {'':>9} {t['wall_s']:>9.1f}")
    for run in result["ours"]:
        ratio = f"{run['ratio_to_seed']:>6.2f}" if "ratio_to_seed" in run else f"{'':>6}"
        stages = " ".join(f"{run['timings'].get(name, float('nan')):>9.1f}" for name in OUR_STAGES)
        lines.append(f"{'mammo-batch ' + run['runtime'].split(' ')[0]:44} {run['views']:>5} "
                     f"{run['views_per_second']:>8.2f} {ratio}  {stages} "
                     f"{run['model_stage']['views_per_second']:>19.2f}")
    machine = result["machine"]
    members = ", ".join(f"{m['name']} {m['input_size'][0]}x{m['input_size'][1]}" for m in result["members"])
    lines.append(f"members: {members}; {result['studies']} studies; {machine['cpu']}, "
                 f"{machine['usable_cores']} cores, "
                 f"load {machine['load_average_before'][0]} -> {machine['load_average_after'][0]}"
                 + (f"; {machine['note']}" if machine["note"] else ""))
    lines.append("views/s: views / the whole call, member loading included, both sides. Seconds per stage; "
                 "ours overlaps its stages and its prepare is summed over the worker processes, so they "
                 "do not add up to wall; the seed's prepare is wall time of its pool. model-only: "
                 "the members alone on prepared views after a warm-up batch")
    return "\n".join(lines)
