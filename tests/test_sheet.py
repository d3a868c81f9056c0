"""Tests of the subject sheet validator: every problem kind, all problems at once, fuzzing."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msprofile.sheet import OUTPUT_COLUMNS, SheetError, SheetProblem, load_subject_sheet

from conftest import FLAIR_SAMPLE, require_flair_sample

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "subjects.schema.yaml"
COLUMNS = ["subject_id", "flair", "group", "age", "sex"]


def row(subject_id: str = "s01", **cells: str) -> dict[str, str]:
    """A valid row whose FLAIR is ``img/<subject_id>.nii.gz``, with ``cells`` replacing defaults."""
    return {
        "subject_id": subject_id,
        "flair": f"img/{subject_id}.nii.gz",
        "group": "MS",
        "age": "40",
        "sex": "F",
        **cells,
    }


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1f\x8b dummy")  # only existence is checked


def write_sheet(
    folder: Path, rows: list[dict[str, str]], columns: list[str] | None = None, *, images: bool = True
) -> Path:
    """Write ``rows`` as a TSV in ``folder``; with ``images``, create every image path that has a NIfTI extension."""
    columns = columns or list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(r.get(column, "") for column in columns) for r in rows]
    if images:
        for r in rows:
            for column in ("flair", "wmh_mask", "ventricles_mask", "brain_mask"):
                if r.get(column, "").strip().endswith((".nii", ".nii.gz")):
                    touch(folder / r[column].strip())
    sheet = folder / "subjects.tsv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sheet


def load(sheet: Path, **options) -> pd.DataFrame:
    return load_subject_sheet(sheet, schema_path=SCHEMA, **options)


def sheet_error(sheet: Path, **options) -> SheetError:
    with pytest.raises(SheetError) as caught:
        load(sheet, **options)
    return caught.value


def only_problem(error: SheetError) -> SheetProblem:
    assert len(error.problems) == 1, str(error)
    return error.problems[0]


def assert_names(
    problem: SheetProblem, error: SheetError, line: int | None, subject: str | None, column: str | None, *words: str
):
    """The problem is where expected, and its text (also in the error message) names it all."""
    assert (problem.line, problem.subject_id, problem.column) == (line, subject, column)
    text = str(problem)
    assert text in str(error)
    if line is not None:
        assert f"line {line}" in text
    if subject is not None:
        assert f"(subject {subject})" in text
    if column is not None:
        assert f"column {column}" in text
    for word in words:
        assert word in text, text


def test_problem_text_matches_documented_form(tmp_path):
    rows = [row("104252"), row("104253"), row("105074", age="abc")]
    error = sheet_error(write_sheet(tmp_path, rows))
    assert str(only_problem(error)) == "line 4 (subject 105074), column age: 'abc' is not a number"
    assert (
        str(error) == f"subject sheet {tmp_path / 'subjects.tsv'}: 1 problem\n"
        "  line 4 (subject 105074), column age: 'abc' is not a number"
    )


def test_missing_required_columns_are_each_reported_and_stop_row_checks(tmp_path):
    sheet = write_sheet(tmp_path, [row(age="abc", sex="X")], ["subject_id", "age", "sex"])
    error = sheet_error(sheet)
    assert len(error.problems) == 2, str(error)  # the bad age and sex are not checked
    for problem, column in zip(error.problems, ["flair", "group"]):
        assert_names(problem, error, 1, None, column, "required column is missing")


def test_unknown_column_is_an_error_with_a_suggestion(tmp_path):
    sheet = write_sheet(tmp_path, [row(wmh_mak="img/mask.nii.gz")], [*COLUMNS, "wmh_mak"])
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 1, None, "wmh_mak", "unknown column", "did you mean wmh_mask?")


def test_repeated_column_is_an_error(tmp_path):
    sheet = write_sheet(tmp_path, [row()], [*COLUMNS, "age"])
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 1, None, "age", "appears 2 times")


def test_ids_differing_only_in_case_are_duplicates(tmp_path):
    """They would write to the same output folder on macOS and Windows."""
    sheet = write_sheet(tmp_path, [row("Sub1"), row("sub1")])
    with pytest.raises(SheetError) as error:
        load(sheet)
    assert "line 3 (subject sub1), column subject_id: duplicate subject ID, also on line 2 (as Sub1)" in str(
        error.value
    )


def test_duplicate_ids_name_every_line_involved(tmp_path):
    sheet = write_sheet(tmp_path, [row("a"), row("b"), row("a"), row("c"), row("a")])
    error = sheet_error(sheet)
    assert len(error.problems) == 3, str(error)
    for problem, line, others in zip(error.problems, [2, 4, 6], ["4, 6", "2, 6", "2, 4"]):
        assert_names(problem, error, line, "a", "subject_id", f"duplicate subject ID, also on line {others}")


@pytest.mark.parametrize("subject_id", ["a/b", "../x", "x y", ".hidden", "-x", "x" * 65, "süß"])
def test_unsafe_subject_id(tmp_path, subject_id):
    sheet = write_sheet(tmp_path, [row("ok"), row(subject_id, flair="img/x.nii.gz")])
    error = sheet_error(sheet)
    assert_names(
        only_problem(error), error, 3, subject_id, "subject_id", repr(subject_id)[:20], "is not a safe subject ID"
    )


@pytest.mark.parametrize("subject_id", ["", " ", "\u00a0"])
def test_empty_subject_id(tmp_path, subject_id):
    sheet = write_sheet(tmp_path, [row("ok"), row(subject_id, flair="img/x.nii.gz")])
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 3, None, "subject_id", "the cell is empty but the column is required")


def test_unknown_group(tmp_path):
    sheet = write_sheet(tmp_path, [row("s1"), row("s2", group="ms")])
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 3, "s2", "group", "'ms' is not an allowed group", "HC, MS")


def test_groups_come_from_the_argument(tmp_path):
    sheet = write_sheet(tmp_path, [row("s1", group="RRMS"), row("s2", group="MS")])
    assert list(load(sheet, allowed_groups=["HC", "RRMS", "MS"])["group"]) == ["RRMS", "MS"]
    error = sheet_error(sheet, allowed_groups=["HC", "RRMS"])
    assert_names(only_problem(error), error, 3, "s2", "group", "'MS' is not an allowed group", "HC, RRMS")


@pytest.mark.parametrize("sex", ["X", "f", "female"])
def test_unknown_sex(tmp_path, sex):
    error = sheet_error(write_sheet(tmp_path, [row(sex=sex)]))
    assert_names(only_problem(error), error, 2, "s01", "sex", f"{sex!r} is not one of F, M")


@pytest.mark.parametrize("age", ["abc", "forty", "nan", "inf", "44,5", "1_0", "NA"])
def test_age_not_a_number(tmp_path, age):
    error = sheet_error(write_sheet(tmp_path, [row(age=age)]))
    assert_names(only_problem(error), error, 2, "s01", "age", f"{age!r} is not a number")


@pytest.mark.parametrize("age", ["-1", "-0.5", "120.5", "200", "1e999"])
def test_age_out_of_range(tmp_path, age):
    error = sheet_error(write_sheet(tmp_path, [row(age=age)]))
    assert_names(only_problem(error), error, 2, "s01", "age", f"{age!r} is outside the allowed range 0 to 120")


def test_skull_stripped_not_a_flag(tmp_path):
    sheet = write_sheet(tmp_path, [row(skull_stripped="maybe")], [*COLUMNS, "skull_stripped"])
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 2, "s01", "skull_stripped", "'maybe' is not a yes/no value")


def test_missing_file_names_the_resolved_path(tmp_path):
    sheet = write_sheet(
        tmp_path, [row("s1"), row("s2", ventricles_mask="masks/../vent.nii")], [*COLUMNS, "ventricles_mask"]
    )
    (tmp_path / "img" / "s1.nii.gz").unlink()
    (tmp_path / "vent.nii").unlink()
    error = sheet_error(sheet)
    assert len(error.problems) == 2, str(error)
    assert_names(error.problems[0], error, 2, "s1", "flair", f"file not found: {tmp_path / 'img' / 's1.nii.gz'}")
    assert_names(error.problems[1], error, 3, "s2", "ventricles_mask", f"file not found: {tmp_path / 'vent.nii'}")


@pytest.mark.parametrize("column", ["flair", "wmh_mask", "ventricles_mask"])
@pytest.mark.parametrize("name", ["scan.img", "scan.mgz", "scan.nii.gz.bak", "scan.NII", ".nii.gz"])
def test_unsupported_extension(tmp_path, column, name):
    touch(tmp_path / name)  # exists, so the extension is the only problem
    sheet = write_sheet(tmp_path, [row(**{column: name})], [*COLUMNS, "wmh_mask", "ventricles_mask"])
    error = sheet_error(sheet)
    assert_names(
        only_problem(error), error, 2, "s01", column, f"{name!r} has an unsupported extension", ".nii or .nii.gz"
    )


def test_empty_required_cell(tmp_path):
    error = sheet_error(write_sheet(tmp_path, [row(flair=" ")]))
    assert_names(only_problem(error), error, 2, "s01", "flair", "the cell is empty but the column is required")


def test_row_with_wrong_number_of_cells(tmp_path):
    sheet = tmp_path / "subjects.tsv"
    touch(tmp_path / "a.nii")
    sheet.write_text("subject_id\tflair\tgroup\ns1\ta.nii\tMS\ns2\ta.nii\tMS\textra\n")
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 3, "s2", None, "4 cells but the header has 3")


@pytest.mark.parametrize("text", ["subject_id\tflair\tgroup\n", "subject_id\tflair\tgroup\n\n  \n\t\t\n"])
def test_empty_sheet(tmp_path, text):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text(text)
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, None, None, None, "the sheet has a header but no subject rows")
    assert str(error).startswith(f"subject sheet {sheet}: 1 problem\n")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b" \r\n\t\r\n"])
def test_empty_file(tmp_path, content):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_bytes(content)
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, None, None, None, "the file is empty", "subject_id, session, flair, group")


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "not a text file"),
        (b"subject_id\tflair\tgroup\ns1\ta.nii\tMS\nJos\xe9\ta.nii\tMS\n", 3, "not UTF-8 text"),
        (b"subject_id,flair,group\ns1,a.nii,MS\n", None, "line 1 has no tab: the sheet must be tab-separated"),
    ],
)
def test_file_that_is_not_a_tsv(tmp_path, content, line, words):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_bytes(content)
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, line, None, None, words)


def test_unreadable_sheet(tmp_path):
    error = sheet_error(tmp_path / "nowhere.tsv")
    assert_names(only_problem(error), error, None, None, None, "cannot read the file")


def test_all_problems_are_reported_together(tmp_path):
    rows = [
        row("s1"),
        row("s1", age="abc"),  # line 3: duplicate and bad age
        row("a/b", sex="X"),  # line 4
        row("s4", group="PD", flair="s4.mgz", age="200"),  # line 5
        row("s5", flair="gone.nii.gz", wmh_mask="m.img"),  # line 6
    ]
    sheet = write_sheet(tmp_path, rows, [*COLUMNS, "wmh_mask", "wmh_mak"])
    (tmp_path / "gone.nii.gz").unlink()
    error = sheet_error(sheet)
    found = [(problem.line, problem.column) for problem in error.problems]
    assert found == [
        (1, "wmh_mak"),
        (2, "subject_id"),
        (3, "subject_id"),
        (3, "age"),
        (4, "subject_id"),
        (4, "sex"),
        (5, "flair"),
        (5, "group"),
        (5, "age"),
        (6, "flair"),
        (6, "wmh_mask"),
    ]
    message = str(error)
    assert message.startswith(f"subject sheet {sheet}: 11 problems\n")
    assert message.splitlines()[1:] == [f"  {problem}" for problem in error.problems]


def test_error_survives_pickling(tmp_path):
    error = sheet_error(write_sheet(tmp_path, [row(age="abc")]))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.problems, str(copy)) == (error.path, error.problems, str(error))


def test_generated_paths_need_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cohort = tmp_path / "resources" / "demo"
    cohort.mkdir(parents=True)
    sheet = write_sheet(
        cohort, [row("d1", flair="d1.nii.gz"), row("d2", flair=str(cohort / "d2.nii.gz"))], images=False
    )
    error = sheet_error(sheet, generated_paths={"resources/demo/d1.nii.gz"})
    assert_names(only_problem(error), error, 3, "d2", "flair", "file not found")
    generated = {Path("resources/demo/d1.nii.gz"), "./resources/demo/../demo/d2.nii.gz"}
    assert list(load(sheet, generated_paths=generated)["flair"]) == [
        "resources/demo/d1.nii.gz",
        "resources/demo/d2.nii.gz",
    ]


def test_valid_sheet_round_trip(tmp_path, monkeypatch):
    folder = tmp_path / "study" / "config"
    for name in ["s1.nii.gz", "s1_wmh.nii", "s2.nii"]:
        touch(folder / "img" / name)
    touch(tmp_path / "study" / "shared.nii.gz")
    lines = [
        " subject_id \tflair\tgroup\tage\tsex\twmh_mask\tventricles_mask\tskull_stripped",
        "s1\timg/s1.nii.gz\tMS\t44\tF\timg/s1_wmh.nii\t\tYes",
        "",
        " s2 \t./img/s2.nii \t HC\t\t\t\t../shared.nii.gz\t0",
        "s3\timg/../img/s1.nii.gz\tMS\t 7.5 \tM\t\t\t",
    ]
    sheet = folder / "subjects.tsv"
    sheet.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    monkeypatch.chdir(tmp_path / "study")

    frame = load(sheet)

    assert frame.index.name == "scan_id"
    assert list(frame.index) == ["s1", "s2", "s3"]
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    assert frame["age"].dtype == float and frame["skull_stripped"].dtype == bool
    records = frame.to_dict("index")
    assert records["s1"] == {
        "subject_id": "s1",
        "session": "",
        "flair": "config/img/s1.nii.gz",
        "group": "MS",
        "age": 44.0,
        "sex": "F",
        "wmh_mask": "config/img/s1_wmh.nii",
        "ventricles_mask": "",
        "brain_mask": "",
        "skull_stripped": True,
    }
    assert math.isnan(records["s2"].pop("age"))
    assert records["s2"] == {
        "subject_id": "s2",
        "session": "",
        "flair": "config/img/s2.nii",
        "group": "HC",
        "sex": "",
        "wmh_mask": "",
        "ventricles_mask": "shared.nii.gz",
        "brain_mask": "",
        "skull_stripped": False,
    }
    assert (records["s3"]["flair"], records["s3"]["age"], records["s3"]["skull_stripped"]) == (
        "config/img/s1.nii.gz",
        7.5,
        False,
    )


def test_paths_outside_the_working_directory_are_absolute(tmp_path, monkeypatch):
    sheet = write_sheet(tmp_path / "sheet", [row("s1")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load(sheet).loc["s1", "flair"] == str(tmp_path / "sheet" / "img" / "s1.nii.gz")


@pytest.mark.parametrize(
    ("text", "flag"),
    [("TRUE", True), ("yes", True), ("1", True), ("False", False), ("NO", False), ("0", False), ("", False)],
)
def test_skull_stripped_spellings(tmp_path, text, flag):
    sheet = write_sheet(tmp_path, [row(skull_stripped=text)], [*COLUMNS, "skull_stripped"])
    assert load(sheet).loc["s01", "skull_stripped"] == flag


def test_sample_cohort_sheet_is_valid():
    require_flair_sample()
    frame = load(FLAIR_SAMPLE / "subjects.tsv")
    assert len(frame) > 0 and frame.index.is_unique
    assert set(frame["group"]) <= {"HC", "MS"}
    for column in ("flair", "wmh_mask", "ventricles_mask", "brain_mask"):
        assert all(path == "" or os.path.isfile(path) for path in frame[column])


# Cells that reach deep into the checks, mixed with arbitrary text.
_CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "s1",
            "s2",
            "a/b",
            "MS",
            "HC",
            "40",
            "-3",
            "1e999",
            "nan",
            "F",
            "x",
            "yes",
            "a.nii.gz",
            "b.nii",
            "c.mgz",
            "01",
            "ses-1",
        ]
    ),
    st.text(max_size=12),
)
_HEADERS = st.lists(
    st.sampled_from(
        [
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
            "wmh_mak",
            "",
        ]
    ),
    min_size=1,
    max_size=11,
)


@st.composite
def _tsv_like(draw) -> bytes:
    header = draw(_HEADERS)
    rows = draw(st.lists(st.lists(_CELLS, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = line_end.join("\t".join(cells) for cells in [header, *rows])
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode), _tsv_like()))
def test_fuzz_only_sheet_errors(tmp_path, content):
    # Every example overwrites the same files, so sharing tmp_path between examples is harmless.
    for name in ["a.nii.gz", "b.nii", "c.mgz"]:
        touch(tmp_path / name)
    sheet = tmp_path / "subjects.tsv"
    sheet.write_bytes(content)
    try:
        frame = load(sheet)
    except SheetError as error:
        assert error.problems and str(error).startswith(f"subject sheet {sheet}: ")
    else:
        assert frame.index.name == "scan_id" and tuple(frame.columns) == OUTPUT_COLUMNS and len(frame) > 0


# ---------------------------------------------------------------------------------------------
# Sessions: one row per scan


def test_sessions_name_scans_and_keep_subject_and_session(tmp_path):
    rows = [
        row("p1", session="02", flair="img/p1_b.nii.gz", age="41"),
        row("p1", session="01", flair="img/p1_a.nii.gz", age="40"),
        row("p2", session="01", flair="img/p2.nii.gz"),
    ]
    frame = load(write_sheet(tmp_path, rows, [*COLUMNS, "session"]))
    assert list(frame.index) == ["p1_ses-02", "p1_ses-01", "p2_ses-01"], "sheet order, scan IDs"
    assert list(frame["subject_id"]) == ["p1", "p1", "p2"]
    assert list(frame["session"]) == ["02", "01", "01"]
    assert list(frame["age"]) == [41.0, 40.0, 40.0], "age is per scan"


def test_a_sheet_without_sessions_keeps_subject_ids_as_scan_ids(tmp_path):
    frame = load(write_sheet(tmp_path, [row("s1"), row("s2")]))
    assert list(frame.index) == list(frame["subject_id"]) == ["s1", "s2"]
    assert list(frame["session"]) == ["", ""]


def test_session_problems_are_named(tmp_path):
    rows = [
        row("p1", session="01"),
        row("p1", session="01"),  # the same scan twice
        row("P2", session="a", flair="img/p2.nii.gz"),
        row("P2", flair="img/p2b.nii.gz"),  # no session beside a session of the same subject
        row("p3", session="ses 1"),  # not a safe label
    ]
    error = sheet_error(write_sheet(tmp_path, rows, [*COLUMNS, "session"]))
    by_line = {problem.line: problem for problem in error.problems}
    assert len(error.problems) == 4, str(error)
    assert_names(by_line[2], error, 2, "p1", "session", "duplicate session '01'", "also on line 3")
    assert_names(by_line[3], error, 3, "p1", "session", "duplicate session '01'", "also on line 2")
    assert_names(by_line[5], error, 5, "P2", "session", "no session", "sessions on line 4")
    assert_names(by_line[6], error, 6, "p3", "session", "not a safe session label")


def test_brain_mask_column_is_a_checked_path(tmp_path):
    rows = [row("s1", brain_mask="masks/s1_brain.nii.gz"), row("s2", brain_mask="masks/missing.nii.gz")]
    sheet = write_sheet(tmp_path, rows, [*COLUMNS, "brain_mask"], images=False)
    touch(tmp_path / "img" / "s1.nii.gz")
    touch(tmp_path / "img" / "s2.nii.gz")
    touch(tmp_path / "masks" / "s1_brain.nii.gz")
    error = sheet_error(sheet)
    assert_names(only_problem(error), error, 3, "s2", "brain_mask", "file not found")
    (tmp_path / "masks" / "missing.nii.gz").write_bytes(b"x")
    frame = load(sheet)
    assert frame.loc["s1", "brain_mask"].endswith("masks/s1_brain.nii.gz")
