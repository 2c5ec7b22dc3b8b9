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
from decimal import Decimal, InvalidOperation
from itertools import groupby

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from . import accounting, db, invoicing, orders, payday, shop_settings, stock, timeline
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
    system = _system(conn, shop_id)
    row = conn.execute(
        """INSERT INTO documents (shop_id, order_id, case_id, doc_key, trigger, return_gid, return_name, refund_gids,
                                  lines, total, currency, gateway, reference, status, document_date, paid_date, note,
                                  return_reason, order_date, accounting)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'claimed', %s, %s, %s, %s, %s, %s)
           ON CONFLICT (shop_id, doc_key) DO NOTHING RETURNING id""",
        (shop_id, order["id"], case_id, plan.key, plan.trigger, plan.return_id, plan.return_name,
         list(plan.refund_ids), Jsonb([line_dict(l) for l in plan.lines]), plan.total, currency, plan.gateway,
         _shop_mark(conn, shop_id) + invoicing.reference(order["name"], plan.key, plan.return_name, plan.corrects,
                                                         language="is" if system == "payday" else "da"),
         invoicing.iceland_day(plan.dated), invoicing.iceland_day(plan.paid), plan.note, plan.reason,
         # When the caller knows when the order was placed (Shopify's createdAt, as `placed_at`),
         # the sale invoice is looked for in the days around it (C7, _window_days).
         invoicing.iceland_day(order["placed_at"]) if order.get("placed_at") else None, system),
    ).fetchone()
    if row:
        timeline.add(conn, shop_id, order["id"], case_id, "document_claimed",
                     {"doc_key": plan.key, "total": str(plan.total), "lines": len(plan.lines)})
    return row["id"] if row else None


def _system(conn, shop_id: int) -> str:
    row = conn.execute("SELECT accounting FROM shop_settings WHERE shop_id = %s", (shop_id,)).fetchone()
    return row["accounting"] if row else "payday"


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


def client_for(settings: shop_settings.ShopSettings):
    """The shop's accounting system: Payday's client, or a Danish system's adapter."""
    if settings.accounting != "payday":
        return accounting.adapter(settings.accounting, settings.accounting_config)
    return payday.PaydayClient(payday.base_url(settings.payday_environment), settings.payday_client_id, settings.payday_client_secret,
                               token_store=payday.PostgresTokenStore(settings.shop_id))


def due(order_id: int) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            """SELECT d.*, o.name AS order_name, o.customer_name, o.customer_email, o.created_at AS order_heard_at
               FROM documents d JOIN orders o ON o.id = d.order_id
               WHERE d.order_id = %s AND d.status IN ('claimed', 'sending') AND d.next_attempt_at <= now()
               ORDER BY d.id""",
            (order_id,),
        ).fetchall()


def send(doc: dict, client, settings: shop_settings.ShopSettings, customer: dict) -> str:
    """One attempt to get the document into the shop's accounting system; returns its new status."""
    if settings.accounting != "payday":
        return _send_to_adapter(doc, client, settings, customer)
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


def _send_to_adapter(doc: dict, adapter: accounting.Adapter, settings: shop_settings.ShopSettings,
                     customer: dict) -> str:
    """A Danish system: the neutral note to its adapter, which finds it again by our reference
    before it makes anything twice; the same states, retries and failures as Payday's."""
    with db.transaction() as conn:
        attempt = conn.execute("UPDATE documents SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                               (doc["id"],)).fetchone()["attempts"]
    if doc["accounting"] != settings.accounting:
        return _give_up(doc, "validation", f"made for {doc['accounting']}, and the shop now books in "
                                           f"{settings.accounting}", attempt)
    try:
        note = note_of(doc, customer)
        if doc["status"] == "sending":   # the last attempt's outcome is unknown
            found = adapter.find(note)
            if found:
                return _booked(doc, found, looked_up=True)
        with db.transaction() as conn:
            conn.execute("UPDATE documents SET status = 'sending', request_body = %s WHERE id = %s",
                         (Jsonb(invoicing.note_json(note)), doc["id"]))
            timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_call",
                         {"doc_key": doc["doc_key"], "attempt": attempt, "system": settings.accounting})
        return _booked(doc, adapter.send(note))
    except accounting.Transient as exc:
        return _retry_later(doc, exc, attempt)
    except accounting.AuthError as exc:
        return _give_up(doc, "auth", exc.message, attempt)
    except accounting.Unconfirmed as exc:
        return _give_up(doc, "unconfirmed", exc.message, attempt)
    except accounting.ValidationError as exc:
        return _give_up(doc, "validation", exc.message, attempt)


