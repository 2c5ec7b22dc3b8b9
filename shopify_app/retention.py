"""What Skilvís keeps of a webhook, and for how long (docs/SECURITY.md).

A webhook is a trigger: the pipeline re-reads the order from Shopify, so a stored event keeps
only the ids its handler needs, never the addresses, phone numbers or card holders that a
payload carries. Privacy requests keep the customer's e-mail and phone only until they are
carried out (compliance.py then drops them). Events are deleted after a retention period."""
from __future__ import annotations

import os

from . import db

COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})

_ORDER_IDS = ("id", "order_id", "order.id", "admin_graphql_api_id")
# Per topic, the dotted paths kept (a list is kept whole when its path is named).
NEEDED = {
    **{topic: _ORDER_IDS for topic in (
        "returns/request", "returns/approve", "returns/decline", "returns/cancel", "returns/close",
        "returns/reopen", "returns/process", "returns/update", "order_transactions/create")},
    # Which return a refund belongs to: one inside an open return changes nothing till the close.
    "refunds/create": (*_ORDER_IDS, "return.admin_graphql_api_id"),
    "orders/updated": ("id", "admin_graphql_api_id", "updated_at"),
    "app/uninstalled": ("id", "myshopify_domain"),
    "app/scopes_update": ("id", "previous", "current", "updated_at"),
    "customers/redact": ("shop_id", "shop_domain", "customer.id", "customer.email", "customer.phone",
                         "orders_to_redact"),
    "customers/data_request": ("shop_id", "shop_domain", "customer.id", "customer.email", "customer.phone",
                               "orders_requested", "data_request.id"),
    "shop/redact": ("shop_id", "shop_domain"),
}
# A body refused at intake (bad JSON, wrong address) is kept this far, to see what went wrong.
REJECTED_BODY_BYTES = 2048
DEFAULT_DAYS = 30


def needed(topic: str | None, payload: dict) -> dict:
    """The part of `payload` the topic's handler uses; an unknown topic keeps nothing."""
    kept: dict = {}
    for path in NEEDED.get(topic or "", ()):
        value, found = payload, True
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                found = False
                break
            value = value[key]
        if not found:
            continue
        target = kept
        keys = path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return kept


def days() -> int:
    """How long events are kept (SKILVIS_WEBHOOK_RETENTION_DAYS, 30 by default)."""
    try:
        return max(1, int(os.environ.get("SKILVIS_WEBHOOK_RETENTION_DAYS") or DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS


def purge() -> int:
    """Periodic: delete processed and rejected events, and answered data requests' exports, older
    than the retention period. Events held for review stay until someone has looked."""
    with db.transaction() as conn:
        gone = conn.execute(
            """DELETE FROM webhook_events WHERE status IN ('processed', 'rejected')
                  AND received_at < now() - make_interval(days => %s)""", (days(),)).rowcount
        conn.execute("""UPDATE compliance_requests SET export = NULL
                        WHERE export IS NOT NULL AND completed_at < now() - make_interval(days => %s)""", (days(),))
    return gone
