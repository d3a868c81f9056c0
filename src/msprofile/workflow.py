"""Glue between Snakemake and the package: the logging and the per-subject wrapper that the
scripts under ``workflow/scripts`` run their job function in."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from .failures import run_subject_step

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


def run_subject_job(smk, step: str, work: Callable[[], None], *, upstream=()) -> bool:
    """The body of a per-subject rule's script: ``work()`` as :func:`run_subject_step` for the
    job's subject, logged to the job's log, under the config's ``on_error``.

    ``smk`` is the script's ``snakemake`` object; the rule's outputs all lie in the subject's
    folder, which holds the failure record."""
    subject_id = smk.wildcards.subject
    with logged(smk.log[0], f"{step} {subject_id}"):
        return run_subject_step(
            step,
            subject_id,
            work,
            upstream=upstream,
            outputs=list(smk.output),
            subject_dir=Path(smk.output[0]).parent,
            on_error=smk.config["on_error"],
        )


def epoch_logger(epochs: int, what: str = "training") -> Callable:
    """An ``on_epoch(epoch, loss, model)`` callback for :func:`msprofile.segmentation.train.train`
    that logs every epoch: its number of ``epochs``, the mean training loss, the learning rate
    the optimizer used and the epoch's wall time in seconds, so that a job training for hours
    says in its log how far it is and how fast it goes."""
    last = time.perf_counter()

    def on_epoch(epoch: int, loss: float, model) -> None:
        nonlocal last
        now = time.perf_counter()
        rate = float(model.optimizer.learning_rate.numpy())
        log.info(
            "%s epoch %d/%d: loss %.5f, learning rate %.3g, %.1f s", what, epoch + 1, epochs, loss, rate, now - last
        )
        last = now

    return on_epoch
