"""Documents: each credit invoice is claimed in Postgres under its unique key, then sent to Payday.

The order of effects is what makes a crash harmless:
  1. claim   INSERT ... ON CONFLICT DO NOTHING on (shop, doc_key): a second decision claims nothing;
  2. sending the row says a call is under way before the call is made (committed);
  3. call    POST /invoices;
  4. sent    Payday's invoice id recorded.
A worker killed between 3 and 4 leaves the row in `sending`; the next attempt first looks the
invoice up by its unique reference and records it instead of creating it again (Payday has no
idempotency key). Transient failures wait with growing pauses over hours, then fail visibly.
"""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import date, timedelta
from decimal import Decimal

from psycopg.types.json import Jsonb

from . import db, invoicing, orders, payday, shop_settings, stock, timeline
from .decision import Plan

log = logging.getLogger(__name__)

# Pauses between attempts: about 13 hours in all before a document is marked failed.
BACKOFF = [timedelta(minutes=m) for m in (1, 2, 5, 10, 30, 60, 120, 240, 360)]
MAX_ATTEMPTS = len(BACKOFF) + 1


def line_dict(line) -> dict:
    out = {"kind": line.kind, "description": line.description, "sku": line.sku, "quantity": line.quantity,
           "amount": str(line.amount), "vat_rate": str(line.vat_rate)}
    if line.source:
        out["source"] = line.source
    return out


def coverage(conn, order_id: int) -> dict[str, frozenset[str]]:
    """The documents already claimed for an order and the refunds each covers."""
    rows = conn.execute("SELECT doc_key, refund_gids FROM documents WHERE order_id = %s", (order_id,)).fetchall()
    return {r["doc_key"]: frozenset(r["refund_gids"]) for r in rows}


def reopened(conn, order_id: int) -> frozenset[str]:
    """The returns of the order that were open again after their invoice was made (R9): a case
    with a close's document whose status was last set to open."""
    rows = conn.execute("""SELECT c.case_gid FROM cases c WHERE c.order_id = %s AND c.status = 'open'
                             AND EXISTS (SELECT 1 FROM documents d WHERE d.case_id = c.id AND d.trigger = 'return_close')""",
                        (order_id,)).fetchall()
    return frozenset(r["case_gid"] for r in rows)


def claim(conn, *, shop_id: int, order: dict, plan: Plan, case_id: int | None, currency: str) -> int | None:
    """Claim the document under its key; None when it is already claimed (by anyone, ever)."""
    row = conn.execute(
        """INSERT INTO documents (shop_id, order_id, case_id, doc_key, trigger, return_gid, return_name, refund_gids,
                                  lines, total, currency, gateway, reference, status, document_date, paid_date, note,
                                  return_reason)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'claimed', %s, %s, %s, %s)
           ON CONFLICT (shop_id, doc_key) DO NOTHING RETURNING id""",
        (shop_id, order["id"], case_id, plan.key, plan.trigger, plan.return_id, plan.return_name,
         list(plan.refund_ids), Jsonb([line_dict(l) for l in plan.lines]), plan.total, currency, plan.gateway,
         _shop_mark(conn, shop_id) + invoicing.reference(order["name"], plan.key, plan.return_name, plan.corrects),
         invoicing.iceland_day(plan.dated), invoicing.iceland_day(plan.paid), plan.note, plan.reason),
    ).fetchone()
    if row:
        timeline.add(conn, shop_id, order["id"], case_id, "document_claimed",
                     {"doc_key": plan.key, "total": str(plan.total), "lines": len(plan.lines)})
    return row["id"] if row else None


def _shop_mark(conn, shop_id: int) -> str:
    """References must be unique in a Payday company, and two Shopify stores booking into one
    (a .is and a .com store, with the same API client) both have an order #1001 with a return R1:
    while another installed shop shares this shop's Payday client, its references begin with the
    shop's name (`verslun: #1001 / #1001-R1`)."""
    row = conn.execute(
        """SELECT s.domain, EXISTS (
               SELECT 1 FROM shop_settings o JOIN shops x ON x.id = o.shop_id
               WHERE o.payday_client_id = me.payday_client_id AND o.shop_id <> me.shop_id
                 AND x.uninstalled_at IS NULL) AS shared
           FROM shop_settings me JOIN shops s ON s.id = me.shop_id WHERE me.shop_id = %s""", (shop_id,)).fetchone()
    return f"{row['domain'].removesuffix('.myshopify.com')}: " if row and row["shared"] else ""


def client_for(settings: shop_settings.ShopSettings) -> payday.PaydayClient:
    return payday.PaydayClient(payday.base_url(settings.payday_environment), settings.payday_client_id, settings.payday_client_secret,
                               token_store=payday.PostgresTokenStore(settings.shop_id))


