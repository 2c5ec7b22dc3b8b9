"""The one handler behind webhooks and reconciliation alike: re-read the order from Shopify,
decide, claim the documents that should exist, send them to Payday, and update the statuses.

Work for one order never runs twice at once (an advisory lock per order); a request that
arrives while a pass runs makes the holder run another pass before it lets go."""
from __future__ import annotations

import logging

from . import config, db, decision, documents, facts, orders, shop_settings, status, timeline
from .shopify_admin import AdminClient, ShopifyAuthError

log = logging.getLogger(__name__)


def _admin() -> AdminClient:
    return AdminClient(config.load())


def process_order(order_id: int, admin: AdminClient | None = None) -> str:
    admin = admin or _admin()
    while True:
        with db.advisory_lock(f"order-{order_id}") as got:
            if not got:
                return "busy"   # the holder re-checks after it lets go, so this request is not lost
            passes = 0
            while orders.is_dirty(order_id):
                run_pass(order_id, admin)
                passes += 1
        if not orders.is_dirty(order_id):
            return f"done after {passes} pass(es)"


def run_pass(order_id: int, admin: AdminClient) -> None:
    with db.transaction() as conn:
        order = conn.execute(
            """UPDATE orders SET work_started_at = now() WHERE id = %s
               RETURNING orders.*, (SELECT domain FROM shops WHERE id = orders.shop_id) AS shop_domain""",
            (order_id,)).fetchone()
    shop_id = order["shop_id"]
    try:
        order_facts = facts.read_order(admin, order["shop_domain"], order["order_gid"])
    except ShopifyAuthError as exc:
        # Uninstalled or token revoked: nothing can be read until the shop opens the app again,
        # which asks for these orders once more (orders.ask_again_after_error).
        _finish(order_id, error="shopify_auth", detail=str(exc))
        return
    except facts.OrderTooLarge as exc:
        _finish(order_id, error="order_too_large", detail=str(exc))
        return
    if order_facts is None:
        _finish(order_id, error="order_gone")
        return
    settings = shop_settings.load(shop_id)
    with db.transaction() as conn:
        conn.execute(
            "UPDATE orders SET name = %s, currency = %s, customer_name = %s, customer_email = %s WHERE id = %s",
            (order_facts.name, order_facts.currency, order_facts.customer.name, order_facts.customer.email, order_id))
        order = {**order, "name": order_facts.name}
        shop_settings.note_gateways(shop_id, (t.gateway for t in order_facts.transactions), conn)
        result = decision.decide(order_facts, documents.coverage(conn, order_id), settings.invoices_from)
        cases = {status.upsert_case(conn, shop_id, order_id, case, order_facts.currency): case for case in result.cases}
        case_ids = {case.key: case_id for case_id, case in cases.items()}
        if settings.auto_process and settings.payday_connected:
            for plan in result.plans:
                documents.claim(conn, shop_id=shop_id, order=order, plan=plan, case_id=case_ids.get(plan.case_key),
                                currency=order_facts.currency)
    due = documents.due(order_id)
    if due:
        client = documents.client_for(settings)
        customer = documents.customer_details(order, order_facts.customer, settings)
        for doc in due:
            documents.send(doc, client, settings, customer)
        _fetch_numbers(order_id, client)
    with db.transaction() as conn:
        status.refresh(conn, shop_id, order_id, cases, payday_connected=settings.payday_connected)
    _finish(order_id)


def _fetch_numbers(order_id: int, client) -> None:
    with db.transaction() as conn:
        ids = [r["id"] for r in conn.execute(
            "SELECT id FROM documents WHERE order_id = %s AND status = 'sent' AND payday_number IS NULL", (order_id,))]
    for doc_id in ids:
        try:
            documents.fetch_number(doc_id, client)
        except Exception:  # the periodic job asks again; a missing number never blocks
            log.info("no number yet for document %s", doc_id)


def _finish(order_id: int, error: str | None = None, detail: str | None = None) -> None:
    """The pass is over; `error` is the code of why the order could not be read (the home page
    lists such orders with i18n.REASONS[error]), `detail` goes on its timeline."""
    with db.transaction() as conn:
        conn.execute("UPDATE orders SET work_done_at = now(), last_error = %s WHERE id = %s", (error, order_id))
        if error:
            row = conn.execute("SELECT shop_id FROM orders WHERE id = %s", (order_id,)).fetchone()
            # The code is what the merchant reads (in their language); the detail is for support.
            timeline.add(conn, row["shop_id"], order_id, None, "read_error", {"error": error, "detail": detail})
