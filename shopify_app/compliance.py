"""Shopify's mandatory privacy webhooks, checked before they act (HMAC covers the body only; the
shop, topic and time are headers anyone who saw one signed body could change):

- the payload's shop must be the header's shop;
- a destructive request (customers/redact, shop/redact) must be dated and at most a day old;
- shop/redact deletes only a shop uninstalled at least 48 hours ago (Shopify sends it then).

A request that fails a check is held (kept, not acted on) for someone to review. Redaction
really deletes, everywhere a customer's details could be; a data request is answered with an
export the merchant downloads in Settings."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from psycopg.types.json import Jsonb

from . import db
from .accounting.payday import customers as payday_customers

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(days=1)
REDACT_AFTER_UNINSTALL = timedelta(hours=48)
HIDDEN = "[…]"
# What a customer's details look like inside an error text (Payday's messages may quote what was
# sent): e-mail addresses and kennitölur, with or without the hyphen. Names and phone numbers are
# removed by their values.
PERSONAL_PATTERNS = (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)"))
# The JSON keys whose values are free text from elsewhere (errors), as opposed to our own codes,
# amounts and dates.
FREE_TEXT_KEYS = ("error", "detail", "message")


class Held(Exception):
    """The request failed a check: kept for review, not carried out."""


def check(event: dict, *, destructive: bool) -> None:
    """Raise Held unless the event may act on the shop its headers name."""
    payload = event["payload"] or {}
    named = payload.get("shop_domain") or payload.get("myshopify_domain")
    if named != event["shop_domain"]:
        raise Held(f"the payload names {named!r}, the headers {event['shop_domain']!r}")
    if destructive:
        sent = event["triggered_at"]
        if sent is None:
            raise Held("no X-Shopify-Triggered-At: the request cannot be dated")
        if sent < datetime.now(timezone.utc) - STALE_AFTER:
            raise Held(f"triggered at {sent.isoformat()}, more than a day ago: a replay, not Shopify")


def _order_ids(payload: dict, key: str) -> list[int]:
    return [int(i) for i in payload.get(key) or [] if str(i).isdigit()]


def _customer_id(payload: dict) -> int | None:
    value = (payload.get("customer") or {}).get("id")
    return int(value) if value is not None and str(value).isdigit() else None


def _customer_values(payload: dict) -> list[str]:
    customer = payload.get("customer") or {}
    return [v.strip() for v in (customer.get("email"), customer.get("phone")) if isinstance(v, str) and v.strip()]


def _record(conn, event: dict, orders: list[int], completed: bool, export: dict | None = None) -> None:
    payload = event["payload"]
    conn.execute(
        """INSERT INTO compliance_requests (shop_domain, topic, customer_id, orders, request_id, completed_at, export)
           VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, %s)""",
        (event["shop_domain"], event["topic"], _customer_id(payload), orders,
         str((payload.get("data_request") or {}).get("id") or "") or None, completed,
         Jsonb(export) if export is not None else None),
    )


def _forget_payload(conn, event: dict) -> None:
    # The request itself names the customer (e-mail, phone): keep the row, drop the data.
    conn.execute("UPDATE webhook_events SET payload = %s WHERE id = %s",
                 (Jsonb({"redacted": True}), event["id"]))


def _customer_orders(conn, shop_domain: str, orders: list[int], customer: int | None, emails: list[str]) -> list[dict]:
    """Our rows of the customer's orders: those Shopify lists, and those with the customer's id
    or e-mail (the pipeline stores both for orders with a case)."""
    return conn.execute(
        """SELECT o.* FROM orders o JOIN shops s ON s.id = o.shop_id
           WHERE s.domain = %s AND (o.legacy_id = ANY(%s) OR o.customer_id = %s
                                    OR lower(o.customer_email) = ANY(%s))""",
        (shop_domain, orders, customer, [e.lower() for e in emails])).fetchall()


# --- customers/data_request ---------------------------------------------------------------------

def record_data_request(event: dict) -> None:
    """Answer the request: an export of everything Skilvís holds on the customer, which the
    merchant downloads in Settings and passes on."""
    check(event, destructive=False)
    payload = event["payload"]
    orders = _order_ids(payload, "orders_requested")
    with db.transaction() as conn:
        found = _customer_orders(conn, event["shop_domain"], orders, _customer_id(payload), _customer_values(payload))
        _record(conn, event, orders, completed=True, export=_export(conn, found))
        _forget_payload(conn, event)


def _export(conn, orders: list[dict]) -> dict:
    out = []
    for order in orders:
        docs = conn.execute(
            """SELECT reference, trigger, total, currency, accounting_number, status, customer_by, created_at
               FROM documents WHERE order_id = %s ORDER BY id""", (order["id"],)).fetchall()
        cases = conn.execute("SELECT label, kind, status, amount, updated_at FROM cases WHERE order_id = %s ORDER BY id",
                             (order["id"],)).fetchall()
        out.append({
            "order": order["name"] or str(order["legacy_id"]), "shopify_order_id": order["legacy_id"],
            "customer_name": order["customer_name"], "customer_email": order["customer_email"],
            "returns_and_refunds": [_plain(c) for c in cases],
            "credit_invoices": [_plain(d) for d in docs],
        })
    return {"generated_at": datetime.now(timezone.utc).isoformat(), "orders": out,
            "note": "The credit invoices themselves, with the customer's details, are in the merchant's "
                    "accounting system (Payday)."}


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if v is not None and not isinstance(v, (str, int))
                else v) for k, v in row.items()}


def data_requests(shop_domain: str) -> list[dict]:
    """The answered data requests of a shop, newest first, for Settings."""
    with db.transaction() as conn:
        return conn.execute(
            """SELECT id, received_at, completed_at, orders, export IS NOT NULL AS ready FROM compliance_requests
               WHERE shop_domain = %s AND topic = 'customers/data_request' ORDER BY id DESC LIMIT 20""",
            (shop_domain,)).fetchall()


def data_request_export(shop_domain: str, request_id: int) -> dict | None:
    with db.transaction() as conn:
        row = conn.execute("""SELECT export FROM compliance_requests WHERE id = %s AND shop_domain = %s
                              AND topic = 'customers/data_request'""", (request_id, shop_domain)).fetchone()
    return row["export"] if row else None


# --- customers/redact -------------------------------------------------------------------------------

def redact_customer(event: dict) -> None:
    """Delete the customer's details from every table: our order rows (never written back), the
    texts that could quote them (Payday's errors on documents, case reasons and the timeline),
    stored webhooks about the customer or their orders, rejected bodies, earlier exports."""
    check(event, destructive=True)
    payload = event["payload"]
    orders = _order_ids(payload, "orders_to_redact")
    customer = _customer_id(payload)
    values = _customer_values(payload)
    shop = event["shop_domain"]
    with db.transaction() as conn:
        found = _customer_orders(conn, shop, orders, customer, [v for v in values if "@" in v])
        values += [v for o in found for v in (o["customer_name"], o["customer_email"]) if v]
        order_ids = [o["id"] for o in found]
        conn.execute("""UPDATE orders SET customer_name = NULL, customer_email = NULL, customer_id = NULL,
                               redacted_at = now() WHERE id = ANY(%s)""", (order_ids,))
        for table, column in (("documents", "last_error"), ("documents", "note"), ("cases", "reason"),
                              ("timeline", "detail")):
            for row in conn.execute(f"SELECT id, {column} AS v FROM {table} WHERE order_id = ANY(%s)",
                                    (order_ids,)).fetchall():
                clean = scrub(row["v"], values, free_text=table == "documents")
                if clean != row["v"]:
                    conn.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s",
                                 (Jsonb(clean) if isinstance(clean, (dict, list)) else clean, row["id"]))
        order_texts = [str(o) for o in set(orders) | {o["legacy_id"] for o in found}]
        conn.execute(
            """DELETE FROM webhook_events
               WHERE shop_domain = %(shop)s AND id <> %(event)s AND (
                     payload->>'order_id' = ANY(%(orders)s)
                  OR (topic LIKE 'orders/%%' AND payload->>'id' = ANY(%(orders)s))
                  OR payload->'order'->>'id' = ANY(%(orders)s)
                  OR payload->'customer'->>'id' = %(customer)s
                  OR (raw_body IS NOT NULL AND EXISTS (
                        SELECT 1 FROM unnest(%(needles)s::text[]) n
                        WHERE position(convert_to(n, 'UTF8') IN raw_body) > 0)))""",
            {"shop": shop, "event": event["id"], "orders": order_texts,
             "customer": str(customer) if customer is not None else None,
             "needles": order_texts + values + ([str(customer)] if customer is not None else [])})
        shop_row = conn.execute("SELECT id FROM shops WHERE domain = %s", (shop,)).fetchone()
        if shop_row:   # the Payday customer remembered for this buyer (accounting/payday/customers.py)
            hashes = [payday_customers.key(shop_row["id"], {"email": v}) for v in values if "@" in v]
            conn.execute("""DELETE FROM payday_customers WHERE shop_id = %s
                            AND (shopify_customer_id = %s OR key_hash = ANY(%s))""", (shop_row["id"], customer, hashes))
        conn.execute("""UPDATE compliance_requests SET export = NULL
                        WHERE shop_domain = %s AND topic = 'customers/data_request'
                          AND (customer_id = %s OR orders && %s::bigint[])""", (shop, customer, orders))
        _record(conn, event, orders, completed=True)
        _forget_payload(conn, event)


def scrub(value, secrets: list[str], free_text: bool = True):
    """`value` with every given personal value replaced, and in free texts (an error, whole or
    under FREE_TEXT_KEYS of a JSON) anything shaped like an e-mail or a kennitala too."""
    if isinstance(value, dict):
        return {k: scrub(v, secrets, k in FREE_TEXT_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets, free_text) for v in value]
    if not isinstance(value, str):
        return value
    for secret in sorted(set(secrets), key=len, reverse=True):
        value = re.sub(re.escape(secret), HIDDEN, value, flags=re.IGNORECASE)
    if free_text:
        for pattern in PERSONAL_PATTERNS:
            value = pattern.sub(HIDDEN, value)
    return value


# --- shop/redact ----------------------------------------------------------------------------------

def redact_shop(event: dict) -> None:
    """48 h after uninstall: delete the shop and everything stored for it (cascades). A shop that
    is installed, or uninstalled more recently, is kept: the request is held for review."""
    check(event, destructive=True)
    shop = event["shop_domain"]
    with db.transaction() as conn:
        row = conn.execute("SELECT uninstalled_at FROM shops WHERE domain = %s FOR UPDATE", (shop,)).fetchone()
        if row is not None:
            if row["uninstalled_at"] is None:
                raise Held("shop/redact for a shop that is installed")
            if row["uninstalled_at"] > datetime.now(timezone.utc) - REDACT_AFTER_UNINSTALL:
                raise Held(f"shop/redact only {datetime.now(timezone.utc) - row['uninstalled_at']} after the uninstall")
        conn.execute("DELETE FROM shops WHERE domain = %s", (shop,))
        conn.execute("DELETE FROM webhook_events WHERE shop_domain = %s AND id <> %s", (shop, event["id"]))
        conn.execute("DELETE FROM compliance_requests WHERE shop_domain = %s", (shop,))
        _record(conn, event, [], completed=True)
        _forget_payload(conn, event)
