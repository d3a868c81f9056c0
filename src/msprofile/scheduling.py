"""Keep Snakemake's local scheduler from waking itself ever more often as a run goes on.

Snakemake 9's scheduler (``snakemake.scheduling.job_scheduler.JobScheduler``) re-arms a
one-second timer (``--max-jobs-per-timespan``, default ``100/1s``) at the end of every pass while
jobs wait for cores, and every job that starts or finishes starts one more such chain of timers
that never stops while jobs wait: after k job events the scheduler runs k passes per second,
each costing time proportional to the number of waiting jobs (it re-evaluates their params and
resources and stats their inputs). Upstream: snakemake/snakemake pull request #3744 (open).
On the project's 2-core machine the main Snakemake process spent 8.3 s of CPU on 24 subjects
(72 jobs) and 47 s on 800 one-line jobs, CPU taken from the jobs themselves; with the timers
coalesced, 3.5 s and 12 s (``benchmarks/throughput.py`` prints it as
``snakemake_cpu_seconds_per_subject``). The timers are also daemon threads here, so the end of a
run does not wait for the last one.
"""

from __future__ import annotations

import threading
import time


def coalesce_scheduler_wakeups() -> bool:
    """Make Snakemake's scheduler keep at most one pending wake-up (the earliest asked for).

    A pass is still run no later than every caller asked for, so the rate limit and queue-input
    waits behave as before; only the redundant passes go. Installed once per process (the
    Snakefile calls it); returns whether the scheduler is patched, False on a Snakemake whose
    scheduler no longer has the private method (then nothing is changed).
    """
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    original = getattr(JobScheduler, "_schedule_reevalutation", None)
    if original is None:
        return False
    if getattr(original, "coalesced", False):
        return True

    lock = threading.Lock()

    def _schedule_reevalutation(self, delay: float) -> None:
        wake_at = time.monotonic() + delay
        with lock:
            pending = getattr(self, "_msprofile_wake_at", None)
            if pending is not None and pending <= wake_at:
                return
            self._msprofile_wake_at = wake_at

        def wake() -> None:
            with lock:
                if getattr(self, "_msprofile_wake_at", None) == wake_at:
                    self._msprofile_wake_at = None
            self._open_jobs.release()

        timer = threading.Timer(delay, wake)
        timer.daemon = True
        timer.start()

    _schedule_reevalutation.coalesced = True
    JobScheduler._schedule_reevalutation = _schedule_reevalutation
    return True
