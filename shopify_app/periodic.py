"""What runs on a clock, registered with RQ's CronScheduler (started by worker.py)."""
from __future__ import annotations

from rq.cron import CronScheduler

from . import documents, events, jobqueue, reconcile, retention

# (function, interval in seconds). Each job only reads Postgres and enqueues; the work itself
# goes through the same jobs as webhooks.
SCHEDULE = [
    (events.sweep, 60),                   # lost jobs, dead workers, documents due for a retry
    (documents.fetch_missing_numbers, 60),  # Payday numbers invoices in the background
    (reconcile.reconcile_all, 600),       # missed webhooks
    (retention.purge, 3600),              # webhooks kept no longer than their retention period
]


def scheduler(connection=None) -> CronScheduler:
    cron = CronScheduler(connection=connection or jobqueue.redis_connection())
    for func, interval in SCHEDULE:
        cron.register(func, queue_name=jobqueue.QUEUE_NAME, interval=interval, job_timeout=300)
    return cron
