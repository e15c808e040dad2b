"""The study plan: which patients, studies, views, vendors, labels and layouts to write.

Pure bookkeeping, no pixels: every decision is drawn here, up front, from the seed, so
rendering a study depends on nothing but its own plan (studies can be rendered in any
order, or in parallel, and still come out byte-identical).

Random streams (numpy SeedSequence entropy lists, one per purpose):
    [seed, 0, 0, 0]              the plan itself
    [seed, 1, study, 0]          a study's lesions
    [seed, 2, study, view]       a view's pixels (texture, noise, positioning)
    [seed, 3, patient, 0]        a patient's breasts (same anatomy in both of her studies)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

from mammo_batch.synth.variants import VARIANTS, get_variant

LAYOUTS = ("accession", "nested", "mixed")
PLAN, LESIONS, VIEW, PATIENT = 0, 1, 2, 3
MAX_STUDIES = 999_999  # six-digit accession numbers

# How often the awkward cases happen (each is also forced once when there are enough studies).
P_SECOND_STUDY = 0.2  # this study belongs to the previous study's patient
P_ONE_BREAST = 0.08
P_EXTRA_VIEW = 0.15  # an ML or XCCL on top of CC + MLO
P_REPEAT = 0.10  # the same laterality + view twice
P_BOTH_BREASTS = 0.15  # of positives with both breasts imaged


def stream(seed: int, purpose: int, index: int = 0, sub: int = 0) -> np.random.Generator:
    """The random stream for one purpose (see the module docstring)."""
    return np.random.default_rng([seed, purpose, index, sub])


@dataclass(frozen=True)
class ViewPlan:
    index: int  # position in the study: seeds its pixels
    laterality: str
    view: str
    series_number: int  # one series per breast
    instance_number: int  # within the series
    series_instance_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class StudyPlan:
    index: int
    patient_index: int
    patient_id: str
    patient_birth_date: str
    study_number: int  # 1 or 2: the patient's studies in date order
    accession_number: str
    study_instance_uid: str
    study_date: str
    study_time: str
    variant: str
    bits_stored: int
    layout: str  # "accession" | "nested"
    lesion_lateralities: str  # "" (negative), "L", "R" or "LR"
    views: tuple[ViewPlan, ...]

    @property
    def label(self) -> str:
        """SPR train.csv Laterality: N, L, R or B."""
        return {"": "N", "L": "L", "R": "R", "LR": "B"}[self.lesion_lateralities]


@dataclass
class _Draft:
    """Per-study choices before the coverage fix-ups."""

    # Uniform draws, a fixed number per study so the stream never shifts; by position:
    # 0 second study, 1 one breast, 2 extra view, 3 repeat, 4 nested, 5 which breast,
    # 6 both breasts positive, 7 which breast positive, 8 date, 9-11 birth date,
    # 12 bits stored, 13-14 repeated breast and view, 15-16 extra view's breast and view.
    u: np.ndarray
    second: bool
    one_breast: bool
    extra: bool
    repeat: bool
    nested: bool


def plan_studies(
    n_studies: int,
    seed: int,
    positive_rate: float = 0.3,
    layout: str = "mixed",
    variants: Sequence[str] | None = None,
) -> list[StudyPlan]:
    """The full plan for ``n_studies`` studies (deterministic in its arguments)."""
    if not 0 <= n_studies <= MAX_STUDIES:
        raise ValueError(f"n_studies must be in 0..{MAX_STUDIES}, got {n_studies}")
    if not 0.0 <= positive_rate <= 1.0:
        raise ValueError(f"positive_rate must be in [0, 1], got {positive_rate}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    variants = tuple(variants) if variants else VARIANTS
    for name in variants:
        get_variant(name)
    rng = stream(seed, PLAN)
    drafts = [_draft(rng.random(17), i, layout) for i in range(n_studies)]
    _force_coverage(drafts, layout)
    order = rng.permutation(len(variants))
    positives = set(rng.permutation(n_studies)[: round(positive_rate * n_studies)].tolist())
    patient_base, accession_base = int(rng.integers(0, 10**7)), int(rng.integers(0, 10**5))

    plans: list[StudyPlan] = []
    patient = -1
    for i, d in enumerate(drafts):
        if not d.second:
            patient += 1
        plans.append(
            _study(
                seed,
                i,
                d,
                patient=patient,
                patient_id=f"SYN{(patient_base + 7919 * patient) % 10**7:07d}",
                # 7919 is prime to 10**6: distinct numbers for up to a million studies;
                # the first often starts with 0, like the zero-padded SPR accessions.
                accession=f"{(accession_base + 7919 * i) % 10**6:06d}",
                variant=variants[order[i % len(variants)]],
                positive=i in positives,
                previous=plans[-1] if d.second else None,
            )
        )
    return plans


def _draft(u: np.ndarray, i: int, layout: str) -> _Draft:
    nested = layout == "nested" or (layout == "mixed" and u[4] < 0.5)
    return _Draft(
        u,
        second=i > 0 and u[0] < P_SECOND_STUDY,
        one_breast=u[1] < P_ONE_BREAST,
        extra=u[2] < P_EXTRA_VIEW,
        repeat=u[3] < P_REPEAT,
        nested=nested,
    )


def _force_coverage(drafts: list[_Draft], layout: str) -> None:
    """Make sure every awkward case shows up once there are enough studies."""
    n = len(drafts)
    for i in range(1, n):  # a patient has at most two studies
        if drafts[i - 1].second:
            drafts[i].second = False
    if n >= 3 and not any(d.second for d in drafts):
        drafts[-2].second, drafts[-1].second = False, True
    if n >= 4:
        for flag, i in (("one_breast", 1), ("extra", 2), ("repeat", 3)):
            if not any(getattr(d, flag) for d in drafts):
                setattr(drafts[i], flag, True)
    if layout == "mixed" and n >= 2 and len({d.nested for d in drafts}) == 1:
        drafts[-1].nested = not drafts[-1].nested


def _study(
    seed: int,
    i: int,
    d: _Draft,
    *,
    patient: int,
    patient_id: str,
    accession: str,
    variant: str,
    positive: bool,
    previous: StudyPlan | None,
) -> StudyPlan:
    u = d.u
    lats = (("R", "L")[int(u[5] * 2)],) if d.one_breast else ("R", "L")
    lesions = _lesion_breasts(lats, u) if positive else ""
    if previous is None:
        date = dt.date(2019, 1, 1) + dt.timedelta(days=int(u[8] * 1000))
        birth = f"{1945 + int(u[9] * 30)}{1 + int(u[10] * 12):02d}{1 + int(u[11] * 28):02d}"
        study_number = 1
    else:  # the same woman, screened again one to two years later
        first = dt.datetime.strptime(previous.study_date, "%Y%m%d").date()
        date = first + dt.timedelta(days=365 + int(u[8] * 365))
        birth, study_number = previous.patient_birth_date, 2
    bits_choices = get_variant(variant).bits_stored
    return StudyPlan(
        index=i,
        patient_index=patient,
        patient_id=patient_id,
        patient_birth_date=birth,
        study_number=study_number,
        accession_number=accession,
        study_instance_uid=_uid(seed, "study", i),
        study_date=date.strftime("%Y%m%d"),
        study_time=f"{8 + i % 10:02d}{(7 * i) % 60:02d}00",
        variant=variant,
        bits_stored=bits_choices[int(u[12] * len(bits_choices))],
        layout="nested" if d.nested else "accession",
        lesion_lateralities=lesions,
        views=_views(seed, i, lats, d),
    )


def _lesion_breasts(lats: tuple[str, ...], u: np.ndarray) -> str:
    """Which imaged breast(s) of a positive study carry the lesion: "L", "R" or "LR"."""
    if len(lats) == 1:
        return lats[0]
    return "LR" if u[6] < P_BOTH_BREASTS else ("L", "R")[int(u[7] * 2)]


def _views(seed: int, i: int, lats: tuple[str, ...], d: _Draft) -> tuple[ViewPlan, ...]:
    """CC and MLO of each imaged breast, then a repeat and an extra view when drawn."""
    u = d.u
    pairs = [(lat, view) for view in ("CC", "MLO") for lat in lats]
    if d.repeat:
        pairs.append((lats[int(u[13] * len(lats))], ("CC", "MLO")[int(u[14] * 2)]))
    if d.extra:
        pairs.append((lats[int(u[15] * len(lats))], ("ML", "XCCL")[int(u[16] * 2)]))
    views, counts = [], dict.fromkeys(lats, 0)
    for k, (lat, view) in enumerate(pairs):
        counts[lat] += 1
        views.append(
            ViewPlan(
                index=k,
                laterality=lat,
                view=view,
                series_number=lats.index(lat) + 1,
                instance_number=counts[lat],
                series_instance_uid=_uid(seed, "series", i, lat),
                sop_instance_uid=_uid(seed, "sop", i, k),
            )
        )
    return tuple(views)


def _uid(seed: int, *parts: object) -> str:
    return generate_uid(entropy_srcs=["mammo-batch-synth", str(seed), *map(str, parts)])
