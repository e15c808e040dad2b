"""One study's results as one DICOM Structured Report (TID 1500 Measurement Report, Comprehensive 3D SR).

Why TID 1500 and not the Mammography CAD SR (TID 4000): TID 4000 describes CAD *findings* (marks with
locations, composite features); our models give a study and a breast score with no location, which TID
4000 can only carry as a bare summary. TID 1500 carries exactly what we have (measurement groups with
finding sites, the algorithm's identity, the source images), and highdicom writes and validates it.
Details: docs/pacs.md.

Content tree (root: Imaging Measurement Report):
    observer: device mammo-batch (model name = the bundle id)
    image library: every evaluated image
    group "study": recall score, decision threshold, recall yes/no; algorithm = bundle id + engine version
    group "left breast" / "right breast" (finding site): breast score, each member's mean probability
    over the breast's views (its contribution), each view's ensemble probability (with its image)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highdicom as hd
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

# Private coding scheme: there are no standard codes for "recall score" or "decision threshold".
SCHEME = "99MAMMOBATCH"
RECALL_SCORE = CodedConcept("MB001", SCHEME, "Recall score")
DECISION_THRESHOLD = CodedConcept("MB002", SCHEME, "Recall threshold (recall = score >= threshold)")
RECALL_DECISION = CodedConcept("MB003", SCHEME, "Recall (study score at or above the threshold)")
BREAST_SCORE = CodedConcept("MB004", SCHEME, "Breast score")
MEMBER_PROBABILITY = CodedConcept("MB005", SCHEME, "Ensemble member mean probability over the breast's views")
VIEW_PROBABILITY = CodedConcept("MB006", SCHEME, "View probability (mean over the ensemble's members)")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
BREAST_SITE = {"L": codes.SCT.LeftBreast, "R": codes.SCT.RightBreast}

SERIES_NUMBER = 9901  # the fixed series of AI results, one per study
SERIES_DESCRIPTION = "mammo-batch AI recall scores (not verified)"
MANUFACTURER = "mammo-batch"


@dataclass(frozen=True)
class StudyResult:
    """What an SR shows for one study: its scores row and its scored views."""

    row: Mapping  # scores.parquet row: score, recall, left_score, right_score, bundle_id, engine_version, ...
    threshold: float
    views: Sequence[Mapping]  # views rows with status ok: sop_instance_uid, laterality, view, prob, members
    members: Sequence[str]  # member names; each view has `prob_<member>`


@dataclass(frozen=True)
class SrIdentity:
    series_instance_uid: str
    sop_instance_uid: str
    instance_number: int


def series_uid_for(study_instance_uid: str) -> str:
    """The fixed AI-results series of a study: the same UID every night (derived, not stored)."""
    return generate_uid(entropy_srcs=["mammo-batch AI results series", study_instance_uid])


def build_sr(result: StudyResult, sources: Mapping[str, Dataset], identity: SrIdentity,
             previous: Dataset | None = None) -> hd.sr.Comprehensive3DSR:
    """The SR of one study; `sources`: SOPInstanceUID -> source header (patient/study modules are copied
    from them by highdicom); `previous`: the SR this one supersedes (PredecessorDocumentsSequence)."""
    evidence = [sources[v["sop_instance_uid"]] for v in result.views if v["sop_instance_uid"] in sources]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(result.row),
        procedure_reported=codes.LN.BreastBilateralMammogram,
        imaging_measurements=[_study_group(result), *_breast_groups(result, sources)],
        referenced_images=[ds for ds in evidence if _describable(ds)],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=identity.series_instance_uid,
        series_number=SERIES_NUMBER, sop_instance_uid=identity.sop_instance_uid,
        instance_number=identity.instance_number, manufacturer=MANUFACTURER, is_complete=True,
        is_final=True, is_verified=False, previous_versions=[previous] if previous is not None else None)
    sr.SeriesDescription = SERIES_DESCRIPTION
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    return sr


def _describable(dataset: Dataset) -> bool:
    """Whether highdicom can describe the image in the image library (it needs e.g. PatientOrientation,
    which some real files lack); an image it cannot describe is still referenced by its group."""
    try:
        hd.sr.ImageLibraryEntryDescriptors(dataset)
    except (AttributeError, ValueError, TypeError):
        return False
    return True


def _private_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = "mammo-batch result codes"
    item.CodingSchemeResponsibleOrganization = "mammo-batch"
    return item


def _observation_context(row: Mapping) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["mammo-batch device", str(row["bundle_id"])]), name="mammo-batch",
        manufacturer_name=MANUFACTURER, model_name=_lo(str(row["bundle_id"])))
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _algorithm(row: Mapping, threshold: float) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=_lo(f"mammo-batch ensemble {row['bundle_id']}"), version=_lo(str(row["engine_version"])),
        parameters=[f"threshold={threshold!r}", _lo(f"bundle_id={row['bundle_id']}")])


def _study_group(result: StudyResult) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    row = result.row
    measurements = [_measurement(RECALL_SCORE, row["score"]), _measurement(DECISION_THRESHOLD, result.threshold)]
    decision = codes.SCT.Yes if row["recall"] else codes.SCT.No
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="study"),
        algorithm_id=_algorithm(row, result.threshold), measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(RECALL_DECISION, decision)])


def _breast_groups(result: StudyResult, sources: Mapping[str, Dataset]
                   ) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    groups = []
    for side, column, name in (("L", "left_score", "left breast"), ("R", "right_score", "right breast")):
        score = result.row.get(column)
        views = [v for v in result.views if v.get("laterality") == side and _finite(v.get("prob"))]
        if not _finite(score) or not views:
            continue
        measurements = [_measurement(BREAST_SCORE, score), *_member_measurements(result, views),
                        *(_view_measurement(v, sources) for v in views if v["sop_instance_uid"] in sources)]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=name),
            finding_sites=[hd.sr.FindingSite(BREAST_SITE[side])],
            algorithm_id=_algorithm(result.row, result.threshold), measurements=measurements,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(sources[v["sop_instance_uid"]])
                           for v in views if v["sop_instance_uid"] in sources]))
    return groups


def _member_measurements(result: StudyResult, views: Sequence[Mapping]) -> list[hd.sr.Measurement]:
    out = []
    for member in result.members:
        values = [float(v[f"prob_{member}"]) for v in views if _finite(v.get(f"prob_{member}"))]
        if values:
            algorithm = hd.sr.AlgorithmIdentification(name=_lo(f"member {member}"),
                                                      version=_lo(str(result.row["engine_version"])))
            out.append(_measurement(MEMBER_PROBABILITY, sum(values) / len(values), algorithm))
    return out


def _view_measurement(view: Mapping, sources: Mapping[str, Dataset]) -> hd.sr.Measurement:
    image = hd.sr.SourceImageForMeasurement.from_source_image(sources[view["sop_instance_uid"]])
    return hd.sr.Measurement(name=VIEW_PROBABILITY, value=float(view["prob"]), unit=NO_UNITS,
                             referenced_images=[image])


def _measurement(name: CodedConcept, value: float, algorithm: hd.sr.AlgorithmIdentification | None = None
                 ) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=NO_UNITS, algorithm_id=algorithm)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _lo(text: str) -> str:
    """A LO value: at most 64 characters, no backslash."""
    return text.replace("\\", "/")[:64]
