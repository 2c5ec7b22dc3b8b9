"""Work bookkeeping per order: a webhook or the reconciliation asks for work, the job does it.

`work_requested_at` moves forward on every request; a pass records when it started and when it
finished. An order is dirty when a request came after the last pass started, or a pass started
and never finished (a worker died): then it needs another pass, whoever asked."""
from __future__ import annotations

from datetime import timedelta

from . import db, jobqueue

DIRTY = """(o.work_started_at IS NULL OR o.work_requested_at > o.work_started_at
            OR o.work_done_at IS NULL OR o.work_done_at < o.work_started_at)"""


def order_gid(legacy_id) -> str:
    return f"gid://shopify/Order/{int(legacy_id)}"


def request_work(shop_id: int, legacy_id: int, conn=None) -> int:
    sql = """INSERT INTO orders (shop_id, order_gid, legacy_id) VALUES (%s, %s, %s)
             ON CONFLICT (shop_id, order_gid) DO UPDATE SET work_requested_at = now()
             RETURNING id"""
    with db.joined(conn) as c:
        return c.execute(sql, (shop_id, order_gid(legacy_id), int(legacy_id))).fetchone()["id"]


def ask_again(conn, order_id: int) -> None:
    """Ask for another pass over an order we already know (a retry, a credit by hand)."""
    conn.execute("UPDATE orders SET work_requested_at = now() WHERE id = %s", (order_id,))


def ask_again_where(shop_id: int, reason_codes: tuple[str, ...], history: bool = False) -> int:
    """Another pass over every order of the shop with a case waiting for one of these reasons
    (a setting that held it back has changed); returns how many orders were asked."""
    return _ask_again("""id IN (SELECT order_id FROM cases WHERE shop_id = %(shop)s
                                AND reason->>'code' = ANY(%(why)s))""", shop_id, list(reason_codes), history)


def ask_again_after_error(shop_id: int, error: str) -> int:
    """Another pass over every order of the shop whose last pass could not read it for this
    reason (e.g. `shopify_auth`, once the shop has a working token again)."""
    return _ask_again("last_error = %(why)s", shop_id, error)


def _ask_again(which: str, shop_id: int, why, history: bool = False) -> int:
    with db.transaction() as conn:
        ids = [r["id"] for r in conn.execute(
            f"""UPDATE orders SET work_requested_at = now(), read_again_at = NULL
                WHERE shop_id = %(shop)s AND {which} RETURNING id""",
            {"shop": shop_id, "why": why})]
    for order_id in ids:
        enqueue(order_id, history=history)
    return len(ids)


def read_again(shop_id: int, order_id: int) -> bool:
    """The merchant's Retry on an order Shopify refused to show: read it again now."""
    with db.transaction() as conn:
        found = conn.execute("""UPDATE orders SET work_requested_at = now(), read_again_at = NULL
                                WHERE id = %s AND shop_id = %s AND last_error IS NOT NULL RETURNING id""",
                             (order_id, shop_id)).fetchone()
    if found:
        enqueue(order_id)
    return found is not None


# A job asked for an order while another is still waiting in the queue is not enqueued: the
# waiting one has not read the order yet, and the request is in Postgres, so one pass serves
# every webhook of a burst (a close, its refund and its payment arrive within a second). The
# mark is dropped when the job starts (`started`); one that was never taken (Redis lost its
# queue) expires, and the sweep enqueues again.
QUEUED_MARK_TTL = 300


def _queued_mark(order_id: int, history: bool) -> str:
    return f"skilvis:order-queued:{order_id}:{'history' if history else 'live'}"


def enqueue(order_id: int, *, history: bool = False):
    from .pipeline import process_order

    connection = jobqueue.redis_connection()
    if not connection.set(_queued_mark(order_id, history), 1, nx=True, ex=QUEUED_MARK_TTL):
        return None
    return jobqueue.queue(connection, history=history).enqueue(
        process_order, order_id, history, job_timeout=600, result_ttl=0, failure_ttl=7 * 24 * 3600)


def started(order_id: int, history: bool) -> None:
    """The job for this order is running: a request from now on needs a job of its own."""
    jobqueue.redis_connection().delete(_queued_mark(order_id, history))


# Pauses before an order Shopify refused (ShopifyRefused) is read again, capped at the last.
READ_AGAIN = [timedelta(minutes=m) for m in (10, 30, 60, 120, 240, 360)]


def is_dirty(order_id: int) -> bool:
    with db.transaction() as conn:
        row = conn.execute(f"SELECT {DIRTY} AS dirty FROM orders o WHERE o.id = %s", (order_id,)).fetchone()
    return bool(row and row["dirty"])


def due_for_work(limit: int = 500) -> list[int]:
    """Orders to run again: a document of theirs is due for another attempt, or Shopify refused
    to show them and their pause is over (both asked for now), or their work was asked for, or
    left half-done, more than two minutes ago (a lost job, a dead worker)."""
    with db.transaction() as conn:
        retried = [r["id"] for r in conn.execute(
            """UPDATE orders SET work_requested_at = now()
               WHERE id IN (SELECT order_id FROM documents
                            WHERE status IN ('claimed', 'sending') AND next_attempt_at <= now()
                            UNION SELECT order_id FROM stock_moves
                            WHERE status IN ('pending', 'sending') AND next_attempt_at <= now())
               RETURNING id""")]
        retried += [r["id"] for r in conn.execute(
            """UPDATE orders SET work_requested_at = now(), read_again_at = NULL
               WHERE read_again_at <= now() RETURNING id""")]
        stale = [r["id"] for r in conn.execute(
            f"""SELECT o.id FROM orders o
                WHERE {DIRTY} AND o.work_requested_at < now() - interval '2 minutes'
                ORDER BY o.work_requested_at LIMIT %s""", (limit,))]
    return list(dict.fromkeys(retried + stale))
