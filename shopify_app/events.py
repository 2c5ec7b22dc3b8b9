"""The job behind each stored webhook event, and the sweep that recovers work Redis lost.

Order topics only ask for work on their order (orders.py): the pipeline re-reads the truth."""
from __future__ import annotations

import logging

from . import compliance, db, orders, shops

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
STUCK_AFTER = "2 minutes"  # a 'received' event older than this has lost its job


def _uninstalled(event: dict) -> None:
    compliance.check(event, destructive=False)   # the payload is the shop itself
    shops.mark_uninstalled(event["shop_domain"])


def order_id_of(topic: str, payload: dict) -> int | None:
    """Which order a webhook is about. returns/* carry `order_id` (close, reopen, cancel) or
    `order.id` (request, approve, decline); refunds and transactions `order_id`; orders `id`."""
    if topic.startswith("orders/"):
        value = payload.get("id")
    else:
        value = payload.get("order_id") or (payload.get("order") or {}).get("id")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _order_changed(event: dict) -> None:
    shop = shops.get(event["shop_domain"])
    # A shop whose tokens Shopify refused is still installed: its work is recorded, and the pass
    # ends "shopify_auth" until someone opens Skilvís, which gets a new pair and asks again.
    if shop is None or shop["uninstalled_at"] is not None:
        return
    legacy_id = order_id_of(event["topic"], event["payload"])
    if legacy_id is None:
        # returns/update names only the return; returns/process names nothing (reconciliation
        # covers it). A return we have seen tells us its order.
        legacy_id = _order_of_return(shop["id"], event["payload"].get("admin_graphql_api_id"))
    if legacy_id is None:
        return
    if event["topic"] == "orders/updated" and not _known(shop["id"], legacy_id):
        # Kept for shops whose subscription predates its removal from shopify.app.toml: any
        # change to any order is no reason to read an order with no return or refund we know.
        return
    orders.enqueue(orders.request_work(shop["id"], legacy_id))


def _known(shop_id: int, legacy_id: int) -> bool:
    with db.transaction() as conn:
        return conn.execute("SELECT 1 FROM orders WHERE shop_id = %s AND legacy_id = %s",
                            (shop_id, legacy_id)).fetchone() is not None


def _scopes_updated(event: dict) -> None:
    """app/scopes_update: Shopify changed what Skilvís may read (the payload's `current`). A
    newly granted read_all_orders makes the orders hidden by the 60-day window readable."""
    current = event["payload"].get("current")
    if not isinstance(current, list):
        return
    shop = shops.set_scopes(event["shop_domain"], ",".join(str(s) for s in current))
    if shop and shops.sees_all_orders(shop["scopes"]):
        orders.ask_again_after_error(shop["id"], "order_outside_window")


def _order_of_return(shop_id: int, return_gid) -> int | None:
    if not return_gid:
        return None
    with db.transaction() as conn:
        row = conn.execute("""SELECT o.legacy_id FROM cases c JOIN orders o ON o.id = c.order_id
                              WHERE c.shop_id = %s AND c.case_gid = %s""", (shop_id, return_gid)).fetchone()
    return row["legacy_id"] if row else None


ORDER_TOPICS = ("returns/request", "returns/approve", "returns/decline", "returns/cancel", "returns/close",
                "returns/reopen", "returns/process", "returns/update", "refunds/create",
                "order_transactions/create", "orders/updated")

HANDLERS = {
    **{topic: _order_changed for topic in ORDER_TOPICS},
    "app/uninstalled": _uninstalled,
    "app/scopes_update": _scopes_updated,
    "customers/data_request": compliance.record_data_request,
    "customers/redact": compliance.redact_customer,
    "shop/redact": compliance.redact_shop,
}


def process_event(event_id: int) -> str:
    """Run the handler for one stored event, once: a processed event is left alone, so a
    redelivered job (or the sweep racing the queue) does nothing twice."""
    with db.transaction() as conn:
        event = conn.execute(
            "SELECT * FROM webhook_events WHERE id = %s FOR UPDATE SKIP LOCKED", (event_id,)
        ).fetchone()
        if event is None or event["status"] != "received":
            return "skipped"
        conn.execute("UPDATE webhook_events SET attempts = attempts + 1 WHERE id = %s", (event_id,))
    handler = HANDLERS.get(event["topic"])
    try:
        if handler:
            handler(event)
    except compliance.Held as exc:
        log.warning("held webhook event %s (%s) from %s for review: %s", event_id, event["topic"],
                    event["shop_domain"], exc)
        with db.transaction() as conn:
            conn.execute("UPDATE webhook_events SET status = 'held', error = %s WHERE id = %s", (str(exc), event_id))
        return "held"
    except Exception as exc:
        log.exception("webhook event %s (%s) failed", event_id, event["topic"])
        with db.transaction() as conn:
            conn.execute(
                """UPDATE webhook_events SET error = %s,
                       status = CASE WHEN attempts >= %s THEN 'failed' ELSE status END
                   WHERE id = %s""",
                (f"{type(exc).__name__}: {exc}", MAX_ATTEMPTS, event_id),
            )
        raise
    with db.transaction() as conn:
        conn.execute(
            "UPDATE webhook_events SET status = 'processed', processed_at = now(), error = NULL WHERE id = %s",
            (event_id,),
        )
    return "processed"


def sweep() -> int:
    """Periodic: enqueue events still 'received' after STUCK_AFTER and orders whose work was
    left undone (a lost job, a dead worker, a document due for another attempt). Postgres is the
    source of truth; the queue is not."""
    from .webhooks import enqueue_event

    with db.transaction() as conn:
        rows = conn.execute(
            f"""SELECT id FROM webhook_events
                WHERE status = 'received' AND received_at < now() - interval '{STUCK_AFTER}'
                ORDER BY id LIMIT 500"""
        ).fetchall()
    for row in rows:
        enqueue_event(row["id"])
    stuck_orders = orders.due_for_work()
    for order_id in stuck_orders:
        orders.enqueue(order_id)
    from .reconcile import ask_running_history_reads
    return len(rows) + len(stuck_orders) + ask_running_history_reads()
