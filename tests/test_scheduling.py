"""The Snakemake scheduler workaround (msprofile.scheduling) on the installed Snakemake."""

from __future__ import annotations

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from msprofile.scheduling import coalesce_scheduler_wakeups


class _Scheduler:
    """The two attributes of a JobScheduler the wake-up timers touch."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)

    def passes_released(self, within_s: float) -> int:
        deadline = time.monotonic() + within_s
        count = 0
        while self._open_jobs.acquire(timeout=max(deadline - time.monotonic(), 0)):
            count += 1
        return count


def test_the_installed_snakemake_scheduler_is_patched():
    # False here means Snakemake renamed its private timer method: the workaround silently
    # stopped applying and the scheduler's wake-ups multiply again on large cohorts.
    assert coalesce_scheduler_wakeups()
    assert coalesce_scheduler_wakeups()
    assert JobScheduler._schedule_reevalutation.coalesced


def test_many_requests_for_a_wake_up_give_one_pass_and_no_blocking_thread():
    coalesce_scheduler_wakeups()
    scheduler = _Scheduler()
    for _ in range(50):
        JobScheduler._schedule_reevalutation(scheduler, 0.05)
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert timers and all(t.daemon for t in timers)
    assert scheduler.passes_released(within_s=0.5) == 1
    # Once it has fired, the next request arms a new timer.
    JobScheduler._schedule_reevalutation(scheduler, 0.05)
    assert scheduler.passes_released(within_s=0.5) == 1


def test_an_earlier_wake_up_is_not_held_back_by_a_later_one():
    coalesce_scheduler_wakeups()
    scheduler = _Scheduler()
    JobScheduler._schedule_reevalutation(scheduler, 30)
    JobScheduler._schedule_reevalutation(scheduler, 0.05)
    assert scheduler.passes_released(within_s=2) == 1
