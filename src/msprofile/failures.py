"""The failure protocol of per-subject steps (config ``on_error``): which errors belong to a
subject, the failure record ``failure.json`` and the empty placeholder files that stand in
for the outputs of a failed step, so that one broken subject does not stop a cohort.

The subject-error types: :class:`~msprofile.io.InputImageError` (an input that cannot be
processed; its message names subject, file and problem) and the other :data:`SUBJECT_ERRORS`.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path

from .io import InputImageError, load_json, save_json, write_empty_file

__all__ = [
    "FAILURE_FILE",
    "ON_ERROR_CHOICES",
    "SUBJECT_ERRORS",
    "InputImageError",
    "is_placeholder",
    "read_failure",
    "run_subject_step",
]

log = logging.getLogger("msprofile")


#: The values of the config key ``on_error``.
ON_ERROR_CHOICES = ("record", "stop")
#: Written into a subject's folder when one of its steps failed under ``on_error: record``.
FAILURE_FILE = "failure.json"
#: What ``on_error: record`` records: problems of a subject's data (the loaders' and checks'
#: InputImageError is a ValueError) and numerical failures on it. Anything else is a problem of
#: the setup that would fail every subject (RuntimeError: no GPU where one is required, a
#: model that fails its checksum; OSError: a full disk; ImportError) and stops the run.
SUBJECT_ERRORS = (ValueError, ArithmeticError, LookupError, MemoryError)


def is_placeholder(path: str | os.PathLike) -> bool:
    """True for the empty file that stands in for an output of a failed subject step.

    No real output of the workflow (NIfTI, JSON, PNG, Parquet) is ever empty.
    """
    return os.path.isfile(path) and os.path.getsize(path) == 0


def read_failure(subject_dir: str | os.PathLike) -> dict | None:
    """The failure record of a subject (``{"subject_id", "step", "error"}``), or None."""
    path = Path(subject_dir) / FAILURE_FILE
    if not path.is_file():
        return None
    return load_json(path)


def run_subject_step(
    step: str,
    subject_id: str,
    work: Callable[[], None],
    *,
    upstream,
    outputs,
    subject_dir: str | os.PathLike,
    on_error: str,
) -> bool:
    """Run one per-subject step, ``work()``, under the ``on_error`` policy; return whether it ran
    and succeeded.

    ``stop``: exceptions propagate, the job fails (and with it the run, unless
    ``--keep-going``). ``record``: an exception of :data:`SUBJECT_ERRORS` is logged with its
    traceback (others propagate as under ``stop``), the subject's
    :data:`FAILURE_FILE` records the step and the message, and every file of ``outputs`` is
    replaced by an empty placeholder, so that the run goes on and the cohort table lists the
    subject as failed. A step whose ``upstream`` inputs (this subject's outputs of earlier
    steps) are placeholders does not run: it writes placeholders too. A successful step
    removes a failure record that this step had written in an earlier run.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, not {on_error!r}")
    if any(is_placeholder(p) for p in upstream):
        failure = read_failure(subject_dir) or {}
        log.warning(
            "%s %s: not run, an earlier step failed (%s: %s)",
            step,
            subject_id,
            failure.get("step", "unknown step"),
            failure.get("error", "see its log"),
        )
        _write_placeholders(outputs)
        return False
    try:
        work()
    except SUBJECT_ERRORS as exc:
        if on_error == "stop":
            raise
        log.error("%s %s: failed, recorded (on_error: record): %s\n%s", step, subject_id, exc, traceback.format_exc())
        # InputImageError names subject, file and problem itself; anything else gets its type.
        error = str(exc) if isinstance(exc, InputImageError) else f"{type(exc).__name__}: {exc}"
        save_json({"subject_id": subject_id, "step": step, "error": error}, Path(subject_dir) / FAILURE_FILE)
        _write_placeholders(outputs)
        return False
    failure = read_failure(subject_dir)
    if failure is not None and failure.get("step") == step:
        (Path(subject_dir) / FAILURE_FILE).unlink()
    return True


def _write_placeholders(paths) -> None:
    for path in paths:
        write_empty_file(path)
