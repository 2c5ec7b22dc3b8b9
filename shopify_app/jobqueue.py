"""The RQ queue. Redis holds only this queue: every job can be rebuilt from Postgres."""
from __future__ import annotations

import os
import re

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus

QUEUE_NAME = "skilvis"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_connections: dict[tuple[int, str], Redis] = {}


def redis_connection(url: str | None = None) -> Redis:
    url = url or os.environ.get("REDIS_URL", "")
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    key = (os.getpid(), url)  # never share a socket across a fork
    if key not in _connections:
        _connections[key] = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                           health_check_interval=30)
    return _connections[key]


# History reads (a merchant moved the start of invoicing back) have a queue of their own, which
# workers take from only when the live queue is empty: live invoicing never waits behind them.
HISTORY_QUEUE_NAME = "skilvis-history"


# The periodic jobs (sweep, reconciliation, numbers, purge) have a queue of their own, taken
# first: a clock's job never waits behind a backlog, and order work never behind the clock's.
PERIODIC_QUEUE_NAME = "skilvis-periodic"


def queue(connection: Redis | None = None, *, history: bool = False) -> Queue:
    return Queue(HISTORY_QUEUE_NAME if history else QUEUE_NAME, connection=connection or redis_connection())


def queues(connection: Redis | None = None) -> list[Queue]:
    """What a worker takes from, in order of priority."""
    connection = connection or redis_connection()
    return [Queue(PERIODIC_QUEUE_NAME, connection=connection), queue(connection), queue(connection, history=True)]


def enqueue_orders(orders: list[tuple[int, bool]], connection: Redis | None = None) -> None:
    """One pass job per (order id, history?), in one round trip per queue (the dispatcher's)."""
    from .pipeline import process_order

    connection = connection or redis_connection()
    for history in (False, True):
        chosen = [order_id for order_id, h in orders if h == history]
        if chosen:
            q = queue(connection, history=history)
            q.enqueue_many([Queue.prepare_data(process_order, (order_id, history), timeout=600, result_ttl=0,
                                               failure_ttl=7 * 24 * 3600, job_id=order_job_id(order_id))
                            for order_id in chosen])


def order_job_id(order_id: int) -> str:
    return f"order-{order_id}"


def waiting_jobs(job_ids: list[str], connection: Redis | None = None) -> set[str]:
    """Which of these jobs are still waiting to be taken (queued, scheduled or deferred)."""
    pipe = (connection or redis_connection()).pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(f"rq:job:{job_id}", "status")
    return {job_id for job_id, status in zip(job_ids, pipe.execute())
            if status in (b"queued", b"scheduled", b"deferred")}


def job_id(*parts) -> str:
    """RQ job ids may hold only letters, digits, '_' and '-' (RQ 2.8), so no raw GIDs."""
    value = "-".join(str(p) for p in parts)
    if not _JOB_ID.match(value):
        raise ValueError(f"not a valid job id: {value!r}")
    return value


def enqueue_once(func, *args, job_key: str, connection: Redis | None = None, history: bool = False, **kwargs):
    """Enqueue unless a job with this id is already waiting or running (then return that one).

    This only saves work; what makes effects happen once is Postgres (unique keys)."""
    q = queue(connection, history=history)
    kwargs.setdefault("result_ttl", 0)          # a finished job frees its id at once
    kwargs.setdefault("failure_ttl", 7 * 24 * 3600)
    for _ in range(3):
        try:
            return q.enqueue(func, *args, job_id=job_key, unique=True, **kwargs)
        except DuplicateJobError:
            existing = q.fetch_job(job_key)
            if existing is None:
                continue
            if existing.get_status(refresh=True) in _WAITING:
                return existing
            existing.delete()  # a failed or stopped run of the same work: start afresh
    raise RuntimeError(f"could not enqueue {job_key}")


_WAITING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