def note_of(doc: dict, customer: dict) -> accounting.Note:
    buyer = None if "default_id" in customer else accounting.Buyer(
        name=customer.get("name"), email=customer.get("email"), national_id=customer.get("kennitala"),
        address={"line1": customer.get("address"), "zip": customer.get("zip_code"), "city": customer.get("city"),
                 "country": customer.get("country")},   # accounting.Buyer's keys
        shopify_id=customer.get("shopify_id"))
    return accounting.Note(
        reference=doc["reference"], order_name=doc["order_name"], currency=doc["currency"],
        date=doc.get("document_date") or invoicing.iceland_day(), paid_date=doc.get("paid_date"),
        gateway=doc.get("gateway"), buyer=buyer,
        lines=tuple(accounting.Line(line["kind"], line.get("description") or "", line.get("sku"), int(line["quantity"]),
                                    Decimal(line["amount"]), Decimal(line["vat_rate"])) for line in doc["lines"]),
        text=invoicing.description(doc, order_name=doc["order_name"], language="da"),
        order_placed=doc.get("order_date"))


def _booked(doc: dict, booked: accounting.Booked, looked_up: bool = False) -> str:
    with db.transaction() as conn:
        conn.execute(
            """UPDATE documents SET status = 'sent', sent_at = now(), payday_invoice_id = %s, payday_number = %s,
                   original_number = %s, last_error = NULL, last_error_kind = NULL WHERE id = %s""",
            (booked.id, booked.number, booked.credited_invoice or "", doc["id"]))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_invoice_created",
                     {"doc_key": doc["doc_key"], "invoice_id": booked.id, "found_by_reference": looked_up,
                      "system": doc["accounting"]})
        _close_breaker(conn, doc["shop_id"])
    return "sent"


def _create_unpaid_then_pay(doc: dict, client, body: dict) -> dict:
    """Payday refused the credit invoice as PAID (whether it takes a paid invoice with a negative
    total is unconfirmed): it is created unpaid, and its payment registered once Payday has
    issued it (fetch_missing_numbers), since Payday changes no status before that."""
    payment = {"paidDate": body.get("paidDate"), "paymentType": body.get("paymentType")}
    unpaid = {**{k: v for k, v in body.items() if k not in payment}, "status": "SENT"}
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET request_body = %s, pay_later = %s WHERE id = %s",
                     (Jsonb(unpaid), Jsonb(payment), doc["id"]))
    return client.create_invoice(unpaid)


# How many of the customer's newest pages of invoices the sale invoice is looked for in (C7), when
# it is looked for per customer: a nicety, so a bounded one.
ORIGINAL_PAGES = 2

# C7 in batches: the company's invoices dated in a window of days are read once per shop and
# Payday connection and shared by every order whose days the window covers while it is fresh.
WINDOW_PAGES = 2                       # at most this many pages of 500; a longer list: per customer
WINDOW_PERPAGE = payday.LOOKUP_PERPAGE
WINDOW_FRESH = timedelta(minutes=15)   # a window read longer ago is read again
WINDOW_KEPT = timedelta(days=1)        # then deleted
DAYS_BEFORE_ORDER = 2                  # with the order's date: from two days before it
LOOKBACK_DAYS = 90                     # without it: back from the first we heard of the order
DAYS_AFTER = 21                        # to three weeks after (an invoice made at fulfilment), or today
_WORD = re.compile(r"[\w-]+")


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
    name = doc["order_name"].strip().lstrip("#")
    if not customer_id or not _order_word(name):
        return _original_invoice(client, doc["order_name"], customer_id)
    try:
        window = _window(client, doc)
        if window is None:   # the company's list for those days is longer than the bound
            return _original_invoice(client, doc["order_name"], customer_id)
        return _match(client, window, str(customer_id), word_hash(doc["shop_id"], name))
    except payday.PaydayError:
        return None, None   # a nicety: never worth failing the credit invoice over


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


