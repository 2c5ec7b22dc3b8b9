"""The job behind each stored webhook event, and the sweep that recovers work Redis lost.

Order topics only ask for work on their order (orders.py): the pipeline re-reads the truth."""
from __future__ import annotations

import logging
from datetime import timedelta

from . import compliance, db, orders, shops

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_PAUSE = timedelta(minutes=2)   # a failed event's next attempt: this many times its attempts later


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


def _order_changed(event: dict, conn=None) -> None:
    with db.joined(conn) as c:
        shop = shops.get(event["shop_domain"], c)
        # A shop whose tokens Shopify refused is still installed: its work is recorded, and the pass
        # ends "shopify_auth" until someone opens Skilvís, which gets a new pair and asks again.
        if shop is None or shop["uninstalled_at"] is not None:
            return
        legacy_id = order_id_of(event["topic"], event["payload"])
        if legacy_id is None:
            # returns/update names only the return; returns/process names nothing (reconciliation
            # covers it). A return we have seen tells us its order.
            legacy_id = _order_of_return(c, shop["id"], event["payload"].get("admin_graphql_api_id"))
        if legacy_id is not None and _may_change_something(c, shop["id"], legacy_id, event):
            orders.request_work(shop["id"], legacy_id, c)


def _may_change_something(conn, shop_id: int, legacy_id: int, event: dict) -> bool:
    """Whether the webhook could change a decision or what the merchant sees; if not, the order
    is not read again for it (each read costs Shopify budget). Conservative: whatever we are
    unsure of is read. Skipping is safe because a change that matters brings a webhook of its
    own (the close), and reconciliation reads every changed order in any case."""
    topic, payload = event["topic"], event["payload"]
    row = conn.execute(f"""SELECT id, {orders.DIRTY} AS dirty FROM orders o WHERE shop_id = %s AND legacy_id = %s""",
                       (shop_id, legacy_id)).fetchone()
    if row is None:
        # Any change to any order (orders/updated, kept for older subscriptions), or a payment of
        # an order with no return or refund we know of, decides nothing; its refund's own
        # refunds/create, or the return's request, will come.
        return topic not in ("orders/updated", "order_transactions/create")
    if row["dirty"]:
        return True   # a pass is due or under way: asking again costs nothing and misses nothing
    cases = conn.execute("SELECT case_gid, status FROM cases WHERE order_id = %s", (row["id"],)).fetchall()
    if topic == "returns/approve":
        # An approved request we already show: nothing is decided before the close.
        return not any(c["case_gid"] == payload.get("admin_graphql_api_id") for c in cases)
    if topic == "refunds/create":
        # A refund inside a return that is open waits for its close (R1, R9).
        ret = (payload.get("return") or {}).get("admin_graphql_api_id")
        return not any(c["case_gid"] == ret and c["status"] == "open" for c in cases)
    if topic == "order_transactions/create":
        # A payment can settle only what waits for one (E3, E4, F3): documents made, or a case
        # pending settlement. While every case is an open return, nothing is decided yet.
        has_documents = conn.execute("SELECT 1 FROM documents WHERE order_id = %s LIMIT 1", (row["id"],)).fetchone()
        return bool(has_documents) or any(c["status"] != "open" for c in cases)
    return True


def _scopes_updated(event: dict) -> None:
    """app/scopes_update: Shopify changed what Skilvís may read (the payload's `current`). A
    newly granted read_all_orders makes the orders hidden by the 60-day window readable."""
    current = event["payload"].get("current")
    if not isinstance(current, list):
        return
    shop = shops.set_scopes(event["shop_domain"], ",".join(str(s) for s in current))
    if shop and shops.sees_all_orders(shop["scopes"]):
        orders.ask_again_after_error(shop["id"], "order_outside_window")


def _order_of_return(conn, shop_id: int, return_gid) -> int | None:
    if not return_gid:
        return None
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


def take(limit: int = 500) -> int:
    """Turn stored webhooks into work (the dispatcher's first step): the order topics of a batch
    in one transaction, each asking for work on its order (orders.request_work); the others
    (uninstall, scopes, privacy) one by one. An event that failed waits longer before each new
    attempt (RETRY_PAUSE × attempts), up to MAX_ATTEMPTS."""
    with db.transaction() as conn:
        rows = conn.execute(
            """SELECT * FROM webhook_events
               WHERE status = 'received' AND (attempts = 0 OR received_at < now() - %s * attempts)
               ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED""", (RETRY_PAUSE, limit)).fetchall()
        done, apart = [], []
        for event in rows:
            if event["topic"] not in ORDER_TOPICS or event["attempts"]:
                apart.append(event["id"])
                continue
            try:
                with conn.transaction():   # a savepoint: one bad event does not undo the batch
                    _order_changed(event, conn)
                done.append(event["id"])
            except Exception:
                apart.append(event["id"])   # process_event records why, and it is tried again later
        if done:
            conn.execute("""UPDATE webhook_events SET status = 'processed', processed_at = now(), error = NULL,
                                   attempts = attempts + 1 WHERE id = ANY(%s)""", (done,))
    for event_id in apart:
        try:
            process_event(event_id)
        except Exception:
            pass   # logged and counted by process_event
    return len(rows)


def sweep() -> int:
    """Periodic (every minute): ask again for orders whose work is due on a clock (a document's
    next attempt, a read Shopify refused) and for history reads waiting on a bulk operation.
    Lost webhooks and jobs need no sweep: the dispatcher works from Postgres (dispatch.py). And
    a shop whose accounting system failed gets one document tried now (documents.probe_waiting)."""
    from . import documents
    from .reconcile import ask_running_history_reads
    documents.probe_waiting()
    return len(orders.due_for_work()) + ask_running_history_reads()
