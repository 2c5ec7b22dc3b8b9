"""Webhook intake: verify, store, answer. Nothing else happens inside the request.

Shopify wants a 2xx within 5 seconds and redelivers otherwise. The stored row is the work
request: the dispatcher (dispatch.py) turns received rows into work, so no Redis call is on the
request path and nothing acknowledged depends on the queue. The row is one INSERT committed on
its own (autocommit, synchronous_commit on): durable on disk before the 200 goes out, which is
the one promise an acknowledged webhook needs, at one round trip to Postgres.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime

from flask import Blueprint, current_app, jsonify, request
from psycopg.types.json import Jsonb

from . import db, retention, shops

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Classic header names, then the newer un-prefixed ones; Flask looks headers up case-insensitively.
HEADERS = {
    "hmac": ("X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256"),
    "topic": ("X-Shopify-Topic", "Shopify-Topic"),
    "shop": ("X-Shopify-Shop-Domain", "Shopify-Shop-Domain"),
    "api_version": ("X-Shopify-API-Version", "Shopify-API-Version"),
    "webhook_id": ("X-Shopify-Webhook-Id", "Shopify-Webhook-Id"),
    "event_id": ("X-Shopify-Event-Id", "Shopify-Event-Id"),
    "triggered_at": ("X-Shopify-Triggered-At", "Shopify-Triggered-At"),
}
REQUIRED = ("topic", "shop", "api_version", "webhook_id")


def _header(name: str) -> str | None:
    for key in HEADERS[name]:
        value = request.headers.get(key)
        if value:
            return value
    return None


def sign(body: bytes, secret: str) -> str:
    """Shopify's webhook signature: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, signature: str | None, secrets: tuple[str, ...]) -> bool:
    if not signature:
        return False
    given = signature.encode()
    # Every secret is compared (no early exit), each in constant time.
    results = [hmac.compare_digest(sign(body, s).encode(), given) for s in secrets]
    return any(results)


@bp.post("/webhooks")
@bp.post("/webhooks/compliance")
def receive():
    body = request.get_data(cache=False)
    if not verify(body, _header("hmac"), current_app.config["SETTINGS"].webhook_secrets):
        return jsonify(error="invalid HMAC"), 401

    headers = {name: _header(name) for name in HEADERS if name != "hmac"}
    missing = [HEADERS[n][0] for n in REQUIRED if not headers[n]]
    shop = shops.valid_shop_domain(headers["shop"])
    # The duplicate key: the topic and Shopify's event id, the same on every redelivery of one
    # event; one change can be several topics' event (a refund's refunds/create and its
    # transaction's order_transactions/create), and each topic is work of its own.
    event_key = (f"{headers['topic'] or ''}:"
                 + (headers["event_id"] or headers["webhook_id"] or "sha256-" + hashlib.sha256(body).hexdigest()))

    error, payload = None, None
    if missing:
        error = "missing headers: " + ", ".join(missing)
    elif not shop:
        error = f"invalid shop domain: {headers['shop']!r}"
    elif (headers["topic"] in retention.COMPLIANCE_TOPICS) != (request.path == "/webhooks/compliance"):
        # Each kind has its own address (shopify.app.toml): a privacy topic sent to /webhooks,
        # or an order topic to the compliance address, is not Shopify's doing.
        error = f"topic {headers['topic']!r} is not taken at {request.path}"
    else:
        try:
            if b"\\u0000" in body:   # Postgres's JSON cannot hold a NUL, and no payload of Shopify's has one
                raise ValueError("a NUL character")
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("the payload is not a JSON object")
        except ValueError as exc:
            error = f"the body is not valid JSON: {exc}"

    row = {
        "shop": shop or (headers["shop"] or "")[:255], "key": event_key, "webhook_id": headers["webhook_id"],
        "topic": (headers["topic"] or "")[:100], "api_version": (headers["api_version"] or "")[:20],
        "triggered_at": _timestamp(headers["triggered_at"]),
        # Only what the pipeline needs of the payload (ids), never the customer's details.
        "payload": Jsonb(retention.needed(headers["topic"], payload)) if payload is not None else None,
        "raw": body[:retention.REJECTED_BODY_BYTES] if error else None,
        "status": "rejected" if error else "received", "error": error,
    }
    event_id = _store(row)
    if error:
        log.warning("rejected webhook %s from %s: %s", headers["topic"], headers["shop"], error)
        return jsonify(error=error), 400
    if event_id is None:
        return jsonify(status="duplicate"), 200
    return jsonify(status="received"), 200


def _timestamp(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _store(row: dict) -> int | None:
    """Insert the event; None when this (shop, event) is already stored."""
    found = db.one_statement(
        """INSERT INTO webhook_events (shop_domain, event_key, webhook_id, topic, api_version,
                                       triggered_at, payload, raw_body, status, error)
           VALUES (%(shop)s, %(key)s, %(webhook_id)s, %(topic)s, %(api_version)s,
                   %(triggered_at)s, %(payload)s, %(raw)s, %(status)s, %(error)s)
           ON CONFLICT (shop_domain, event_key) DO NOTHING
           RETURNING id""",
        row)
    return found["id"] if found else None
