"""Read and validate the subject sheet (``config/subjects.tsv``).

A cohort sheet can have thousands of rows, so validation never stops at the first bad
cell: every check runs and all problems are raised together in one :class:`SheetError`,
each naming its line, subject and column, so that a user fixes the sheet in one pass.

The per-row rules (required columns, ID pattern, age range, image extensions) live in
the JSON Schema ``workflow/schemas/subjects.schema.yaml``; this module adds the checks a
schema for one row cannot make: the header, unique scans, the allowed groups from the
config and the existence of the image files.

A row is one scan (:mod:`msprofile.scans`): a subject with several sessions has one row per
session, each with its ``session`` label, and each row is named by its scan ID.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pandas as pd
import yaml

from .scans import scan_id

#: Columns of the scan table returned by :func:`load_subject_sheet` (and by
#: :func:`msprofile.bids_input.load_bids_scans`); its index is the scan ID (``scan_id``).
OUTPUT_COLUMNS = (
    "subject_id",
    "session",
    "flair",
    "group",
    "age",
    "sex",
    "wmh_mask",
    "ventricles_mask",
    "brain_mask",
    "skull_stripped",
)
#: Columns holding image paths: checked for existence and rewritten as workflow paths.
PATH_COLUMNS = ("flair", "wmh_mask", "ventricles_mask", "brain_mask")

_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
# Plain decimal notation only: float() alone would also accept "nan", "inf" and "1_0",
# and NaN passes every range check of the schema.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TYPE_WORDS = {
    "number": "a number",
    "boolean": "a yes/no value (write true/false, yes/no or 1/0)",
    "string": "text",
}
_PATTERN_HINTS = {
    "subject_id": (
        "is not a safe subject ID: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    ),
    "session": (
        "is not a safe session label: use 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit"
    ),
    **{column: "has an unsupported extension: images must end in .nii or .nii.gz" for column in PATH_COLUMNS},
}


@dataclass(frozen=True)
class SheetProblem:
    """One problem in a subject sheet.

    ``line`` is the 1-based line in the file (the header is line 1) or None for a
    problem with the whole file; ``subject_id`` and ``column`` are None when the problem
    has none (an empty ID cell, a ragged line).
    """

    line: int | None
    subject_id: str | None
    column: str | None
    message: str

    def __str__(self) -> str:
        place = []
        if self.line is not None:
            place.append(f"line {self.line}" + (f" (subject {self.subject_id})" if self.subject_id else ""))
        elif self.subject_id:
            place.append(f"subject {self.subject_id}")
        if self.column is not None:
            place.append(f"column {self.column}")
        return f"{', '.join(place)}: {self.message}" if place else self.message


class SheetError(ValueError):
    """A subject sheet that cannot be used; ``problems`` lists everything wrong with it."""

    def __init__(self, path: str | os.PathLike, problems: Iterable[SheetProblem]):
        self.path = path
        self.problems = list(problems)
        count = len(self.problems)
        listing = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(f"subject sheet {path}: {count} problem{'' if count == 1 else 's'}{listing}")

    def __reduce__(self):
        # The default pickling calls SheetError(message), which this signature does not take;
        # pickling matters when the error crosses a process boundary.
        return type(self), (self.path, self.problems)


def load_subject_sheet(
    path: str | os.PathLike,
    *,
    schema_path: str | os.PathLike,
    allowed_groups: Collection[str] = ("HC", "MS"),
    generated_paths: Collection[str | os.PathLike] = frozenset(),
) -> pd.DataFrame:
    """Read the tab-separated subject sheet at ``path`` and check every row.

    Takes the sheet, the row schema (``workflow/schemas/subjects.schema.yaml``), the
    groups the config allows, and ``generated_paths``: image files that a workflow rule
    will create (relative to the current directory, like Snakemake paths) and so need not
    exist yet. Relative paths in the sheet are relative to the sheet's folder.

    Returns the scan table: a DataFrame indexed by ``scan_id``
    (:func:`msprofile.scans.scan_id`) in sheet order with the columns :data:`OUTPUT_COLUMNS`:
    ``subject_id``, ``session`` ("" when the sheet has none), ``flair``, ``group``, ``age``
    (float, NaN when empty), ``sex`` ("" when empty), ``wmh_mask``, ``ventricles_mask`` and
    ``brain_mask`` ("" when absent) and ``skull_stripped`` (bool). Image paths are written
    relative to the current directory when they lie under it and absolute otherwise, because
    Snakemake matches paths as strings.

    Raises :class:`SheetError` listing every problem found when the sheet is unusable.
    """
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    lines = _read_lines(path)
    header_line, header = _find_header(path, lines, schema)
    problems = _header_problems(header_line, header, schema)
    if any(column not in header for column in schema["required"]) or len(set(header)) < len(header):
        # Rows cannot be read without every required column, or with a column given twice.
        raise SheetError(path, problems)

    checker = _RowChecker(
        validator=jsonschema.Draft202012Validator(schema),
        required=frozenset(schema["required"]),
        allowed_groups=tuple(allowed_groups),
        sheet_dir=os.path.dirname(os.path.abspath(path)),
        generated=frozenset(workflow_path(os.fspath(generated)) for generated in generated_paths),
    )
    records, ids = [], []
    rows = list(_data_lines(lines, header_line))
    if not rows:
        problems.append(SheetProblem(None, None, None, "the sheet has a header but no subject rows"))
    for line, fields in rows:
        if len(fields) != len(header):
            problems.append(_ragged_problem(line, fields, len(header)))
            continue
        cells = {column: cell for column, cell in zip(header, fields) if column in schema["properties"]}
        row_problems, record = checker.check(line, cells)
        problems += row_problems
        records.append(record)
        ids.append((line, cells["subject_id"], cells.get("session", "")))
    problems += _duplicate_problems(ids)
    if problems:
        # Read like the sheet: top to bottom, then left to right.
        position = {column: index for index, column in enumerate(header)}
        raise SheetError(path, sorted(problems, key=lambda p: (p.line or 0, position.get(p.column, -1))))
    return _to_frame(records)


def _fail(path: str | os.PathLike, message: str, line: int | None = None) -> NoReturn:
    raise SheetError(path, [SheetProblem(line, None, None, message)])


def _read_lines(path: str | os.PathLike) -> list[str]:
    """Return the lines of the sheet, without the BOM and line ends, or raise SheetError."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        _fail(path, f"cannot read the file: {error.strerror or error}")
    if b"\x00" in data:
        _fail(path, "not a text file (it contains NUL bytes); expected a tab-separated sheet")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        _fail(path, "not UTF-8 text: save the sheet as UTF-8 tab-separated text", line)
    # Sheets saved on Windows or old Macs end lines with CRLF or CR.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("\t")]


