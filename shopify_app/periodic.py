"""What runs on a clock, registered with RQ's CronScheduler (started by worker.py)."""
from __future__ import annotations

from rq.cron import CronScheduler

from . import events, jobqueue, reconcile, retention
from .accounting.payday import numbers

# (function, interval in seconds). Each job asks for work in Postgres; the dispatcher hands it to
# the same jobs as webhooks.
SCHEDULE = [
    (events.sweep, 60),                   # documents due for a retry, reads due again, history reads
    (numbers.fetch_missing_numbers, 60),  # Payday numbers invoices in the background
    # Missed webhooks (and history reads not finished): each shop's orders changed since its last
    # pass, one light query a minute, so a lost webhook costs a minute, not ten (issue 13).
    (reconcile.reconcile_all, 60),
    (retention.purge, 3600),              # webhooks kept no longer than their retention period
]


def scheduler(connection=None) -> CronScheduler:
    cron = CronScheduler(connection=connection or jobqueue.redis_connection())
    for func, interval in SCHEDULE:
        cron.register(func, queue_name=jobqueue.PERIODIC_QUEUE_NAME, interval=interval, job_timeout=300)
    return cron
