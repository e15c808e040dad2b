"""`mammo-batch inspect PATH...`: what is in these folders, and what will not be scored."""

from __future__ import annotations

import json
import time
from collections import Counter

import click

from mammo_batch.engine.cli.options import (
    parse_views,
    study_key_option,
    view_filter_option,
    workers_option,
)
from mammo_batch.engine.dicom import discover
from mammo_batch.engine.dicom.policy import REASONS
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.studies import Study, group_studies


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@study_key_option
@view_filter_option
@workers_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
def inspect(
    paths: tuple[str, ...], study_key: str, view_filter: str | None, workers: int, as_json: bool
) -> None:
    """Read DICOM headers under PATHS, group them into studies and report what will be scored."""
    start = time.perf_counter()
    records = discover(paths, views=parse_views(view_filter), workers=workers)
    studies, orphans = group_studies(records, study_key)
    seconds = time.perf_counter() - start
    summary = summarize(records, studies, orphans, seconds)
    if as_json:
        document = {
            "summary": summary,
            "studies": [_study_json(s) for s in studies],
            "unassigned": [r.to_dict() for r in orphans],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render(summary))


def summarize(
    records: list[ViewRecord], studies: list[Study], orphans: list[ViewRecord], seconds: float
) -> dict:
    scorable = [r for r in records if r.scorable]
    status = Counter(r.status for r in records)
    per_study = Counter(len(s.scorable) for s in studies)
    breasts = Counter("+".join(s.breasts()) or "none" for s in studies)
    problems = Counter(r.reason for r in records if r.reason)
    examples = {}
    for r in records:
        if r.reason and r.reason not in examples:
            examples[r.reason] = r.path
    return {
        "files": len(records),
        "seconds": round(seconds, 3),
        "files_per_second": round(len(records) / seconds, 1) if seconds > 0 else None,
        "status": dict(status),
        "studies": len(studies),
        "studies_without_scorable_views": sum(1 for s in studies if not s.scorable),
        "files_without_study": len(orphans),
        "views_per_study": dict(sorted(per_study.items())),
        "breasts": dict(breasts.most_common()),
        "views": dict(Counter(r.view or "?" for r in scorable).most_common()),
        "lateralities": dict(Counter(r.laterality for r in scorable).most_common()),
        "vendors": dict(Counter(r.manufacturer or "?" for r in scorable).most_common()),
        "transfer_syntaxes": dict(Counter(_syntax_name(r.transfer_syntax) for r in records
                                          if r.transfer_syntax).most_common()),
        "photometric": dict(Counter(r.photometric for r in scorable).most_common()),
        "problems": {
            reason: {"count": n, "meaning": REASONS.get(reason, ""), "example": examples[reason]}
            for reason, n in problems.most_common()
        },
    }


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else f"unknown ({uid})"


def _study_json(study: Study) -> dict:
    return {
        "key": study.key,
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "study_instance_uid": study.study_instance_uid,
        "study_date": study.study_date,
        "breasts": {lat: [v.view for v in vs] for lat, vs in study.breasts().items()},
        "views": [v.to_dict() for v in study.views],
    }


def render(summary: dict) -> str:
    status = summary["status"]
    lines = [
        f"{summary['files']} files in {summary['seconds']:.1f} s "
        f"({summary['files_per_second'] or 0:.0f} files/s): {status.get('ok', 0)} views to score, "
        f"{status.get('skipped', 0)} skipped, {status.get('failed', 0)} failed",
        f"{summary['studies']} studies ({summary['studies_without_scorable_views']} with nothing "
        f"to score); {summary['files_without_study']} files belong to no study",
        "  views per study: " + _counts(summary["views_per_study"], "{k} views x{n}"),
        "  breasts:         " + _counts(summary["breasts"]),
        "  views:           " + _counts(summary["views"]),
        "  lateralities:    " + _counts(summary["lateralities"]),
        "  vendors:         " + _counts(summary["vendors"]),
        "  photometric:     " + _counts(summary["photometric"]),
        "  transfer syntax: " + _counts(summary["transfer_syntaxes"]),
    ]
    if summary["problems"]:
        lines.append("Not scored:")
        for reason, info in summary["problems"].items():
            lines.append(f"  {info['count']:>6}  {reason}: {info['meaning']}  (e.g. {info['example']})")
    return "\n".join(lines)


def _counts(counter: dict, fmt: str = "{k} {n}") -> str:
    return ", ".join(fmt.format(k=k, n=n) for k, n in counter.items()) or "-"
