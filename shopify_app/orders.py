"""Work bookkeeping per order: a webhook or the reconciliation asks for work, the job does it.

`work_requested_at` moves forward on every request; a pass records when it started and when it
finished. An order is dirty when a request came after the last pass started, or a pass started
and never finished (a worker died): then it needs another pass, whoever asked."""
from __future__ import annotations

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


def ask_again_where(shop_id: int, reason_codes: tuple[str, ...]) -> int:
    """Another pass over every order of the shop with a case waiting for one of these reasons
    (a setting that held it back has changed); returns how many orders were asked."""
    return _ask_again("""id IN (SELECT order_id FROM cases WHERE shop_id = %(shop)s
                                AND reason->>'code' = ANY(%(why)s))""", shop_id, list(reason_codes))


def ask_again_after_error(shop_id: int, error: str) -> int:
    """Another pass over every order of the shop whose last pass could not read it for this
    reason (e.g. `shopify_auth`, once the shop has a working token again)."""
    return _ask_again("last_error = %(why)s", shop_id, error)


def _ask_again(which: str, shop_id: int, why) -> int:
    with db.transaction() as conn:
        ids = [r["id"] for r in conn.execute(
            f"UPDATE orders SET work_requested_at = now() WHERE shop_id = %(shop)s AND {which} RETURNING id",
            {"shop": shop_id, "why": why})]
    for order_id in ids:
        enqueue(order_id)
    return len(ids)


def enqueue(order_id: int):
    from .pipeline import process_order

    # No queue-level dedupe on purpose: a second job for a clean order is a cheap no-op, while
    # a deduped one could be lost if it arrived just as the running job finished.
    return jobqueue.queue().enqueue(process_order, order_id, job_timeout=600, result_ttl=0,
                                    failure_ttl=7 * 24 * 3600)


def is_dirty(order_id: int) -> bool:
    with db.transaction() as conn:
        row = conn.execute(f"SELECT {DIRTY} AS dirty FROM orders o WHERE o.id = %s", (order_id,)).fetchone()
    return bool(row and row["dirty"])


def due_for_work(limit: int = 500) -> list[int]:
    """Orders to run again: a document of theirs is due for another attempt (asked for now), or
    their work was asked for, or left half-done, more than two minutes ago (a lost job, a dead
    worker)."""
    with db.transaction() as conn:
        retried = [r["id"] for r in conn.execute(
            """UPDATE orders SET work_requested_at = now()
               WHERE id IN (SELECT DISTINCT order_id FROM documents
                            WHERE status IN ('claimed', 'sending') AND next_attempt_at <= now())
               RETURNING id""")]
        stale = [r["id"] for r in conn.execute(
            f"""SELECT o.id FROM orders o
                WHERE {DIRTY} AND o.work_requested_at < now() - interval '2 minutes'
                ORDER BY o.work_requested_at LIMIT %s""", (limit,))]
    return list(dict.fromkeys(retried + stale))