def _order_word(name: str) -> bool:
    """Whether the order's name (without its '#') is one word of letters, digits, '_' and '-'
    with a digit in it: then "the text names it as a whole token" (the `_original_invoice`
    pattern) is exactly "it is one of the text's words" (maximal runs of those characters), and
    a window's stored word hashes answer it. Any other name is looked for per customer."""
    return bool(_WORD.fullmatch(name)) and any(c.isdigit() for c in name)


def word_hash(shop_id: int, word: str) -> str:
    """A word of an invoice's description or reference as a window keeps it: hashed, since a
    customer's note there may hold a phone number or a kennitala."""
    return hashlib.sha256(f"{shop_id}:invoice-word:{word}".encode()).hexdigest()


def _window_days(doc: dict, today: date) -> tuple[date, date]:
    """The days the sale invoice is looked for in: around the order's date when it is known;
    else back LOOKBACK_DAYS from the first we heard of the order (or the document's own date, if
    earlier: a history pass hears of old orders late). Windows start on a Monday and end on a
    Sunday (or today), so the orders of a shop from the same weeks share one."""
    if doc.get("order_date"):
        anchor, back = doc["order_date"], DAYS_BEFORE_ORDER
    else:
        heard = invoicing.iceland_day(doc["order_heard_at"]) if doc.get("order_heard_at") else today
        anchor, back = min(heard, doc.get("document_date") or today), LOOKBACK_DAYS
    start = anchor - timedelta(days=back)
    start -= timedelta(days=start.weekday())
    end = anchor + timedelta(days=DAYS_AFTER)
    end += timedelta(days=6 - end.weekday())
    return start, max(start, min(end, today))


def _window(client, doc: dict) -> dict | None:
    """The fresh window of the shop's Payday company covering the order's days, read now if there
    is none (one reader at a time per shop and connection: the others wait and share its read);
    None when Payday's list for those days is longer than WINDOW_PAGES pages.

    A window answers for an order only if it was read after Skilvís first heard of the order:
    the order, and the sale invoice made with it, existed when the list was read."""
    start, end = _window_days(doc, invoicing.iceland_day())
    key = (doc["shop_id"], client.token_key, start, end, doc.get("order_heard_at") or doc.get("created_at"))
    with db.transaction() as conn:
        found = _fresh_window(conn, *key)
    if found is None:
        with db.transaction() as conn:
            conn.execute("SET LOCAL lock_timeout = '20s'")
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                 (f"payday-window:{doc['shop_id']}:{client.token_key}",))
            except pg_errors.LockNotAvailable:
                pass   # the other reader is slow: read without waiting for it
            found = _fresh_window(conn, *key) or _read_window(conn, client, doc["shop_id"], start, end)
    return found if found["complete"] else None


def _fresh_window(conn, shop_id: int, token_key: str, start: date, end: date, heard_at) -> dict | None:
    """A window read within WINDOW_FRESH and after `heard_at` that covers start..end, or that
    found a part of those days too long to read (so the whole is too)."""
    return conn.execute(
        """SELECT * FROM payday_invoice_windows
           WHERE shop_id = %(shop)s AND credentials_hash = %(key)s AND fetched_at > now() - %(fresh)s
             AND (%(heard)s::timestamptz IS NULL OR fetched_at >= %(heard)s)
             AND ((complete AND date_from <= %(start)s AND date_to >= %(end)s)
                  OR (NOT complete AND date_from >= %(start)s AND date_to <= %(end)s))
           ORDER BY complete DESC, fetched_at DESC LIMIT 1""",
        {"shop": shop_id, "key": token_key, "fresh": WINDOW_FRESH, "heard": heard_at, "start": start,
         "end": end}).fetchone()