def due(order_id: int) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            """SELECT d.*, o.name AS order_name, o.customer_name, o.customer_email
               FROM documents d JOIN orders o ON o.id = d.order_id
               WHERE d.order_id = %s AND d.status IN ('claimed', 'sending') AND d.next_attempt_at <= now()
               ORDER BY d.id""",
            (order_id,),
        ).fetchall()


def send(doc: dict, client: payday.PaydayClient, settings: shop_settings.ShopSettings, customer: dict) -> str:
    """One attempt to get the document into Payday; returns its new status."""
    with db.transaction() as conn:
        attempt = conn.execute("UPDATE documents SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                               (doc["id"],)).fetchone()["attempts"]
    try:
        if doc["status"] == "sending":
            # The last attempt's outcome is unknown: the invoice may exist already. It is looked
            # for among the customer's own invoices, on its whole reference and total: Payday's
            # search may not search references at all (docs/PAYDAY_MODEL.md).
            sent_to = ((doc.get("request_body") or {}).get("customer") or {}).get("id")
            found = client.find_own_invoice(sent_to, doc["reference"], Decimal(doc["total"])) if sent_to else None
            if found:
                return _sent(doc, found, settings, looked_up=True)
        if customer.get("default_id"):   # the shop's cash customer is never e-mailed
            match = payday.CustomerMatch(customer["default_id"], "default", False)
        else:
            match = known_customer(doc["shop_id"], client, customer)
            if match is None:
                match = client.match_customer(**{k: v for k, v in customer.items() if k != "shopify_id"})
                remember_customer(doc["shop_id"], client, customer, match)
        customer_id, by = match.id, match.by
        number, dated = _original(client, doc, customer_id) if doc["trigger"] != "manual" else (None, None)
        body = invoicing.invoice_body(
            doc, order_name=doc["order_name"], customer_id=customer_id, today=invoicing.iceland_day(),
            payment_type=settings.payment_types.get(doc["gateway"] or ""),
            send_email=settings.send_email and match.has_email, original_number=number, original_date=dated,
            keeps_stock=settings.payday_keeps_stock)
        with db.transaction() as conn:
            conn.execute("""UPDATE documents SET status = 'sending', request_body = %s, customer_by = %s,
                                   original_number = %s, original_date = %s WHERE id = %s""",
                         (Jsonb(body), by, None if doc["trigger"] == "manual" else number or "", dated, doc["id"]))
            timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_call",
                         {"doc_key": doc["doc_key"], "attempt": attempt})
        try:
            invoice = client.create_invoice(body)
        except payday.PaydayValidationError:
            if body.get("status") != "PAID":
                raise
            invoice = _create_unpaid_then_pay(doc, client, body)
        return _sent(doc, invoice, settings)
    except payday.PaydayUnconfirmed as exc:
        return _give_up(doc, "unconfirmed", str(exc), attempt)
    except payday.PaydayTransient as exc:
        return _retry_later(doc, exc, attempt)
    except payday.PaydayAuthError as exc:
        return _give_up(doc, "auth", str(exc), attempt)
    except payday.PaydayValidationError as exc:
        return _give_up(doc, "validation", exc.message, attempt)


def _create_unpaid_then_pay(doc: dict, client, body: dict) -> dict:
    """Payday refused the credit invoice as PAID (whether it takes a paid invoice with a negative
    total is unconfirmed): it is created unpaid, and its payment registered once Payday has
    issued it (fetch_number), since Payday changes no status before that."""
    payment = {"paidDate": body.get("paidDate"), "paymentType": body.get("paymentType")}
    unpaid = {**{k: v for k, v in body.items() if k not in payment}, "status": "SENT"}
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET request_body = %s, pay_later = %s WHERE id = %s",
                     (Jsonb(unpaid), Jsonb(payment), doc["id"]))
    return client.create_invoice(unpaid)


# How many of the customer's newest pages of invoices the sale invoice is looked for in (C7): a
# nicety, so a bounded one.
ORIGINAL_PAGES = 2


def _original(client, doc: dict, customer_id: str | None) -> tuple[str | None, date | None]:
    """C7: the sale invoice this credits, its number and date: looked up once per order and
    customer (an earlier document's answer, found or not, is reused)."""
    with db.transaction() as conn:
        known = conn.execute(
            """SELECT original_number, original_date FROM documents
               WHERE order_id = %s AND id <> %s AND original_number IS NOT NULL
                 AND request_body->'customer'->>'id' = %s ORDER BY id DESC LIMIT 1""",
            (doc["order_id"], doc["id"], str(customer_id))).fetchone()
    if known:
        return known["original_number"] or None, known["original_date"]
    return _original_invoice(client, doc["order_name"], customer_id)


