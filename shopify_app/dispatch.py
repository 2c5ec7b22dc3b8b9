"""The dispatcher: stored webhooks become work, and orders are handed to the queue fairly.

Intake only stores a row (webhooks.py); that row is the work request. Each worker process runs
`loop()` in a thread beside its RQ worker, and every pass of it:
  1. takes the received webhooks in a batch (events.take): each asks for work on its order;
  2. hands orders that need a pass to RQ while the queue is short (QUEUE_DEPTH), round-robin
     across shops with at most PER_SHOP orders of one shop in flight, live work before history,
     none whose shop's Shopify budget is spent (`not_before`, set instead of sleeping), none
     asked for within DEBOUNCE (the webhooks of one change arrive within a second: one pass
     serves them all).
So a shop with a backlog of thousands has PER_SHOP orders in flight, and another shop's order
waits behind at most the few jobs in the queue. Any number of dispatchers (one per worker
process, on any number of machines) may run: one at a time holds the dispatch lock, and an
order is claimed by an UPDATE on `queued_at` that only one of them can win. An order handed to a
worker that died is handed out again LOST_AFTER later; a second job for an order whose pass is
still running finds the order's lock taken and leaves (pipeline.process_order)."""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from psycopg import errors as pg_errors
from rq import SimpleWorker

from . import db, events, jobqueue, orders

log = logging.getLogger(__name__)

PER_SHOP = 2
QUEUE_DEPTH = 8
DEBOUNCE = timedelta(milliseconds=int(os.environ.get("SKILVIS_DEBOUNCE_MS", "500")))
LOST_AFTER = timedelta(seconds=60)   # a claim no one can account for (the last resort)
SETTLE = timedelta(seconds=1)        # a job between leaving the queue and taking its order's lock
IDLE_PAUSE = 0.2   # seconds between looks at Postgres when there was nothing to do
LOCK = "skilvis-dispatch"

CLAIM = """
WITH flying AS (
    SELECT shop_id, count(*) AS n FROM orders
    WHERE queued_at > now() - %(lost)s GROUP BY shop_id
), waiting AS (
    SELECT o.id, o.shop_id, o.lane, o.work_requested_at,
           row_number() OVER (PARTITION BY o.shop_id ORDER BY o.lane = 'history', o.work_requested_at, o.id) AS place
    FROM orders o
    WHERE (o.work_done_at IS NULL OR o.work_requested_at > o.work_started_at OR o.work_done_at < o.work_started_at)
      AND (o.queued_at IS NULL OR o.queued_at <= now() - %(lost)s)
      AND (o.not_before IS NULL OR o.not_before <= now())
      AND o.work_requested_at <= now() - %(debounce)s
), picked AS (
    SELECT w.id FROM waiting w LEFT JOIN flying f USING (shop_id)
    WHERE w.place + coalesce(f.n, 0) <= %(per_shop)s
    ORDER BY w.lane = 'history', w.place, w.work_requested_at
    LIMIT %(space)s
)
UPDATE orders o SET queued_at = now() FROM picked
WHERE o.id = picked.id AND (o.queued_at IS NULL OR o.queued_at <= now() - %(lost)s)
RETURNING o.id, o.lane
"""


def run_once(connection=None, debounce: timedelta = DEBOUNCE) -> int:
    """One look: webhooks taken plus orders handed out (0: nothing to do now)."""
    try:
        return events.take() + hand_out(connection, debounce)
    except pg_errors.DeadlockDetected:
        # Two workers' statements met on the same orders in opposite orders (one taking
        # webhooks, one claiming): Postgres undid one transaction whole, so nothing is lost and
        # the next look takes it again.
        log.info("dispatch met another worker's statement on the same orders; looking again")
        return 1


def hand_out(connection=None, debounce: timedelta = DEBOUNCE) -> int:
    connection = connection or jobqueue.redis_connection()
    space = QUEUE_DEPTH - jobqueue.queue(connection).count
    if space <= 0:
        return 0
    with db.transaction() as conn:
        if not conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (LOCK,)).fetchone()["pg_try_advisory_xact_lock"]:
            return 0   # another dispatcher is at it
        _release_lost(conn, connection)
        claimed = conn.execute(CLAIM, {"lost": LOST_AFTER, "debounce": debounce, "per_shop": PER_SHOP,
                                       "space": space}).fetchall()
    if claimed:
        try:
            jobqueue.enqueue_orders([(row["id"], row["lane"] == "history") for row in claimed], connection)
        except Exception:
            # Redis is down: the claims lapse after LOST_AFTER and the orders are handed out again.
            log.exception("could not hand %d orders to the queue", len(claimed))
            return 0
    return len(claimed)


def _release_lost(conn, connection) -> None:
    """Claims whose job is gone: neither waiting in the queue nor running (a running pass holds
    its order's lock, db.order_lock). A worker killed mid-pass, or a Redis flush, frees its
    orders here within seconds instead of after LOST_AFTER."""
    stale = [r["id"] for r in conn.execute(
        """SELECT o.id FROM orders o WHERE o.queued_at < now() - %s AND NOT EXISTS (
               SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %s
                 AND l.objid::bigint = o.id AND l.objsubid = 2)""", (SETTLE, db.ORDER_LOCKS))]
    if not stale:
        return
    waiting = jobqueue.waiting_jobs([jobqueue.order_job_id(i) for i in stale], connection)
    lost = [i for i in stale if jobqueue.order_job_id(i) not in waiting]
    if lost:
        log.warning("orders %s were handed to a worker that is gone: handing them out again", lost)
        conn.execute("UPDATE orders SET queued_at = NULL WHERE id = ANY(%s) AND queued_at < now() - %s",
                     (lost, SETTLE))


def loop(stop: threading.Event) -> None:
    """The dispatcher thread of a worker process, until `stop` is set."""
    connection = jobqueue.redis_connection()
    while not stop.is_set():
        try:
            busy = run_once(connection)
        except Exception:
            log.exception("dispatch failed; trying again")
            busy = 0
        if not busy:
            stop.wait(IDLE_PAUSE)


def run_until_idle(connection=None, debounce: timedelta = timedelta(0), budget_wait: float = 0.0) -> None:
    """Dispatch and run the jobs in this process until nothing can be handed out now (tests, the
    scenario player, `worker.py --burst`): what the worker process does, without its clock.
    With `budget_wait`, an order waiting at most that many seconds for its shop's Shopify budget
    to refill is waited for (Shopify's clock, not ours: the player's long orders need it)."""
    connection = connection or jobqueue.redis_connection()
    while True:
        handed = run_once(connection, debounce)
        worked = SimpleWorker(jobqueue.queues(connection), connection=connection).work(
            burst=True, logging_level="WARNING")
        if handed or worked:
            continue
        wait = _budget_wait() if budget_wait else None
        if wait is None or wait > budget_wait:
            return
        time.sleep(wait)


def _budget_wait() -> float | None:
    """Seconds until the first order set aside for its shop's Shopify budget may go again."""
    with db.transaction() as conn:
        row = conn.execute(f"""SELECT extract(epoch FROM min(o.not_before) - now()) AS wait FROM orders o
                               WHERE o.not_before > now() AND {orders.DIRTY}""").fetchone()
    return None if row["wait"] is None else max(float(row["wait"]), 0.0) + 0.05


def start() -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), name="skilvis-dispatch", daemon=True)
    thread.start()
    return thread, stop
