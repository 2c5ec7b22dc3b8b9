"""Shopify's mandatory privacy webhooks. Redaction really deletes; a data request is recorded
for the merchant to answer (what we hold is listed by `customer_data`)."""
from __future__ import annotations

from psycopg.types.json import Jsonb

from . import db


def _order_ids(payload: dict, key: str) -> list[int]:
    return [int(i) for i in payload.get(key) or [] if str(i).isdigit()]


def _customer_id(payload: dict) -> int | None:
    value = (payload.get("customer") or {}).get("id")
    return int(value) if value is not None and str(value).isdigit() else None


def _customer_email(payload: dict) -> str | None:
    value = (payload.get("customer") or {}).get("email")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _record(conn, event: dict, orders: list[int], completed: bool) -> None:
    payload = event["payload"]
    conn.execute(
        """INSERT INTO compliance_requests (shop_domain, topic, customer_id, orders, request_id, completed_at)
           VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)""",
        (event["shop_domain"], event["topic"], _customer_id(payload), orders,
         str((payload.get("data_request") or {}).get("id") or "") or None, completed),
    )


def _forget_payload(conn, event: dict) -> None:
    # The request itself names the customer (e-mail, phone): keep the row, drop the data.
    conn.execute("UPDATE webhook_events SET payload = %s WHERE id = %s",
                 (Jsonb({"redacted": True}), event["id"]))


def record_data_request(event: dict) -> None:
    with db.transaction() as conn:
        _record(conn, event, _order_ids(event["payload"], "orders_requested"), completed=False)


def redact_customer(event: dict) -> None:
    """Delete every stored webhook about the customer's orders or the customer."""
    payload = event["payload"]
    orders = _order_ids(payload, "orders_to_redact")
    customer = _customer_id(payload)
    order_texts = [str(o) for o in orders]
    with db.transaction() as conn:
        conn.execute(
            """DELETE FROM webhook_events
               WHERE shop_domain = %(shop)s AND id <> %(event)s AND (
                     payload->>'order_id' = ANY(%(orders)s)
                  OR (topic LIKE 'orders/%%' AND payload->>'id' = ANY(%(orders)s))
                  OR payload->'order'->>'id' = ANY(%(orders)s)
                  OR payload->'customer'->>'id' = %(customer)s)""",
            {"shop": event["shop_domain"], "event": event["id"], "orders": order_texts,
             "customer": str(customer) if customer is not None else None},
        )
        for delete in CUSTOMER_REDACTORS:
            delete(conn, event["shop_domain"], orders, customer, _customer_email(payload))
        _record(conn, event, orders, completed=True)
        _forget_payload(conn, event)


def redact_shop(event: dict) -> None:
    """48 h after uninstall: delete the shop and everything stored for it (cascades)."""
    shop = event["shop_domain"]
    with db.transaction() as conn:
        conn.execute("DELETE FROM shops WHERE domain = %s", (shop,))
        conn.execute("DELETE FROM webhook_events WHERE shop_domain = %s AND id <> %s", (shop, event["id"]))
        conn.execute("DELETE FROM compliance_requests WHERE shop_domain = %s", (shop,))
        _record(conn, event, [], completed=True)
        _forget_payload(conn, event)


def _forget_order_customers(conn, shop_domain: str, orders: list[int], customer: int | None,
                            email: str | None) -> None:
    """Our order rows keep the customer's name and e-mail only to show them; the credit invoices
    themselves live in Payday, the merchant's books. The rows are found by the orders Shopify
    lists and by the e-mail (what the pipeline stores; customer_id is kept for rows that have one)."""
    conn.execute(
        """UPDATE orders SET customer_name = NULL, customer_email = NULL, customer_id = NULL
           WHERE shop_id = (SELECT id FROM shops WHERE domain = %s)
             AND (legacy_id = ANY(%s) OR customer_id = %s OR lower(customer_email) = lower(%s))""",
        (shop_domain, orders, customer, email))


# Tables that hold a customer's data, each with its delete:
# fn(conn, shop, orders, customer id, customer e-mail).
CUSTOMER_REDACTORS = [_forget_order_customers]
