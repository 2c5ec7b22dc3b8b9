"""Work bookkeeping per order: a webhook or the reconciliation asks for work, the job does it.

`work_requested_at` moves forward on every request; a pass records when it started and when it
finished. An order is dirty when a request came after the last pass started, or a pass started
and never finished (a worker died): then it needs another pass, whoever asked."""
from __future__ import annotations

from datetime import timedelta

from . import db

DIRTY = """(o.work_started_at IS NULL OR o.work_requested_at > o.work_started_at
            OR o.work_done_at IS NULL OR o.work_done_at < o.work_started_at)"""


def order_gid(legacy_id) -> str:
    return f"gid://shopify/Order/{int(legacy_id)}"


def request_work(shop_id: int, legacy_id: int, conn=None, history: bool = False) -> int:
    """Ask for a pass over a Shopify order (known or not); the dispatcher hands it to a worker."""
    sql = f"""INSERT INTO orders AS o (shop_id, order_gid, legacy_id, lane)
              VALUES (%(shop)s, %(gid)s, %(legacy)s, CASE WHEN %(history)s THEN 'history' ELSE 'live' END)
              ON CONFLICT (shop_id, order_gid) DO UPDATE SET work_requested_at = now(),
                  lane = CASE WHEN %(history)s AND (o.lane = 'history' OR NOT {DIRTY}) THEN 'history' ELSE 'live' END
              RETURNING id"""
    with db.joined(conn) as c:
        return c.execute(sql, {"shop": shop_id, "gid": order_gid(legacy_id), "legacy": int(legacy_id),
                               "history": history}).fetchone()["id"]


def ask_again(conn, order_id: int, history: bool = False) -> None:
    """Ask for another pass over an order we already know (a retry, a credit by hand, a history
    read); the dispatcher hands it to a worker (dispatch.py). A history pass goes after all live
    work, unless live work on the order is waiting already."""
    _ask(conn, "o.id = %(id)s", {"id": order_id}, history)


def _ask(conn, which: str, params: dict, history: bool) -> list[int]:
    return [r["id"] for r in conn.execute(
        f"""UPDATE orders o SET work_requested_at = now(), read_again_at = NULL,
                lane = CASE WHEN %(history)s AND (o.lane = 'history' OR NOT {DIRTY}) THEN 'history' ELSE 'live' END
            WHERE {which} RETURNING o.id""", {**params, "history": history})]


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
        return len(_ask(conn, f"o.shop_id = %(shop)s AND {which}", {"shop": shop_id, "why": why}, history))


def read_again(shop_id: int, order_id: int) -> bool:
    """The merchant's Retry on an order Shopify refused to show: read it again now."""
    with db.transaction() as conn:
        return bool(_ask(conn, "o.id = %(id)s AND o.shop_id = %(shop)s AND o.last_error IS NOT NULL",
                         {"id": order_id, "shop": shop_id}, False))


# Pauses before an order Shopify refused (ShopifyRefused) is read again, capped at the last.
READ_AGAIN = [timedelta(minutes=m) for m in (10, 30, 60, 120, 240, 360)]


def release(order_id: int) -> None:
    """A worker is done with the order it was handed (dispatch.py)."""
    db.one_statement("UPDATE orders SET queued_at = NULL WHERE id = %s", (order_id,))


def not_before(order_id: int, seconds: float) -> None:
    """Not handed out again for this long (the shop's Shopify budget is spent, or a pass crashed)."""
    db.one_statement("UPDATE orders SET not_before = now() + make_interval(secs => %s) WHERE id = %s",
                     (max(0.1, float(seconds)), order_id))


def is_dirty(order_id: int) -> bool:
    with db.transaction() as conn:
        row = conn.execute(f"SELECT {DIRTY} AS dirty FROM orders o WHERE o.id = %s", (order_id,)).fetchone()
    return bool(row and row["dirty"])


def due_for_work() -> list[int]:
    """Orders whose work is due on a clock, asked for now: a document (or a stock movement) of
    theirs is due for another attempt, or Shopify refused to show them and their pause is over."""
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
    return list(dict.fromkeys(retried))
