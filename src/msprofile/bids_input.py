"""The scan table from a BIDS dataset (config ``bids_dir``), the other way in besides the sheet.

Indexing is pybids' (:class:`bids.BIDSLayout`): one scan per participant and session that has an
anatomical FLAIR (``sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>][_<entity>-<value>...]_FLAIR.nii[.gz]``),
demographics from ``participants.tsv`` (age, sex and group; column names configurable) and, where a
participant has a ``sub-<label>_sessions.tsv`` with an age column, the age at each session.
pybids was chosen over snakebids, which wraps it: the workflow is driven by a validated scan
table (demographics, masks, the failure protocol), not by wildcards per entity, and snakebids'
own command line and config would stand beside this workflow's schema-checked config and pull
in a large dependency tree (copier, boutiques) for nothing the workflow uses.

The result has exactly the shape of :func:`msprofile.sheet.load_subject_sheet`'s: the rest of
the workflow cannot tell the two ways in apart. Subject IDs are BIDS participant IDs
(``sub-<label>``, as in ``participants.tsv``), sessions are the labels without ``ses-``, and a
scan ID is ``sub-<label>`` or ``sub-<label>_ses-<label>`` (:func:`msprofile.scans.scan_id`).

Everything the dataset lacks is reported at once in one :class:`BidsInputError`, each problem
naming the participant (and session) and what is wrong.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import pandas as pd

from .scans import scan_id, session_sort_key
from .sheet import OUTPUT_COLUMNS, workflow_path

log = logging.getLogger(__name__)

#: Default names of the ``participants.tsv`` columns read, by meaning.
DEFAULT_COLUMNS = {"age": "age", "sex": "sex", "group": "group"}
#: Spellings of the ``sex`` column (lower case) and what they become; BIDS recommends
#: ``male``/``female``/``other`` or ``M``/``F``/``O``. ``other`` and ``n/a`` are missing for the
#: statistics, which compare female and male.
SEX_VALUES = {"f": "F", "female": "F", "w": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}
MISSING_SEX_VALUES = frozenset({"", "n/a", "na", "o", "other", "u", "unknown"})
#: Ages BIDS writes for the oldest participants to keep them anonymous (``89+``).
_CAPPED_AGE = re.compile(r"(\d+(?:\.\d*)?)\+")
_MISSING = frozenset({"", "n/a"})
#: Datatype folders that cannot hold a FLAIR: left out of the index, which is most of the cost of
#: indexing a dataset with functional or diffusion data.
_OTHER_DATATYPES = re.compile(
    r"^/sub-[^/]+/(ses-[^/]+/)?(func|dwi|fmap|perf|beh|eeg|meg|ieeg|pet|micr|nirs|motion|mrs|emg)(/|$)"
)
_FLAIR_EXTENSIONS = [".nii", ".nii.gz"]


class BidsInputError(ValueError):
    """A BIDS dataset that cannot give a scan table; ``problems`` lists everything wrong with it."""

    def __init__(self, bids_dir: str | os.PathLike, problems: Collection[str]):
        self.bids_dir = str(bids_dir)
        self.problems = list(problems)
        count = len(self.problems)
        listing = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(f"BIDS dataset {bids_dir}: {count} problem{'' if count == 1 else 's'}{listing}")

    def __reduce__(self):
        return type(self), (self.bids_dir, self.problems)


def load_bids_scans(
    bids_dir: str | os.PathLike,
    *,
    participant_labels: Collection[str] = (),
    session_labels: Collection[str] = (),
    flair_filters: Mapping[str, str | list] | None = None,
    columns: Mapping[str, str] | None = None,
    allowed_groups: Collection[str] = ("HC", "MS"),
    require_flair: bool = True,
    brain_mask_dir: str | os.PathLike = "",
    brain_mask_desc: str = "brain",
) -> pd.DataFrame:
    """The scan table of a BIDS dataset: one row per participant and session with a FLAIR.

    ``participant_labels`` and ``session_labels`` (with or without ``sub-``/``ses-``) select
    participants and sessions; empty selects all. ``flair_filters`` are further pybids entity
    filters of the FLAIR (e.g. ``{"acquisition": "2D"}``), for datasets with several FLAIRs per
    session. ``columns`` maps ``age``, ``sex`` and ``group`` to the names of the
    ``participants.tsv`` columns that hold them (:data:`DEFAULT_COLUMNS`). ``require_flair``:
    a participant listed in ``participants.tsv`` (or selected) without a FLAIR is an error;
    otherwise it is left out with a warning. ``brain_mask_dir``: a BIDS derivatives dataset whose
    ``..._desc-<brain_mask_desc>_mask.nii[.gz]`` of every scan is used as its brain mask.

    Returns a DataFrame indexed by ``scan_id`` with the columns
    :data:`msprofile.sheet.OUTPUT_COLUMNS`, sorted by participant and session (naturally).
    Ages are years (``89+`` reads 89), sex ``F``/``M`` or "" (``other``, ``n/a``).
    Raises :class:`BidsInputError` listing every problem.
    """
    from bids import BIDSLayout, BIDSLayoutIndexer
    from bids.exceptions import PyBIDSError
    from bids.layout.validation import DEFAULT_LOCATIONS_TO_IGNORE

    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    root = Path(bids_dir)
    if not root.is_dir():
        raise BidsInputError(bids_dir, ["not a folder (bids_dir must be the root of a BIDS dataset)"])
    try:
        layout = BIDSLayout(
            root,
            validate=True,
            indexer=BIDSLayoutIndexer(
                validate=False, index_metadata=False, ignore=[*DEFAULT_LOCATIONS_TO_IGNORE, _OTHER_DATATYPES]
            ),
        )
        session_files = _files(layout, suffix="sessions", extension=".tsv")
    except (PyBIDSError, ValueError) as exc:
        raise BidsInputError(bids_dir, [_first_line(exc)]) from None
    try:
        flairs = _files(layout, suffix="FLAIR", datatype="anat", extension=_FLAIR_EXTENSIONS, **(flair_filters or {}))
    except (PyBIDSError, ValueError) as exc:
        raise BidsInputError(
            bids_dir, [f"FLAIR filters (bids.flair_filters) {flair_filters}: {_first_line(exc)}"]
        ) from None

    problems: list[str] = []
    participants, participant_problems = _read_participants(root / "participants.tsv", columns)
    problems += participant_problems
    wanted_participants = [_strip(label, "sub") for label in participant_labels]
    wanted_sessions = [_strip(label, "ses") for label in session_labels]
    # The participants with a folder: one listing of the root (pybids' get_subjects() would
    # query every indexed file, a quarter of the indexing time at 13,810 participants).
    with os.scandir(root) as entries:
        dataset_subjects = {e.name[4:] for e in entries if e.name.startswith("sub-") and e.is_dir()}
    known = dataset_subjects | {_strip(pid, "sub") for pid in participants.index}
    unknown = [label for label in wanted_participants if label not in known]
    problems += [
        f"participant label {label!r} (participant_label): no participant sub-{label} in the dataset "
        f"(it has {_listing(sorted(known, key=session_sort_key), 'sub-')})"
        for label in unknown
    ]
    listed = set(wanted_participants) - set(unknown) or {_strip(pid, "sub") for pid in participants.index}
    flairs = flairs[flairs["subject"].isin(set(wanted_participants) or known)]
    filters = f" matching {dict(flair_filters)}" if flair_filters else ""
    without_flair = sorted(listed - set(flairs["subject"]), key=session_sort_key)
    if without_flair and (require_flair or wanted_participants):
        problems += [
            f"participant sub-{label}: no FLAIR image{filters} "
            f"(looked for sub-{label}/[ses-<label>/]anat/sub-{label}_*FLAIR.nii[.gz]); "
            "select participants with participant_label, or set bids.require_flair: false to leave out "
            "participants without a FLAIR"
            for label in without_flair
        ]
    elif without_flair:
        log.warning(
            "BIDS dataset %s: %d participants have no FLAIR%s and are left out: %s",
            bids_dir,
            len(without_flair),
            filters,
            _listing(without_flair, "sub-", limit=50),
        )
    if wanted_sessions:
        sessions_present = sorted(set(flairs["session"].dropna()), key=session_sort_key)
        unknown_sessions = [label for label in wanted_sessions if label not in sessions_present]
        problems += [
            f"session label {label!r} (session_label): no selected participant has a FLAIR{filters} in session "
            f"ses-{label} (sessions with a FLAIR: {_listing(sessions_present, 'ses-')})"
            for label in unknown_sessions
        ]
        with_flair = set(flairs["subject"])
        flairs = flairs[flairs["session"].isin(wanted_sessions)]
        outside = sorted(with_flair - set(flairs["subject"]), key=session_sort_key)
        if outside and not unknown_sessions:
            log.warning(
                "BIDS dataset %s: %d participants have no FLAIR in session %s and are left out: %s",
                bids_dir,
                len(outside),
                _listing(wanted_sessions, "ses-"),
                _listing(outside, "sub-", limit=50),
            )

    masks = _brain_masks(brain_mask_dir, brain_mask_desc, problems) if brain_mask_dir else None
    session_ages = _session_ages(session_files, columns["age"], set(flairs["subject"]), problems)
    records = []
    for (label, session), scans in flairs.groupby(["subject", "session"], dropna=False, sort=False):
        session = "" if pd.isna(session) else session
        participant = f"sub-{label}"
        where = f"participant {participant}" + (f" session ses-{session}" if session else "")
        if len(scans) > 1:
            names = ", ".join(sorted(Path(p).name for p in scans["path"]))
            problems.append(
                f"{where}: {len(scans)} FLAIR images ({names}); choose one with bids.flair_filters "
                "(e.g. {acquisition: <label>} or {run: <index>})"
            )
            continue
        if participant not in participants.index:
            problems.append(f"{where}: has a FLAIR but is not listed in participants.tsv (participant_id)")
            continue
        demographics, row_problems = _demographics(participants.loc[participant], columns, allowed_groups)
        problems += [f"{where}: {problem}" for problem in row_problems]
        age = session_ages.get((label, session))
        if age is not None:
            demographics["age"] = age
        brain_mask = ""
        if masks is not None:
            brain_mask = _one_mask(masks, label, session, where, brain_mask_dir, brain_mask_desc, problems)
        records.append(
            {
                "scan_id": scan_id(participant, session),
                "subject_id": participant,
                "session": session,
                "flair": workflow_path(scans["path"].iloc[0]),
                **demographics,
                "wmh_mask": "",
                "ventricles_mask": "",
                "brain_mask": brain_mask,
                "skull_stripped": False,
            }
        )
    if not records and not problems:
        problems.append("no FLAIR image of the selected participants and sessions")
    if problems:
        raise BidsInputError(bids_dir, problems)
    frame = pd.DataFrame.from_records(records, columns=["scan_id", *OUTPUT_COLUMNS])
    frame = frame.sort_values(["subject_id", "session"], key=lambda column: column.map(session_sort_key), kind="stable")
    return frame.astype({"age": float, "skull_stripped": bool}).set_index("scan_id")


def _files(layout, **filters) -> pd.DataFrame:
    """The indexed files matching ``filters`` (pybids ``get`` keywords): ``path`` and one column
    per entity (``subject``, ``session``, ...; missing entities NaN)."""
    table = layout.to_df(**filters)
    for entity in ("path", "subject", "session"):
        if entity not in table:
            table[entity] = pd.Series(dtype=object)
    return table


def _strip(label: str, prefix: str) -> str:
    label = str(label).strip()
    return label[len(prefix) + 1 :] if label.startswith(f"{prefix}-") else label


def _listing(labels, prefix: str, limit: int = 10) -> str:
    shown = ", ".join(f"{prefix}{label}" for label in list(labels)[:limit])
    more = len(labels) - limit
    return (shown + (f" and {more} more" if more > 0 else "")) or "none"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_participants(path: Path, columns: Mapping[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """``participants.tsv`` indexed by ``participant_id`` (text, "" for n/a), and its problems."""
    if not path.is_file():
        return pd.DataFrame(), [
            f"participants.tsv not found: it must list every participant_id with the columns "
            f"{columns['group']} (required), {columns['age']} and {columns['sex']}"
        ]
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        return pd.DataFrame(), [f"participants.tsv: not a readable tab-separated table ({_first_line(exc)})"]
    table.columns = [str(c).strip() for c in table.columns]
    table = table.apply(lambda column: column.str.strip())
    problems = []
    if "participant_id" not in table:
        return pd.DataFrame(), ["participants.tsv has no participant_id column"]
    if columns["group"] not in table:
        problems.append(
            f"participants.tsv has no column {columns['group']!r} for the group; add it or name the column "
            "that holds the group with bids.columns.group"
        )
    for meaning in ("age", "sex"):
        if columns[meaning] not in table:
            log.warning(
                "participants.tsv has no column %r: %s is missing for every participant", columns[meaning], meaning
            )
    duplicated = sorted(set(table.loc[table["participant_id"].duplicated(), "participant_id"]))
    problems += [f"participant {pid}: listed more than once in participants.tsv" for pid in duplicated]
    table = table.drop_duplicates("participant_id")
    table["participant_id"] = ["sub-" + _strip(pid, "sub") for pid in table["participant_id"]]
    return table.set_index("participant_id"), problems


def _demographics(row: pd.Series, columns: Mapping[str, str], allowed_groups: Collection[str]) -> tuple[dict, list]:
    """``group``, ``age`` (float, NaN when missing) and ``sex`` of one participant, and problems."""
    problems = []
    group = row.get(columns["group"], "")
    if columns["group"] in row and group not in allowed_groups:
        problems.append(
            f"{columns['group']} {group!r} in participants.tsv is not an allowed group; "
            f"the config allows {', '.join(allowed_groups)}"
        )
    age, age_problem = _parse_age(row.get(columns["age"], ""))
    if age_problem:
        problems.append(f"{columns['age']} {row.get(columns['age'])!r} in participants.tsv {age_problem}")
    sex_text = row.get(columns["sex"], "")
    sex = SEX_VALUES.get(sex_text.lower(), "")
    if not sex and sex_text.lower() not in MISSING_SEX_VALUES:
        problems.append(
            f"{columns['sex']} {sex_text!r} in participants.tsv is not one of female, male, F, M, other or n/a"
        )
    return {"group": group, "age": age, "sex": sex}, problems


def _parse_age(text: str) -> tuple[float, str | None]:
    """Age in years from a BIDS cell: a number, ``89+`` (read 89) or ``n/a``/empty (NaN)."""
    text = text.strip()
    if text.lower() in _MISSING:
        return math.nan, None
    capped = _CAPPED_AGE.fullmatch(text)
    try:
        age = float(capped.group(1) if capped else text)
    except ValueError:
        return math.nan, "is not a number (write years, 89+ or n/a)"
    if not 0 <= age <= 120:
        return math.nan, "is outside the allowed range 0 to 120 years"
    return age, None


def _session_ages(session_files: pd.DataFrame, age_column: str, subjects: set, problems: list) -> dict:
    """``{(participant label, session label): age}`` from the ``sub-<label>_sessions.tsv`` files of
    ``subjects`` that have an age column (the age at each session)."""
    ages = {}
    for path, label in zip(session_files["path"], session_files["subject"]):
        if label not in subjects:
            continue
        try:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"participant sub-{label}: {Path(path).name} is not a readable table ({_first_line(exc)})")
            continue
        if age_column not in table or "session_id" not in table:
            continue
        for session_id, text in zip(table["session_id"], table[age_column]):
            age, problem = _parse_age(text)
            if problem:
                problems.append(f"participant sub-{label} session {session_id}: {age_column} {text!r} {problem}")
            elif not math.isnan(age):
                ages[(label, _strip(session_id, "ses"))] = age
    return ages


def _brain_masks(mask_dir, desc: str, problems: list) -> pd.DataFrame:
    """The brain masks of a BIDS derivatives dataset (``*_desc-<desc>_mask.nii[.gz]``)."""
    from bids import BIDSLayout, BIDSLayoutIndexer
    from bids.exceptions import PyBIDSError

    try:
        layout = BIDSLayout(
            mask_dir,
            validate=False,
            is_derivative=True,
            indexer=BIDSLayoutIndexer(validate=False, index_metadata=False),
        )
        return _files(layout, suffix="mask", desc=desc, extension=_FLAIR_EXTENSIONS)
    except (PyBIDSError, ValueError) as exc:
        problems.append(f"brain masks (bids.brain_masks) {mask_dir}: {_first_line(exc)}")
        return _files_frame()


def _files_frame() -> pd.DataFrame:
    return pd.DataFrame({"path": pd.Series(dtype=object), "subject": [], "session": []})


def _one_mask(masks: pd.DataFrame, label: str, session: str, where: str, mask_dir, desc: str, problems: list) -> str:
    """The path of the one brain mask of a scan (none in another ``space``), or "" with a problem."""
    same_session = masks["session"] == session if session else masks["session"].isna()
    found = masks[(masks["subject"] == label) & same_session]
    if "space" in found:
        found = found[found["space"].isna()]
    if len(found) == 1:
        return workflow_path(found["path"].iloc[0])
    if found.empty:
        problems.append(
            f"{where}: no brain mask *_desc-{desc}_mask.nii[.gz] (without a space entity) in {mask_dir} "
            "(bids.brain_masks)"
        )
    else:
        names = ", ".join(sorted(Path(p).name for p in found["path"]))
        problems.append(f"{where}: {len(found)} brain masks in {mask_dir} ({names}); keep one per scan")
    return ""
