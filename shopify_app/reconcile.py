"""Reconciliation: Shopify retries a webhook 8 times over 4 hours and then gives up, so a
periodic pass asks Shopify which orders changed since the last pass and feeds each one to the
same handler as the webhooks (orders.request_work → pipeline)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from . import bulk, config, db, jobqueue, orders, shop_settings, shops
from .shopify_admin import AdminClient, ShopifyAuthError, ShopifyError, ShopifyRefused, ShopifyUnavailable

log = logging.getLogger(__name__)

CHANGED_ORDERS_QUERY = """
query SkilvisChangedOrders($query: String!, $after: String) {
  orders(first: 100, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes { id legacyResourceId updatedAt }
  }
}
"""
OVERLAP = timedelta(minutes=5)      # clocks and Shopify's indexing lag: look a little back
FIRST_LOOKBACK = timedelta(days=1)  # a new shop: yesterday onwards (older history is by request)


def reconcile_shop(shop_id: int, admin: AdminClient | None = None, since: datetime | None = None,
                   skip_without_token: bool = True) -> int:
    """One pass for one shop, over the orders changed since the last pass (or since `since`);
    returns how many orders were asked for work. Without a valid token the pass is skipped (the
    next one covers it), unless the caller must know it did not happen."""
    admin = admin or AdminClient(config.load())
    with db.transaction() as conn:
        shop = conn.execute("SELECT * FROM shops WHERE id = %s", (shop_id,)).fetchone()
    if not shops.is_installed(shop):
        return 0
    now = datetime.now(timezone.utc)
    since = (since or shop["reconciled_until"] or now - FIRST_LOOKBACK) - OVERLAP
    requested, newest = [], shop["reconciled_until"]
    try:
        for node in search_orders(admin, shop["domain"], f"{_updated_since(since)} test:false"):
            updated = datetime.fromisoformat(node["updatedAt"])
            newest = max(newest or updated, updated)
            order_id = _request_if_newer(shop_id, int(node["legacyResourceId"]), updated)
            if order_id:
                requested.append(order_id)
    except ShopifyAuthError:
        if not skip_without_token:
            raise
        log.info("reconciliation skipped %s: no valid token", shop["domain"])
        return 0
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET reconciled_until = %s WHERE id = %s", (newest or now, shop_id))
    return len(requested)


def _updated_since(moment: datetime) -> str:
    return f"updated_at:>='{moment.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}'"


def search_orders(admin: AdminClient, shop: str, search: str):
    """Every order Shopify's search finds, page by page (ids and update times only)."""
    after = None
    while True:
        page = admin.graphql(shop, CHANGED_ORDERS_QUERY, {"query": search, "after": after})["orders"]
        yield from page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


def _request_if_newer(shop_id: int, legacy_id: int, updated: datetime, history: bool = False) -> int | None:
    """Ask for work only when Shopify changed the order after our last pass over it began."""
    with db.transaction() as conn:
        row = conn.execute("SELECT id, work_started_at FROM orders WHERE shop_id = %s AND legacy_id = %s",
                           (shop_id, legacy_id)).fetchone()
        # Shopify's updatedAt has whole seconds: a pass that began within that second may
        # have read the order just before the change, so only a later second counts as seen.
        if row and row["work_started_at"] and row["work_started_at"] >= updated + timedelta(seconds=1):
            return None
        return orders.request_work(shop_id, legacy_id, conn, history)


def ask_running_history_reads() -> int:
    """Periodic (every minute): the history reads waiting for Shopify's bulk operation look again."""
    with db.transaction() as conn:
        waiting = conn.execute(
            """SELECT s.shop_id, s.backfill_from FROM shop_settings s JOIN shops ON shops.id = s.shop_id
               WHERE s.backfill_done_at IS NULL AND s.backfill_error = 'history_bulk_running'
                 AND shops.uninstalled_at IS NULL""").fetchall()
    for row in waiting:
        enqueue_backfill(row["shop_id"], row["backfill_from"])
    return len(waiting)


def reconcile_all() -> int:
    """Periodic: one reconciliation job per installed shop, and the history reads asked for and
    not finished (a job lost or failed is asked again from Postgres)."""
    with db.transaction() as conn:
        ids = [r["id"] for r in conn.execute(
            "SELECT id FROM shops WHERE uninstalled_at IS NULL AND access_token_enc IS NOT NULL")]
        unfinished = conn.execute(
            """SELECT s.shop_id, s.backfill_from FROM shop_settings s JOIN shops ON shops.id = s.shop_id
               WHERE s.backfill_asked_at IS NOT NULL AND s.backfill_done_at IS NULL
                 AND shops.uninstalled_at IS NULL""").fetchall()
    for shop_id in ids:
        jobqueue.enqueue_once(reconcile_shop, shop_id, job_key=jobqueue.job_id("reconcile", shop_id))
    for row in unfinished:
        enqueue_backfill(row["shop_id"], row["backfill_from"])
    return len(ids)


