"""C7: the sale invoice a credit invoice credits, found in Payday and named on the credit.

Payday has no link between invoices, so the credit names the sale invoice's number and date in
its text. Per order and customer it is looked up once (an earlier document's answer, found or
not, is reused); for most orders in a window of the company's invoices around the order's date,
read once per shop and connection and shared by every order it covers while fresh (migration
0019); for the rest among the customer's own newest invoices. A nicety: a failed lookup never
fails the credit invoice."""
from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from psycopg import errors as pg_errors

from ... import db
from .. import local_day
from . import api as payday
from .api import as_text


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


def original(client, doc: dict, customer_id: str | None) -> tuple[str | None, date | None]:
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


def window_days(doc: dict, today: date) -> tuple[date, date]:
    """The days the sale invoice is looked for in: around the order's date when it is known;
    else back LOOKBACK_DAYS from the first we heard of the order (or the document's own date, if
    earlier: a history pass hears of old orders late). Windows start on a Monday and end on a
    Sunday (or today), so the orders of a shop from the same weeks share one."""
    if doc.get("order_date"):
        anchor, back = doc["order_date"], DAYS_BEFORE_ORDER
    else:
        heard = local_day("payday", doc["order_heard_at"]) if doc.get("order_heard_at") else today
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
    start, end = window_days(doc, local_day("payday"))
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
    return (window_id, position, str(invoice["id"]), as_text(invoice.get("number")), dated, customer, amount, words)


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
            number = as_text(client.get_invoice(row["invoice_id"]).get("number"))
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


def forget_old() -> None:
    """Windows are a short-lived cache: gone a day after their read."""
    with db.transaction() as conn:
        conn.execute("DELETE FROM payday_invoice_windows WHERE fetched_at < now() - %s", (WINDOW_KEPT,))
