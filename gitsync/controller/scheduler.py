"""Periodic refresh per Application, driven by APScheduler (the only module that imports it).

Each Application gets an interval job at ``spec.interval`` with jitter (up to 10% of the interval,
at most 30 s) so a thousand apps with the same interval do not hit Git in lockstep. A job only
enqueues a refresh; the work queue coalesces it with other triggers.
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gitsync.model import AppKey


class RefreshScheduler:
    def __init__(self, enqueue: Callable[[AppKey], None]):
        self._enqueue = enqueue
        self._scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        self._intervals: dict[AppKey, float] = {}

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @staticmethod
    def _job_id(key: AppKey) -> str:
        return f"{key[0]}/{key[1]}"

    def schedule(self, key: AppKey, interval: float) -> None:
        """(Re)schedule ``key`` every ``interval`` seconds; a no-op when unchanged."""
        if self._intervals.get(key) == interval:
            return
        self._intervals[key] = interval
        jitter = min(interval * 0.1, 30.0)
        self._scheduler.add_job(
            self._enqueue,
            IntervalTrigger(seconds=interval, jitter=int(jitter) or None),
            args=[key],
            id=self._job_id(key),
            replace_existing=True,
        )

    def unschedule(self, key: AppKey) -> None:
        if self._intervals.pop(key, None) is not None:
            job = self._scheduler.get_job(self._job_id(key))
            if job is not None:
                job.remove()

    def scheduled(self) -> set[AppKey]:
        return set(self._intervals)