def _data_lines(lines: list[str], after: int) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, cells) of the non-blank lines after line ``after``."""
    for number, line in enumerate(lines[after:], start=after + 1):
        if line.strip():
            yield number, _split(line)


def _find_header(path: str | os.PathLike, lines: list[str], schema: dict) -> tuple[int, list[str]]:
    """Return the line number and column names of the header: the first non-blank line."""
    columns = ", ".join(schema["properties"])
    first = next(_data_lines(lines, 0), None)
    if first is None:
        _fail(path, f"the file is empty; expected a tab-separated header line with the columns {columns}")
    line, header = first
    if len(header) == 1 and len(schema["required"]) > 1:
        # One column means no tab at all, e.g. a comma-separated file: say so once
        # rather than report every required column as missing.
        _fail(path, f"line {line} has no tab: the sheet must be tab-separated, with the columns {columns}")
    return first


def _header_problems(line: int, header: list[str], schema: dict) -> list[SheetProblem]:
    """Problems with the header: nameless, repeated, unknown and missing columns."""
    known = list(schema["properties"])
    problems = []
    for column in dict.fromkeys(header):
        if not column:
            problems.append(SheetProblem(line, None, None, "a column has no name (a stray tab in the header?)"))
            continue
        if header.count(column) > 1:
            problems.append(
                SheetProblem(line, None, column, f"the column appears {header.count(column)} times in the header")
            )
        if column not in known:
            guess = difflib.get_close_matches(column, known, n=1)
            hint = f"did you mean {guess[0]}? " if guess else ""
            problems.append(
                SheetProblem(line, None, column, f"unknown column; {hint}the allowed columns are {', '.join(known)}")
            )
    problems += [
        SheetProblem(line, None, column, "required column is missing from the header")
        for column in schema["required"]
        if column not in header
    ]
    return problems


def _ragged_problem(line: int, fields: list[str], expected: int) -> SheetProblem:
    return SheetProblem(
        line,
        fields[0] or None,
        None,
        f"{len(fields)} cells but the header has {expected}; check for missing or extra tabs",
    )


def _duplicate_problems(ids: list[tuple[int, str, str]]) -> list[SheetProblem]:
    """Problems of the scans' identity, from ``(line, subject_id, session)`` of every row.

    One problem per line whose scan (subject and session) is also on another line, naming those
    lines, and one per line without a session of a subject that has sessions on other lines (its
    scans could not be told apart). IDs and sessions are compared without case: they name output
    folders, and `Sub1` and `sub1` are the same folder on the case-insensitive file systems of
    macOS and Windows.
    """
    lines_by_scan = defaultdict(list)
    sessions_by_subject = defaultdict(list)
    for line, subject_id, session in ids:
        if subject_id:
            lines_by_scan[scan_id(subject_id, session).casefold()].append((line, subject_id, session))
            sessions_by_subject[subject_id.casefold()].append((line, session))
    problems = []
    for entries in lines_by_scan.values():
        for line, subject_id, session in entries if len(entries) > 1 else ():
            others = ", ".join(
                f"{other}" if other_id == subject_id else f"{other} (as {other_id})"
                for other, other_id, _ in entries
                if other != line
            )
            if session:
                problem = SheetProblem(
                    line, subject_id, "session", f"duplicate session {session!r} of the subject, also on line {others}"
                )
            else:
                problem = SheetProblem(line, subject_id, "subject_id", f"duplicate subject ID, also on line {others}")
            problems.append(problem)
    for entries in sessions_by_subject.values():
        with_session = [str(line) for line, session in entries if session]
        if with_session:
            problems += [
                SheetProblem(
                    line,
                    next(subject for other, subject, _ in ids if other == line),
                    "session",
                    f"no session, but the subject has sessions on line {', '.join(with_session)}: "
                    "give every scan of a subject with several sessions its session",
                )
                for line, session in entries
                if not session
            ]
    return problems


def workflow_path(path: str | os.PathLike) -> str:
    """Normalise ``path``, relative to the current directory when it lies under it, else absolute."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    if os.path.commonpath([absolute, cwd]) == cwd:
        return os.path.relpath(absolute, cwd)
    return absolute


