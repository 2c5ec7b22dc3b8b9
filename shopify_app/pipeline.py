"""The one handler behind webhooks and reconciliation alike: re-read the order from Shopify,
decide, claim the documents that should exist, hand them to the shop's accounting system, and
update the statuses.

Work for one order never runs twice at once (an advisory lock per order); a request that
arrives while a pass runs makes the holder run another pass before it lets go."""
from __future__ import annotations

from . import accounting, config, db, decision, documents, facts, orders, shop_settings, shops, status, story, timeline
from .shopify_admin import AdminClient, ShopifyAuthError, ShopifyBusy, ShopifyRefused


def _admin(history: bool = False) -> AdminClient:
    # A history pass leaves half of the shop's GraphQL budget to live invoicing.
    return AdminClient(config.load(), reserve=0.5 if history else 0.0)


FAILED_PASS_PAUSE = 60   # seconds


def process_order(order_id: int, history: bool = False, admin: AdminClient | None = None) -> str:
    """The job the dispatcher hands out: passes over the order while it needs one. The order's
    claim (`queued_at`) is given back at the end, so the dispatcher may hand it out again."""
    with db.order_lock(order_id) as got:
        if not got:
            return "busy"   # another worker's pass; it gives the claim back when it is done
        passes = 0
        try:
            admin = admin or _admin(history)
            dirty = orders.is_dirty(order_id)
            while dirty:
                dirty = run_pass(order_id, admin)
                passes += 1
        except ShopifyBusy as exc:
            # The shop's Shopify budget is spent: no sleeping in a worker. The order stays asked
            # for, and the dispatcher hands it out again once the bucket has refilled.
            orders.not_before(order_id, exc.retry_in)
            return "waiting for Shopify's budget"
        except BaseException:
            # A pass that crashed (a bug, Shopify down for longer than the client's retries, the
            # worker told to stop) is tried again a minute later, not at once and forever.
            orders.not_before(order_id, FAILED_PASS_PAUSE)
            raise
        finally:
            orders.release(order_id)
        return f"done after {passes} pass(es)"


def run_pass(order_id: int, admin: AdminClient) -> bool:
    """One pass over the order; whether it needs another (work asked for meanwhile)."""
    with db.transaction() as conn:
        order = conn.execute(
            """UPDATE orders SET work_started_at = now() FROM shops WHERE orders.id = %s AND shops.id = orders.shop_id
               RETURNING orders.*, shops.domain AS shop_domain, shops.scopes AS shop_scopes""",
            (order_id,)).fetchone()
        if order is None:
            return False   # gone meanwhile (the shop's data erased on Shopify's request)
        settings = shop_settings.load(order["shop_id"], conn)
    shop_id = order["shop_id"]
    try:
        order_facts = facts.read_order(admin, order["shop_domain"], order["order_gid"])
    except ShopifyAuthError as exc:
        # Uninstalled or token revoked: nothing can be read until the shop opens the app again,
        # which asks for these orders once more (orders.ask_again_after_error).
        return _finish(order_id, error="shopify_auth", detail=str(exc))
    except ShopifyRefused as exc:
        # Asking again in a minute will not help (a scope, an approval, a frozen shop): read
        # again on a capped backoff, and the home page lists the order with a retry.
        return _finish(order_id, error=exc.code, detail=str(exc), read_again=True)
    if order_facts is None:
        # Without read_all_orders Shopify hides orders older than 60 days: that is not "gone".
        return _finish(order_id, error="order_gone" if shops.sees_all_orders(order["shop_scopes"]) else "order_outside_window")
    buyer = order_facts.customer
    blocked = settings.holds_back(customer_withheld=buyer.withheld)
    with db.transaction() as conn:
        with decision.booking_rates(settings.vat_rates):
            result = decision.decide(order_facts, documents.coverage(conn, order_id), settings.invoices_from,
                                     documents.reopened(conn, order_id))
        # The buyer is kept only on an order with a return or refund to show (the merchant finds
        # it by name), and never again on an order whose customer Shopify asked us to forget.
        keep = bool(result.cases) and order["redacted_at"] is None
        conn.execute(
            """UPDATE orders SET name = %s, currency = %s, customer_id = %s, customer_name = %s, customer_email = %s
               WHERE id = %s""",
            (order_facts.name, order_facts.currency, *((buyer.shopify_id, buyer.name, buyer.email) if keep
                                                       else (None, None, None)), order_id))
        order = {**order, "name": order_facts.name, "placed_at": order_facts.created_at}
        shop_settings.note_gateways(shop_id, (t.gateway for t in order_facts.transactions), conn)
        cases = {status.upsert_case(conn, shop_id, order_id, case, order_facts.currency): case for case in result.cases}
        case_ids = {case.key: case_id for case_id, case in cases.items()}
        story.note(conn, shop_id, order_id, order_facts, case_ids)   # what changed in Shopify, for the timeline
        if blocked is None:
            for plan in result.plans:
                documents.claim(conn, shop_id=shop_id, order=order, plan=plan, case_id=case_ids.get(plan.case_key),
                                currency=order_facts.currency, system=settings.accounting)
    if blocked != "default_customer_missing":   # nobody to put the invoice on yet
        system = accounting.for_shop(settings)
        to = documents.buyer(order, buyer, settings)
        for doc in documents.due(order_id):
            documents.send(doc, system, settings, to)
        system.follow_up(order_id)
    with db.transaction() as conn:
        status.refresh(conn, shop_id, order_id, cases, blocked=blocked)
        return _finish(order_id, conn=conn)


def _finish(order_id: int, error: str | None = None, detail: str | None = None, read_again: bool = False,
            conn=None) -> bool:
    """The pass is over; `error` is the code of why the order could not be read (the home page
    lists such orders with i18n.REASONS[error]), `detail` goes on its timeline. With
    `read_again`, the order is read again after a growing pause (orders.READ_AGAIN). Returns
    whether work was asked for while the pass ran (another pass is due)."""
    with db.joined(conn) as conn:
        done = conn.execute(
            """UPDATE orders o SET work_done_at = now(), last_error = %(error)s,
                   read_failures = CASE WHEN %(again)s THEN read_failures + 1 ELSE 0 END,
                   read_again_at = CASE WHEN %(again)s THEN now() + %(pauses)s[least(read_failures + 1, %(n)s)] END
               WHERE id = %(id)s RETURNING o.shop_id, o.work_requested_at > o.work_started_at AS dirty""",
            {"error": error, "again": read_again, "pauses": orders.READ_AGAIN, "n": len(orders.READ_AGAIN),
             "id": order_id}).fetchone()
        if done is None:
            return False   # gone meanwhile (the shop's data erased on Shopify's request)
        if error:
            # The code is what the merchant reads (in their language); the detail is for support.
            timeline.add(conn, done["shop_id"], order_id, None, "read_error", {"error": error, "detail": detail})
    return bool(done["dirty"])