def _original_invoice(client, order_name: str, customer_id: str | None) -> tuple[str | None, date | None]:
    """The customer's invoice (another store's order of that name is another customer's) with a
    positive total that names the order where Payday's own Shopify app writes it, in the
    description, or in the reference."""
    number = re.compile(rf"(?<![\w-]){re.escape(order_name.strip().lstrip('#'))}(?![\w-])")
    try:
        for invoice in client.customer_invoices(customer_id, newest_pages=ORIGINAL_PAGES):
            text = f"{invoice.get('description') or ''} {invoice.get('reference') or ''}"
            if invoice.get("number") and float(invoice.get("amountIncludingVat") or 0) > 0 and number.search(text):
                return str(invoice["number"]), _day(invoice.get("invoiceDate"))
    except payday.PaydayError:
        pass  # a nicety: never worth failing the credit invoice over
    return None, None


def _day(value) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _sent(doc: dict, invoice: dict, settings: shop_settings.ShopSettings, looked_up: bool = False) -> str:
    with db.transaction() as conn:
        stock.record(conn, doc, settings.payday_keeps_stock)
        conn.execute(
            """UPDATE documents SET status = 'sent', sent_at = now(), payday_invoice_id = %s, payday_number = %s,
                   last_error = NULL, last_error_kind = NULL WHERE id = %s""",
            (str(invoice["id"]), _str(invoice.get("number")), doc["id"]))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_invoice_created",
                     {"doc_key": doc["doc_key"], "invoice_id": str(invoice["id"]), "found_by_reference": looked_up})
    return "sent"


def _retry_later(doc: dict, exc: "payday.PaydayTransient", attempt: int) -> str:
    """A transient failure: try again after a growing pause (or Payday's Retry-After), until
    MAX_ATTEMPTS; the status stays as it is (`sending` keeps the lookup by reference due)."""
    if attempt >= MAX_ATTEMPTS:
        return _give_up(doc, "transient", str(exc), attempt)
    pause = BACKOFF[attempt - 1]
    if exc.retry_after:
        pause = max(pause, timedelta(seconds=float(exc.retry_after)))
    with db.transaction() as conn:
        conn.execute("""UPDATE documents SET last_error = %s, last_error_kind = 'transient',
                            next_attempt_at = now() + %s WHERE id = %s""", (str(exc), pause, doc["id"]))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_error",
                     {"doc_key": doc["doc_key"], "kind": "transient", "error": str(exc), "attempt": attempt})
    return "retrying"


def _give_up(doc: dict, kind: str, message: str, attempt: int) -> str:
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET status = 'failed', last_error = %s, last_error_kind = %s WHERE id = %s",
                     (message, kind, doc["id"]))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_error",
                     {"doc_key": doc["doc_key"], "kind": kind, "error": message, "attempt": attempt})
    return "failed"


def fetch_number(doc_id: int, client: payday.PaydayClient) -> str | None:
    """Payday numbers invoices in the background; read the number once it is there."""
    with db.transaction() as conn:
        doc = conn.execute("SELECT * FROM documents WHERE id = %s", (doc_id,)).fetchone()
    if doc is None or doc["payday_number"] or not doc["payday_invoice_id"]:
        return doc["payday_number"] if doc else None
    number = _str(client.get_invoice(doc["payday_invoice_id"]).get("number"))
    if number:
        with db.transaction() as conn:
            conn.execute("UPDATE documents SET payday_number = %s WHERE id = %s", (number, doc_id))
        if doc["pay_later"]:
            _register_payment(doc, client)
    return number


def _register_payment(doc: dict, client) -> None:
    """The payment of a credit invoice Payday would not create as paid, now that it is issued."""
    try:
        client.mark_paid(doc["payday_invoice_id"], paid_date=doc["pay_later"]["paidDate"],
                         payment_type=doc["pay_later"]["paymentType"])
        kind, detail = "payday_payment_registered", {"doc_key": doc["doc_key"]}
    except payday.PaydayValidationError as exc:
        # Payday keeps it unpaid: the bookkeeper registers the payment by hand.
        kind, detail = "payday_payment_refused", {"doc_key": doc["doc_key"], "error": exc.message}
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET pay_later = NULL WHERE id = %s", (doc["id"],))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], kind, detail)


def retry(doc_id: int, shop_id: int, conn=None) -> bool:
    """The merchant's Retry: a failed document of this shop gets a fresh round of attempts, and
    its order is asked for work. False when there is no such failed document. With `conn`, the
    caller commits and then enqueues the order (orders.enqueue)."""
    if conn is None:
        with db.transaction() as own:
            row = _reset_failed(own, doc_id, shop_id)
        if row:
            orders.enqueue(row["order_id"])
        return row is not None
    return _reset_failed(conn, doc_id, shop_id) is not None