# The history read looks only at orders with a return or a refund, test orders left out: each
# search is one of Shopify's order filters (shopify.md, "What a real shop adds").
HISTORY_SEARCHES = ("-return_status:no_return", "financial_status:partially_refunded", "financial_status:refunded")
# Longer windows are read by one bulk operation, which has no per-query budget to share with
# live invoicing (https://shopify.dev/docs/api/usage/bulk-operations/queries).
BULK_AFTER = timedelta(days=31)


def backfill(shop_id: int, admin: AdminClient | None = None) -> int:
    """History on request: the merchant moved the start of invoicing back. Every order we left
    out as before the start is passed over again, and the orders with a return or a refund that
    Shopify changed since the new start are read (older orders we have never seen among them),
    each on the history queue, behind live work."""
    with db.transaction() as conn:
        asked = conn.execute("SELECT backfill_asked_at FROM shop_settings WHERE shop_id = %s",
                             (shop_id,)).fetchone()
    start = shop_settings.load(shop_id).invoices_from
    try:
        count = _read_history(shop_id, start, admin)
        count += orders.ask_again_where(shop_id, ("before_start",), history=True)
    except bulk.BulkPending as exc:   # Shopify is still reading: the periodic pass asks again
        log.info("history read of shop %s waits: %s", shop_id, exc)
        _finish_backfill(shop_id, asked, error="history_bulk_running")
        return 0
    except Exception as exc:
        _finish_backfill(shop_id, asked, error=_backfill_error(exc))
        raise
    _finish_backfill(shop_id, asked, count=count)
    return count


def _read_history(shop_id: int, start: datetime, admin: AdminClient | None) -> int:
    admin = admin or AdminClient(config.load(), reserve=0.5)
    with db.transaction() as conn:
        shop = conn.execute("SELECT * FROM shops WHERE id = %s", (shop_id,)).fetchone()
    if not shops.is_installed(shop):
        raise ShopifyAuthError(f"{shop['domain'] if shop else shop_id} has no access token")
    since = _updated_since(start - OVERLAP)
    if datetime.now(timezone.utc) - start > BULK_AFTER:
        found = bulk.orders_with_returns_or_refunds(admin, shop["domain"], f"{since} test:false")
    else:
        found = {int(node["legacyResourceId"]): datetime.fromisoformat(node["updatedAt"])
                 for search in HISTORY_SEARCHES
                 for node in search_orders(admin, shop["domain"], f"{since} test:false {search}")}
    requested = [order_id for legacy_id, updated in sorted(found.items())
                 if (order_id := _request_if_newer(shop_id, legacy_id, updated, history=True))]
    return len(requested)


def _backfill_error(exc: Exception) -> str:
    """A reason code the settings page says in the merchant's language, or the error itself."""
    if isinstance(exc, ShopifyAuthError):
        return "shopify_auth"
    if isinstance(exc, ShopifyRefused):
        return exc.code
    if isinstance(exc, (ShopifyUnavailable, ShopifyError)):
        return "shopify_unavailable"
    return str(exc)[:500] or type(exc).__name__


def _finish_backfill(shop_id: int, asked: dict | None, *, count: int | None = None, error: str | None = None):
    """Done (with the count) or not yet (with why). Only the read asked last is finished by its
    job: an earlier date asked meanwhile has a job of its own."""
    if not asked or asked["backfill_asked_at"] is None:
        return
    with db.transaction() as conn:
        conn.execute("""UPDATE shop_settings SET backfill_done_at = CASE WHEN %(error)s::text IS NULL THEN now() END,
                                                 backfill_orders = %(count)s, backfill_error = %(error)s
                        WHERE shop_id = %(shop_id)s AND backfill_asked_at = %(asked)s""",
                     {"count": count, "error": error, "shop_id": shop_id, "asked": asked["backfill_asked_at"]})


def record_backfill(conn, shop_id: int, start: datetime) -> None:
    """The request, in the transaction that moves the start back: a job lost after it is asked
    again by reconcile_all."""
    conn.execute("""UPDATE shop_settings SET backfill_from = %s, backfill_asked_at = clock_timestamp(),
                                             backfill_done_at = NULL, backfill_orders = NULL, backfill_error = NULL
                    WHERE shop_id = %s""", (start, shop_id))


def enqueue_backfill(shop_id: int, start: datetime):
    # One job per chosen date: moving the date back twice quickly reads back to the earlier one.
    return jobqueue.enqueue_once(backfill, shop_id, job_key=jobqueue.job_id("backfill", shop_id, int(start.timestamp())),
                                 job_timeout=3600, history=True)


def backfill_state(shop_id: int) -> dict | None:
    """The last history read for the settings page: None when none was asked."""
    with db.transaction() as conn:
        row = conn.execute("""SELECT backfill_from, backfill_asked_at, backfill_done_at, backfill_orders, backfill_error
                              FROM shop_settings WHERE shop_id = %s AND backfill_asked_at IS NOT NULL""",
                           (shop_id,)).fetchone()
    return dict(row) if row else None
