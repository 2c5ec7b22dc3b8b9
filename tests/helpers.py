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