def _reset_failed(conn, doc_id: int, shop_id: int) -> dict | None:
    row = conn.execute(
        """UPDATE documents SET status = CASE WHEN payday_invoice_id IS NULL AND request_body IS NOT NULL
                                                   AND last_error_kind IS DISTINCT FROM 'unconfirmed'
                                              THEN 'sending' ELSE 'claimed' END,
               attempts = 0, next_attempt_at = now(), last_error = NULL, last_error_kind = NULL
           WHERE id = %s AND shop_id = %s AND status = 'failed' RETURNING order_id, case_id, doc_key""",
        (doc_id, shop_id)).fetchone()
    if row:
        timeline.add(conn, shop_id, row["order_id"], row["case_id"], "retry", {"doc_key": row["doc_key"]})
        orders.ask_again(conn, row["order_id"])
    return row


def customer_key(shop_id: int, customer: dict) -> str | None:
    """Who the buyer is to Payday: the kennitala when there is one, else the e-mail; hashed."""
    key = (f"kt:{customer['kennitala'].replace('-', '').strip()}" if customer.get("kennitala")
           else f"email:{customer['email'].strip().casefold()}" if customer.get("email") else None)
    return hashlib.sha256(f"{shop_id}:{key}".encode()).hexdigest() if key else None


def known_customer(shop_id: int, client, customer: dict) -> "payday.CustomerMatch | None":
    """The Payday customer found for this buyer before, on this Payday connection."""
    key = customer_key(shop_id, customer)
    if key is None:
        return None
    with db.transaction() as conn:
        row = conn.execute("""SELECT * FROM payday_customers WHERE shop_id = %s AND credentials_hash = %s
                              AND key_hash = %s""", (shop_id, client.token_key, key)).fetchone()
    return payday.CustomerMatch(row["payday_customer_id"], row["found_by"], row["has_email"]) if row else None


def remember_customer(shop_id: int, client, customer: dict, match: "payday.CustomerMatch") -> None:
    key = customer_key(shop_id, customer)
    if key is None:
        return
    # A customer Skilvís created is one Payday now knows by that key: next time it is "found".
    by = {"created": "kennitala" if customer.get("kennitala") else "email"}.get(match.by, match.by)
    with db.transaction() as conn:
        conn.execute(
            """INSERT INTO payday_customers (shop_id, credentials_hash, key_hash, payday_customer_id, found_by,
                                             has_email, shopify_customer_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (shop_id, credentials_hash, key_hash) DO UPDATE SET
                   payday_customer_id = EXCLUDED.payday_customer_id, has_email = EXCLUDED.has_email""",
            (shop_id, client.token_key, key, match.id, by, match.has_email, customer.get("shopify_id")))


def customer_details(order_row: dict, facts_customer, settings: shop_settings.ShopSettings) -> dict:
    """Who the credit invoice is for in Payday: the shop's default customer when Shopify withholds
    the buyer's data; else by kennitala (from the checkout's company field, when the shop collects
    it there), else by e-mail, else created from the billing data."""
    if facts_customer.withheld:
        return {"default_id": settings.payday_default_customer_id}
    # The raw field goes to the client, which validates it: a kennitala issued since 2026 has no
    # check digit, and Payday may know it even where the mod-11 test fails.
    ssn = facts_customer.company if settings.kennitala_from_company and facts_customer.company else None
    name = facts_customer.name or facts_customer.email or order_row["name"]
    return {"kennitala": ssn, "email": facts_customer.email, "name": name, "address": facts_customer.address,
            "zip_code": facts_customer.zip_code, "city": facts_customer.city, "country": facts_customer.country,
            "shopify_id": facts_customer.shopify_id}


def _str(value) -> str | None:
    return None if value in (None, "") else str(value)


def fetch_missing_numbers() -> int:
    """Periodic: ask Payday for the numbers of invoices it has not numbered yet."""
    with db.transaction() as conn:
        rows = conn.execute("""SELECT id, shop_id FROM documents WHERE status = 'sent' AND payday_number IS NULL
                               AND sent_at > now() - interval '7 days' ORDER BY shop_id, id LIMIT 500""").fetchall()
    found = 0
    clients: dict[int, payday.PaydayClient] = {}
    for row in rows:
        try:
            if row["shop_id"] not in clients:
                clients[row["shop_id"]] = client_for(shop_settings.load(row["shop_id"]))
            found += bool(fetch_number(row["id"], clients[row["shop_id"]]))
        except payday.PaydayError as exc:
            log.info("number of document %s not fetched: %s", row["id"], exc)
    return found
