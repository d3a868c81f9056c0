"""The demo cohort: 16 synthetic subjects to run the whole workflow without real data.

Eight MS patients and eight healthy controls, both sexes in each group, ages from 21 to 74
so that every age group of the statistics (18-29, 30-39, 40-49, 50-59, 60+) is filled in
each group, and one subject without an age to exercise missing values. Each subject's
FLAIR and masks come from :func:`msprofile.synthetic.phantom.make_phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .phantom import Phantom

#: Age (years) given to the phantom of a subject whose age is missing.
DEFAULT_AGE_YEARS = 40.0

#: Columns of the subject sheet, in order.
SHEET_COLUMNS = ("subject_id", "flair", "group", "age", "sex", "wmh_mask", "ventricles_mask", "skull_stripped")


@dataclass(frozen=True)
class DemoSubject:
    """One demo subject: ``group`` is ``"MS"`` or ``"HC"``, ``sex`` ``"F"`` or ``"M"``,
    ``age_years`` in years or ``None`` where missing."""

    subject_id: str
    group: str
    age_years: float | None
    sex: str


DEMO_SUBJECTS: tuple[DemoSubject, ...] = (
    DemoSubject("demo-MS-01", "MS", 24.0, "F"),
    DemoSubject("demo-MS-02", "MS", 33.0, "M"),
    DemoSubject("demo-MS-03", "MS", 38.0, "F"),
    DemoSubject("demo-MS-04", "MS", 45.0, "F"),
    DemoSubject("demo-MS-05", "MS", 52.0, "M"),
    DemoSubject("demo-MS-06", "MS", 57.0, "F"),
    DemoSubject("demo-MS-07", "MS", 66.0, "M"),
    DemoSubject("demo-MS-08", "MS", None, "F"),
    DemoSubject("demo-HC-01", "HC", 21.0, "M"),
    DemoSubject("demo-HC-02", "HC", 28.0, "F"),
    DemoSubject("demo-HC-03", "HC", 35.0, "F"),
    DemoSubject("demo-HC-04", "HC", 42.0, "M"),
    DemoSubject("demo-HC-05", "HC", 48.0, "F"),
    DemoSubject("demo-HC-06", "HC", 55.0, "M"),
    DemoSubject("demo-HC-07", "HC", 63.0, "F"),
    DemoSubject("demo-HC-08", "HC", 74.0, "M"),
)


#: The demo BIDS dataset (the ``demo_bids`` target): (demo subject, session) of every scan. The
#: first subject has two sessions, the same phantom twice (a rescan).
DEMO_BIDS_SCANS: tuple[tuple[str, str], ...] = (
    ("demo-MS-01", "01"),
    ("demo-MS-01", "02"),
    ("demo-MS-02", "01"),
    ("demo-HC-01", "01"),
    ("demo-HC-02", "01"),
)


def demo_bids_label(subject_id: str) -> str:
    """The BIDS participant label of a demo subject: its ID without hyphens (``demoMS01``)."""
    return subject_id.replace("-", "")


def demo_bids_participants() -> list[dict[str, str]]:
    """Rows of the demo BIDS dataset's ``participants.tsv`` (``participant_id``, ``age``,
    ``sex`` as BIDS spells it, ``group``), one per subject of :data:`DEMO_BIDS_SCANS`."""
    wanted = dict.fromkeys(subject for subject, _ in DEMO_BIDS_SCANS)
    return [
        {
            "participant_id": f"sub-{demo_bids_label(s.subject_id)}",
            "age": "n/a" if s.age_years is None else f"{s.age_years:g}",
            "sex": {"F": "female", "M": "male"}[s.sex],
            "group": s.group,
        }
        for s in DEMO_SUBJECTS
        if s.subject_id in wanted
    ]


def phantom_for(subject_id: str, seed: int) -> Phantom:
    """The phantom of demo subject ``subject_id`` for the cohort seed ``seed``.

    The phantom's own seed mixes ``seed`` with the subject's position in
    :data:`DEMO_SUBJECTS`, so subjects differ and every run with the same ``seed`` is
    identical. A missing age is replaced by :data:`DEFAULT_AGE_YEARS`.

    Raises:
        KeyError: ``subject_id`` is not a demo subject.
    """
    # Imported here, not at the top: the workflow reads DEMO_SUBJECTS when it plans every run,
    # and the phantom generator's SciPy imports cost more than the rest of the planning's imports.
    from .phantom import make_phantom

    index = _subject_index(subject_id)
    subject = DEMO_SUBJECTS[index]
    subject_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
    age_years = DEFAULT_AGE_YEARS if subject.age_years is None else subject.age_years
    return make_phantom(subject_seed, group=subject.group, age_years=age_years, sex=subject.sex)


def demo_sheet_rows(demo_dir: str) -> list[dict[str, str]]:
    """Rows of the subject sheet for the demo cohort, keys :data:`SHEET_COLUMNS`.

    ``demo_dir`` is the folder of the subject folders as the sheet should name it (relative
    to the sheet); paths are ``{demo_dir}/{subject_id}/flair.nii.gz`` and so on. A missing
    age is an empty string.
    """
    rows = []
    for subject in DEMO_SUBJECTS:
        folder = f"{demo_dir}/{subject.subject_id}"
        rows.append(
            {
                "subject_id": subject.subject_id,
                "flair": f"{folder}/flair.nii.gz",
                "group": subject.group,
                "age": "" if subject.age_years is None else f"{subject.age_years:g}",
                "sex": subject.sex,
                "wmh_mask": f"{folder}/wmh_manual.nii.gz",
                "ventricles_mask": f"{folder}/ventricles_manual.nii.gz",
                "skull_stripped": "false",
            }
        )
    return rows


def _subject_index(subject_id: str) -> int:
    """Position of ``subject_id`` in :data:`DEMO_SUBJECTS`; KeyError if it is not there."""
    for index, subject in enumerate(DEMO_SUBJECTS):
        if subject.subject_id == subject_id:
            return index
    known = ", ".join(s.subject_id for s in DEMO_SUBJECTS)
    raise KeyError(f"{subject_id!r} is not a demo subject; known: {known}")
