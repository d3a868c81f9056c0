"""Glue between Snakemake jobs and the package: logging for the scripts under workflow/scripts."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
import warnings
from typing import Iterator

log = logging.getLogger("msprofile")


@contextlib.contextmanager
def logged(log_path: str | os.PathLike, job: str) -> Iterator[logging.Logger]:
    """Write this job's log records and warnings to ``log_path``.

    An exception is written to the log with its traceback and then re-raised, so that
    Snakemake shows the message on the console as well and marks the job failed.
    """
    os.makedirs(os.path.dirname(os.fspath(log_path)) or ".", exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    started = time.perf_counter()
    log.info("%s: started", job)
    try:
        yield log
    except BaseException as exc:
        log.error("%s: failed: %s\n%s", job, exc, traceback.format_exc())
        raise
    else:
        log.info("%s: done in %.2f s", job, time.perf_counter() - started)
    finally:
        root.removeHandler(handler)
        handler.close()
