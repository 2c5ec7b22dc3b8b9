"""Small builders shared by the tests."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from shopify_app.webhooks import sign

SHOP = "skilvis-test.myshopify.com"
OTHER_SHOP = "another-shop.myshopify.com"


def webhook_headers(body: bytes, secret: str, *, topic="returns/close", shop=SHOP, event_id=None,
                    webhook_id=None, api_version="2026-10") -> dict:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


def body_of(payload) -> bytes:
    return json.dumps(payload).encode()


def an_order_with_many_of_everything(store, order: dict):
    """D6's large order: 60 products, a return of 30 lines and a refund of those 30 lines, then
    35 more refunds (each with its own payment)."""
    lines = [{"sku": f"VARA-{n}", "title": f"Vara {n}", "price": "1000", "quantity": 2, "tax_rate": "24"}
             for n in range(60)]
    o = store.create_order(SHOP, {**order, "lines": lines})
    back = [{"sku": f"VARA-{n}", "quantity": 1} for n in range(30)]
    store.apply(o, {"do": "return_open", "return": "R1", "lines": back})
    store.apply(o, {"do": "refund", "return": "R1", "lines": back})
    for n in range(35):
        store.apply(o, {"do": "refund", "lines": [{"sku": f"VARA-{30 + n % 30}", "quantity": 1}]})
    return o
