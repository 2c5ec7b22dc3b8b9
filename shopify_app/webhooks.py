"""Webhook intake: verify, store, answer. Nothing else happens inside the request.

Shopify wants a 2xx within 5 seconds and redelivers otherwise. The stored row is the work
request: the dispatcher (dispatch.py) turns received rows into work, so no Redis call is on the
request path and nothing acknowledged depends on the queue. The row is one INSERT committed on
its own (autocommit, synchronous_commit on): durable on disk before the 200 goes out, which is
the one promise an acknowledged webhook needs, at one round trip to Postgres.

The two addresses are answered by a plain WSGI handler in front of Flask (`Intake`): a request
context, a session, the locale and a JSON response object cost the intake twice its own work
(bench/intake.py), and a webhook needs none of them. It keeps every promise the Flask side's
security.py makes of a request: 413 before a body over the limit is read (chunked bodies
included), a NUL is a 400, and the same headers on every answer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime

from psycopg.types.json import Jsonb
from werkzeug.wsgi import get_content_length, get_input_stream

from . import db, retention, security, shops
from .security import read_chunked

log = logging.getLogger(__name__)

PATHS = ("/webhooks", "/webhooks/compliance")
# Classic header names, then the newer un-prefixed ones.
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
_ENVIRON_KEYS = {name: tuple("HTTP_" + h.upper().replace("-", "_") for h in names) for name, names in HEADERS.items()}
REASONS = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 405: "METHOD NOT ALLOWED",
           413: "REQUEST ENTITY TOO LARGE", 500: "INTERNAL SERVER ERROR"}


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


class Intake:
    """WSGI middleware: the webhook addresses here, everything else to `app`."""

    def __init__(self, app, settings):
        self.app, self.settings = app, settings

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path not in PATHS:
            return self.app(environ, start_response)
        extra = []
        if environ.get("REQUEST_METHOD") != "POST":
            status, answer = 405, {"error": "webhooks are POSTed"}
            extra.append(("Allow", "POST"))
        else:
            try:
                status, answer = receive(path, environ, self.settings)
            except Exception:   # Shopify redelivers on a 5xx: nothing is lost, but it is ours to see
                log.exception("webhook intake failed")
                status, answer = 500, {"error": "the webhook could not be stored; Shopify will deliver it again"}
        body = json.dumps(answer).encode()
        start_response(f"{status} {REASONS[status]}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            *extra, *security.response_headers(self.settings, shop=None)])
        return [body]


def receive(path: str, environ, settings) -> tuple[int, dict]:
    body = _body(environ, settings.webhook_max_bytes)
    if body is None:
        return 413, {"error": f"a webhook body is at most {settings.webhook_max_bytes} bytes"}
    if not verify(body, _header(environ, "hmac"), settings.webhook_secrets):
        return 401, {"error": "invalid HMAC"}

    headers = {name: _header(environ, name) for name in HEADERS if name != "hmac"}
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
    elif (headers["topic"] in retention.COMPLIANCE_TOPICS) != (path == "/webhooks/compliance"):
        # Each kind has its own address (shopify.app.toml): a privacy topic sent to /webhooks,
        # or an order topic to the compliance address, is not Shopify's doing.
        error = f"topic {headers['topic']!r} is not taken at {path}"
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
        return 400, {"error": error}
    if event_id is None:
        return 200, {"status": "duplicate"}
    return 200, {"status": "received"}


def _body(environ, limit: int) -> bytes | None:
    """The body, or None when it is over `limit`: by its Content-Length before a byte is read; a
    chunked one (no Content-Length, the server ends the stream) as soon as it passes the limit."""
    length = get_content_length(environ)
    if length is None:
        return read_chunked(environ["wsgi.input"], limit) if "wsgi.input_terminated" in environ else b""
    return None if length > limit else get_input_stream(environ).read()


def _header(environ, name: str) -> str | None:
    for key in _ENVIRON_KEYS[name]:
        value = environ.get(key)
        if value:
            return value
    return None


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
