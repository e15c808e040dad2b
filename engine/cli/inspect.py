"""`mammo-batch inspect PATH...`: what is in these folders, and what will not be scored."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import click

from mammo_batch.engine.cli.options import (
    parse_views,
    study_key_option,
    view_filter_option,
    workers_option,
)
from mammo_batch.engine.dicom import discover
from mammo_batch.engine.dicom.policy import REASONS, STUDY_REASONS
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.studies import Study, plan_studies


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
    catalog = discover(paths, views=parse_views(view_filter), workers=workers)
    plan = plan_studies(catalog, study_key)
    summary = Summary()
    studies = []
    for study in plan.studies():  # one pass; each study's views carry their final reasons
        summary.add_study(study)
        if as_json:
            studies.append(_study_json(study))
    orphans = [r.to_dict() for r in summary.add_orphans(plan.orphans())]
    report = summary.finish(time.perf_counter() - start)
    if as_json:
        click.echo(json.dumps({"summary": report, "studies": studies, "unassigned": orphans}, indent=2))
    else:
        click.echo(render(report))


class Summary:
    """Counts over every file (through its study, or as a file of no study), in one pass."""

    def __init__(self) -> None:
        self.c: dict[str, Counter] = {name: Counter() for name in (
            "status", "per_study", "breasts", "views", "lateralities", "vendors", "syntaxes",
            "photometric", "problems", "study_problems")}
        self.examples: dict[str, str] = {}
        self.files = self.studies = self.empty_studies = self.orphans = 0

    def add_study(self, study: Study) -> None:
        self.studies += 1
        self.empty_studies += not study.scorable
        self.c["per_study"][len(study.scorable)] += 1
        self.c["breasts"]["+".join(study.breasts()) or "none"] += 1
        if study.reason:
            self.c["study_problems"][study.reason] += 1
        for record in study.views:
            self._add(record)

    def add_orphans(self, records: Iterable[ViewRecord]) -> Iterator[ViewRecord]:
        for record in records:
            self.orphans += 1
            self._add(record)
            yield record

    def _add(self, r: ViewRecord) -> None:
        self.files += 1
        self.c["status"][r.status] += 1
        if r.reason:
            self.c["problems"][r.reason] += 1
            self.examples.setdefault(r.reason, r.path)
        if r.transfer_syntax:
            self.c["syntaxes"][_syntax_name(r.transfer_syntax)] += 1
        if r.scorable:
            self.c["views"][r.view or "?"] += 1
            self.c["lateralities"][r.laterality] += 1
            self.c["vendors"][r.manufacturer or "?"] += 1
            self.c["photometric"][r.photometric] += 1

    def finish(self, seconds: float) -> dict:
        c = self.c
        return {
            "files": self.files,
            "seconds": round(seconds, 3),
            "files_per_second": round(self.files / seconds, 1) if seconds > 0 else None,
            "status": dict(c["status"]),
            "studies": self.studies,
            "studies_without_scorable_views": self.empty_studies,
            "files_without_study": self.orphans,
            "views_per_study": dict(sorted(c["per_study"].items())),
            "breasts": dict(c["breasts"].most_common()),
            "views": dict(c["views"].most_common()),
            "lateralities": dict(c["lateralities"].most_common()),
            "vendors": dict(c["vendors"].most_common()),
            "transfer_syntaxes": dict(c["syntaxes"].most_common()),
            "photometric": dict(c["photometric"].most_common()),
            "problems": {
                reason: {"count": n, "meaning": REASONS.get(reason, ""), "example": self.examples[reason]}
                for reason, n in c["problems"].most_common()
            },
            "study_problems": {
                reason: {"count": n, "meaning": STUDY_REASONS[reason]}
                for reason, n in c["study_problems"].most_common()
            },
        }


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else f"unknown ({uid})"


def _study_json(study: Study) -> dict:
    return {
        "key": study.key,
        "reason": study.reason,
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
        lines.append("Not scored, or scored with a warning:")
        for reason, info in summary["problems"].items():
            lines.append(f"  {info['count']:>6}  {reason}: {info['meaning']}  (e.g. {info['example']})")
    for reason, info in summary["study_problems"].items():
        lines.append(f"  {info['count']:>6}  studies {reason}: {info['meaning']}")
    return "\n".join(lines)


def _counts(counter: dict, fmt: str = "{k} {n}") -> str:
    return ", ".join(fmt.format(k=k, n=n) for k, n in counter.items()) or "-"