def _read_window(conn, client, shop_id: int, start: date, end: date) -> dict:
    """GET /invoices dated start..end, at most WINDOW_PAGES pages of WINDOW_PERPAGE; what matching
    needs of each invoice with a positive total is kept (see the migration 0019)."""
    conn.execute("DELETE FROM payday_invoice_windows WHERE shop_id = %s AND credentials_hash = %s"
                 " AND fetched_at < now() - %s", (shop_id, client.token_key, WINDOW_KEPT))
    invoices, complete, total = [], True, None
    for items, pages, total in client.invoice_pages(start, end, perpage=WINDOW_PERPAGE):
        if pages > WINDOW_PAGES:
            complete = False
            break
        invoices += items
    # A list that stops early (docs/PAYDAY_MODEL.md B3, mode max_pages) is not the whole list.
    complete = complete and (total is None or len(invoices) >= total)
    window = conn.execute(
        """INSERT INTO payday_invoice_windows (shop_id, credentials_hash, date_from, date_to, complete)
           VALUES (%s, %s, %s, %s, %s) RETURNING *""",
        (shop_id, client.token_key, start, end, complete)).fetchone()
    if complete:
        rows = [row for position, invoice in enumerate(invoices)
                if (row := _window_row(window["id"], position, invoice, shop_id, start, end))]
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO payday_window_invoices (window_id, position, invoice_id, number, invoice_date,
                                                          customer_id, amount, words)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""", rows)
    return window


def _window_row(window_id: int, position: int, invoice: dict, shop_id: int, start: date, end: date):
    """What a window keeps of one listed invoice, or None when it cannot be a sale invoice of
    these days: dated outside them (Payday may ignore the filters), not positive, no customer,
    or no word with a digit (no order number)."""
    dated = _day(invoice.get("invoiceDate"))
    try:
        amount = Decimal(str(invoice.get("amountIncludingVat") or 0))
    except InvalidOperation:
        return None
    customer = str((invoice.get("customer") or {}).get("id") or "")
    text = f"{invoice.get('description') or ''} {invoice.get('reference') or ''}"
    words = sorted({word_hash(shop_id, w) for w in _WORD.findall(text) if any(c.isdigit() for c in w)})
    if dated is None or not start <= dated <= end or not amount > 0 or not customer or not words \
            or not invoice.get("id"):
        return None
    return (window_id, position, str(invoice["id"]), _str(invoice.get("number")), dated, customer, amount, words)


def _match(client, window: dict, customer_id: str, word: str) -> tuple[str | None, date | None]:
    """The first invoice of the window, in Payday's order, of this customer with a positive total
    naming the order; one Payday had not numbered yet when the window was read is read again."""
    with db.transaction() as conn:
        found = conn.execute(
            """SELECT position, invoice_id, number, invoice_date FROM payday_window_invoices
               WHERE window_id = %s AND customer_id = %s AND %s = ANY(words) ORDER BY position""",
            (window["id"], customer_id, word)).fetchall()
    for row in found:
        number = row["number"]
        if number is None:
            number = _str(client.get_invoice(row["invoice_id"]).get("number"))
            if number:
                with db.transaction() as conn:
                    conn.execute("UPDATE payday_window_invoices SET number = %s WHERE window_id = %s AND position = %s",
                                 (number, window["id"], row["position"]))
        if number:
            return number, row["invoice_date"]
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
        _close_breaker(conn, doc["shop_id"])
    return "sent"


# A per-connection breaker over the retry ladder: while the shop's accounting system fails, its
# documents wait on the ladder (1, 2, 5 … 360 min) and one of them is tried each minute (the
# sweep's probe, which costs it no step of its ladder); the first success sends every waiting
# document of the shop at once, so an outage's end is followed within a minute or two, not at
# each document's next step.
PROBE_EVERY = timedelta(minutes=1)


def _close_breaker(conn, shop_id: int) -> None:
    waiting = conn.execute(
        """UPDATE documents SET next_attempt_at = now()
           WHERE shop_id = %s AND status IN ('claimed', 'sending') AND last_error_kind = 'transient'
             AND next_attempt_at > now() RETURNING order_id""", (shop_id,)).fetchall()
    for order_id in dict.fromkeys(r["order_id"] for r in waiting):
        orders.ask_again(conn, order_id)


def probe_waiting() -> int:
    """Periodic (the minute's sweep): per shop whose documents wait on a transient failure and
    none of which is due within PROBE_EVERY, the one due first is tried now. The try gives back
    the attempt it will count, so probing through a long outage never exhausts a document."""
    with db.transaction() as conn:
        probed = conn.execute(
            """UPDATE documents d SET next_attempt_at = now(), attempts = greatest(d.attempts - 1, 0)
               FROM (SELECT DISTINCT ON (shop_id) id FROM documents w
                     WHERE status IN ('claimed', 'sending') AND last_error_kind = 'transient'
                       AND NOT EXISTS (SELECT 1 FROM documents n WHERE n.shop_id = w.shop_id
                                       AND n.status IN ('claimed', 'sending') AND n.next_attempt_at <= now() + %s)
                     ORDER BY shop_id, next_attempt_at) first
               WHERE d.id = first.id RETURNING d.order_id""", (PROBE_EVERY,)).fetchall()
    return len(probed)


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
    """One document's number, read alone (GET /invoices/{id}); fetch_missing_numbers reads them
    in batches and comes here only for an invoice its list did not show."""
    with db.transaction() as conn:
        doc = conn.execute("SELECT * FROM documents WHERE id = %s", (doc_id,)).fetchone()
    if doc is None or doc["payday_number"] or not doc["payday_invoice_id"]:
        return doc["payday_number"] if doc else None
    number = _str(client.get_invoice(doc["payday_invoice_id"]).get("number"))
    if number:
        _numbered(doc, number, client)
    return number


def _numbered(doc: dict, number: str, client) -> None:
    """Record Payday's number; a credit invoice created unpaid (pay_later) now gets its payment.
    Only the one who records the number registers the payment."""
    with db.transaction() as conn:
        won = conn.execute("UPDATE documents SET payday_number = %s WHERE id = %s AND payday_number IS NULL"
                           " RETURNING pay_later", (number, doc["id"])).fetchone()
    if won and won["pay_later"]:
        _register_payment({**doc, "pay_later": won["pay_later"]}, client)


def _register_payment(doc: dict, client) -> None:
    """The payment of a credit invoice Payday would not create as paid, now that it is issued. A
    transient failure leaves it waiting for the next round of fetch_missing_numbers."""
    try:
        client.mark_paid(doc["payday_invoice_id"], paid_date=doc["pay_later"]["paidDate"],
                         payment_type=doc["pay_later"]["paymentType"])
        kind, detail = "payday_payment_registered", {"doc_key": doc["doc_key"]}
    except payday.PaydayValidationError as exc:
        if str(client.get_invoice(doc["payday_invoice_id"]).get("status") or "").upper() == "PAID":
            # An earlier attempt's answer was lost after Payday registered it (D1).
            kind, detail = "payday_payment_registered", {"doc_key": doc["doc_key"]}
        else:
            # Payday keeps it unpaid: the bookkeeper registers the payment by hand.
            kind, detail = "payday_payment_refused", {"doc_key": doc["doc_key"], "error": exc.message}
    with db.transaction() as conn:
        if conn.execute("UPDATE documents SET pay_later = NULL WHERE id = %s AND pay_later IS NOT NULL RETURNING id",
                        (doc["id"],)).fetchone():
            timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], kind, detail)


def retry(doc_id: int, shop_id: int, conn=None) -> bool:
    """The merchant's Retry: a failed document of this shop gets a fresh round of attempts, and
    its order is asked for work. False when there is no such failed document."""
    with db.joined(conn) as c:
        return _reset_failed(c, doc_id, shop_id) is not None


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


# A round of fetch_missing_numbers reads at most this many pages of one shop's list, then at most
# ONE_BY_ONE of the invoices the list did not show one at a time; the rest wait for the next round.
NUMBER_PAGES = 4
ONE_BY_ONE = 20
NUMBER_GAP = timedelta(days=7)


def fetch_missing_numbers() -> int:
    """Periodic (every minute): the numbers Payday has given our invoices since they were made
    (it numbers them in the background, about a minute after the create, C2). Per shop, one
    read of the company's invoices dated on those documents' days (GET /invoices?dateFrom=&dateTo=,
    500 a page: page 1, then from the last back, until every waiting invoice was seen or
    NUMBER_PAGES were read) answers them all; an invoice listed without a number waits for the
    next round; only one the list did not show is read alone. A credit invoice Payday would not
    create as paid gets its payment registered once numbered. Returns how many were numbered."""
    with db.transaction() as conn:
        # Windows of the sale invoices (C7) are a short-lived cache: gone a day after their read.
        conn.execute("DELETE FROM payday_invoice_windows WHERE fetched_at < now() - %s", (WINDOW_KEPT,))
        rows = conn.execute(
            """SELECT *, coalesce((request_body->>'invoiceDate')::date, document_date) AS invoice_date
               FROM documents WHERE status = 'sent' AND payday_invoice_id IS NOT NULL AND accounting = 'payday'
                 AND (payday_number IS NULL AND sent_at > now() - interval '7 days' OR pay_later IS NOT NULL)
               ORDER BY shop_id, id LIMIT 2000""").fetchall()
    found = 0
    for shop_id, group in groupby(rows, key=lambda r: r["shop_id"]):
        docs = list(group)
        try:
            client = client_for(shop_settings.load(shop_id))
            waiting = [d for d in docs if not d["payday_number"]]
            listed = _listed_numbers(client, waiting) if waiting else {}
        except payday.PaydayError as exc:
            log.info("numbers of shop %s not fetched: %s", shop_id, exc)
            continue
        alone = 0
        for doc in docs:
            try:
                if doc["payday_number"]:   # numbered, but its payment's registration failed for now
                    _register_payment(doc, client)
                    continue
                invoice_id = str(doc["payday_invoice_id"])
                if invoice_id in listed:
                    number = listed[invoice_id]
                    if number:
                        _numbered(doc, number, client)
                elif alone < ONE_BY_ONE:
                    alone += 1
                    number = fetch_number(doc["id"], client)
                else:
                    continue
                found += bool(number)
            except payday.PaydayError as exc:
                log.info("number of document %s not fetched: %s", doc["id"], exc)
    return found


def _listed_numbers(client, docs: list[dict]) -> dict[str, str | None]:
    """{Payday invoice id: its number, or None while Payday has not numbered it} for the waiting
    documents the company's lists of their days show: one list per run of days (a gap of more
    than NUMBER_GAP starts another, so a history pass's old dates do not make one long list), at
    most NUMBER_PAGES pages in all."""
    wanted = {str(d["payday_invoice_id"]) for d in docs}
    seen: dict[str, str | None] = {}
    runs: list[list[date]] = []
    for day in sorted({d["invoice_date"] for d in docs if d["invoice_date"]}):
        if runs and day - runs[-1][-1] <= NUMBER_GAP:
            runs[-1].append(day)
        else:
            runs.append([day])
    budget = NUMBER_PAGES
    for days in runs:
        if budget <= 0:
            break
        here = {str(d["payday_invoice_id"]) for d in docs
                if d["invoice_date"] and days[0] <= d["invoice_date"] <= days[-1]}
        for invoices, _pages, _total in client.invoice_pages(days[0], days[-1]):
            budget -= 1
            for invoice in invoices:
                if str(invoice.get("id")) in wanted:
                    seen[str(invoice["id"])] = _str(invoice.get("number"))
            if here <= seen.keys() or budget <= 0:
                break
    return seen