def _quote(text: str) -> str:
    # A whole paragraph pasted into a cell would otherwise flood the report.
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _parse_number(text: str) -> float | str:
    return float(text) if _NUMBER.fullmatch(text) else text


def _parse_flag(text: str) -> bool | str:
    word = text.lower()
    return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else text


# Cells that are not text in the schema; a cell that does not convert stays a string,
# so that the schema's type check reports it.
_CONVERTERS = {"age": _parse_number, "skull_stripped": _parse_flag}


def _to_instance(cells: dict[str, str], required: Collection[str]) -> dict[str, Any]:
    """The row as the schema sees it: typed values, empty optional cells left out."""
    return {column: _CONVERTERS.get(column, str)(text) for column, text in cells.items() if text or column in required}


def _explain(error: jsonschema.ValidationError, column: str | None, text: str | None) -> str:
    """Plain-language message for a schema error on a cell of ``column`` holding ``text`` (None: not a cell)."""
    if text is None:
        return error.message
    if text == "":
        return "the cell is empty but the column is required"
    keyword = error.validator
    if keyword == "type":
        return f"{_quote(text)} is not {_TYPE_WORDS.get(error.validator_value, error.validator_value)}"
    if keyword in ("minimum", "maximum"):
        return f"{_quote(text)} is outside the allowed range {error.schema['minimum']:g} to {error.schema['maximum']:g}"
    if keyword == "enum":
        return f"{_quote(text)} is not one of {', '.join(map(str, error.validator_value))} (or an empty cell)"
    if keyword == "pattern" and column in _PATTERN_HINTS:
        return f"{_quote(text)} {_PATTERN_HINTS[column]}"
    return error.message


@dataclass(frozen=True)
class _RowChecker:
    """Checks one data row against the schema, the allowed groups and the file system."""

    validator: jsonschema.Draft202012Validator
    required: frozenset[str]
    allowed_groups: tuple[str, ...]
    sheet_dir: str
    generated: frozenset[str]

    def check(self, line: int, cells: dict[str, str]) -> tuple[list[SheetProblem], dict[str, Any]]:
        """Return the problems of the row and its record for the output DataFrame."""
        subject_id = cells["subject_id"] or None
        instance = _to_instance(cells, self.required)
        problems: dict[str | None, SheetProblem] = {}
        for error in self.validator.iter_errors(instance):
            column = error.path[0] if error.path else None
            # One problem per cell is enough to fix it.
            problems.setdefault(
                column, SheetProblem(line, subject_id, column, _explain(error, column, cells.get(column)))
            )
        if "group" not in problems and instance["group"] not in self.allowed_groups:
            allowed = ", ".join(self.allowed_groups)
            message = f"{_quote(instance['group'])} is not an allowed group; the config allows {allowed}"
            problems["group"] = SheetProblem(line, subject_id, "group", message)
        paths = {column: self._resolve(instance[column]) for column in PATH_COLUMNS if column in instance}
        for column, path in paths.items():
            if column not in problems and path not in self.generated and not os.path.isfile(path):
                problems[column] = SheetProblem(line, subject_id, column, f"file not found: {os.path.abspath(path)}")
        return list(problems.values()), self._record(instance, paths)

    def _resolve(self, path: str) -> str:
        return workflow_path(os.path.join(self.sheet_dir, path))

    @staticmethod
    def _record(instance: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
        return {
            "scan_id": scan_id(instance["subject_id"], instance.get("session", "")),
            "subject_id": instance["subject_id"],
            "session": instance.get("session", ""),
            "group": instance["group"],
            "age": instance.get("age", math.nan),
            "sex": instance.get("sex", ""),
            "skull_stripped": instance.get("skull_stripped", False),
            **{column: paths.get(column, "") for column in PATH_COLUMNS},
        }


def _to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=["scan_id", *OUTPUT_COLUMNS])
    return frame.astype({"age": float, "skull_stripped": bool}).set_index("scan_id")
