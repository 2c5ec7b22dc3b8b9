"""Payday numbers an invoice in the background, about a minute after the create (C2): the
numbers are fetched by the minute's job, in batches per shop, and a credit invoice Payday would
not create as paid gets its payment registered once it is numbered (Payday changes no status
before it issues an invoice)."""
from __future__ import annotations

import logging
from datetime import date, timedelta
from itertools import groupby

from ... import db, shop_settings, timeline
from . import api as payday
from . import originals
from .api import as_text

log = logging.getLogger(__name__)

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
    originals.forget_old()
    with db.transaction() as conn:
        rows = conn.execute(
            """SELECT *, coalesce((request_body->>'invoiceDate')::date, document_date) AS invoice_date
               FROM documents WHERE status = 'sent' AND accounting_id IS NOT NULL AND accounting = 'payday'
                 AND (accounting_number IS NULL AND sent_at > now() - interval '7 days' OR pay_later IS NOT NULL)
               ORDER BY shop_id, id LIMIT 2000""").fetchall()
    found = 0
    for shop_id, group in groupby(rows, key=lambda r: r["shop_id"]):
        docs = list(group)
        try:
            client = payday.PaydayClient.for_shop(shop_settings.load(shop_id))
            waiting = [d for d in docs if not d["accounting_number"]]
            listed = _listed_numbers(client, waiting) if waiting else {}
        except payday.PaydayError as exc:
            log.info("numbers of shop %s not fetched: %s", shop_id, exc)
            continue
        alone = 0
        for doc in docs:
            try:
                if doc["accounting_number"]:   # numbered, but its payment's registration failed for now
                    _register_payment(doc, client)
                    continue
                invoice_id = str(doc["accounting_id"])
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
    wanted = {str(d["accounting_id"]) for d in docs}
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
        here = {str(d["accounting_id"]) for d in docs
                if d["invoice_date"] and days[0] <= d["invoice_date"] <= days[-1]}
        for invoices, _pages, _total in client.invoice_pages(days[0], days[-1]):
            budget -= 1
            for invoice in invoices:
                if str(invoice.get("id")) in wanted:
                    seen[str(invoice["id"])] = as_text(invoice.get("number"))
            if here <= seen.keys() or budget <= 0:
                break
    return seen


def fetch_number(doc_id: int, client: payday.PaydayClient) -> str | None:
    """One document's number, read alone (GET /invoices/{id}); fetch_missing_numbers reads them
    in batches and comes here only for an invoice its list did not show."""
    with db.transaction() as conn:
        doc = conn.execute("SELECT * FROM documents WHERE id = %s", (doc_id,)).fetchone()
    if doc is None or doc["accounting_number"] or not doc["accounting_id"]:
        return doc["accounting_number"] if doc else None
    number = as_text(client.get_invoice(doc["accounting_id"]).get("number"))
    if number:
        _numbered(doc, number, client)
    return number


def _numbered(doc: dict, number: str, client) -> None:
    """Record Payday's number; a credit invoice created unpaid (pay_later) now gets its payment.
    Only the one who records the number registers the payment."""
    with db.transaction() as conn:
        won = conn.execute("UPDATE documents SET accounting_number = %s WHERE id = %s AND accounting_number IS NULL"
                           " RETURNING pay_later", (number, doc["id"])).fetchone()
    if won and won["pay_later"]:
        _register_payment({**doc, "pay_later": won["pay_later"]}, client)


def _register_payment(doc: dict, client) -> None:
    """The payment of a credit invoice Payday would not create as paid, now that it is issued. A
    transient failure leaves it waiting for the next round of fetch_missing_numbers."""
    try:
        client.mark_paid(doc["accounting_id"], paid_date=doc["pay_later"]["paidDate"],
                         payment_type=doc["pay_later"]["paymentType"])
        kind, detail = "payday_payment_registered", {"doc_key": doc["doc_key"]}
    except payday.PaydayValidationError as exc:
        if str(client.get_invoice(doc["accounting_id"]).get("status") or "").upper() == "PAID":
            # An earlier attempt's answer was lost after Payday registered it (D1).
            kind, detail = "payday_payment_registered", {"doc_key": doc["doc_key"]}
        else:
            # Payday keeps it unpaid: the bookkeeper registers the payment by hand.
            kind, detail = "payday_payment_refused", {"doc_key": doc["doc_key"], "error": exc.message}
    with db.transaction() as conn:
        if conn.execute("UPDATE documents SET pay_later = NULL WHERE id = %s AND pay_later IS NOT NULL RETURNING id",
                        (doc["id"],)).fetchone():
            timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], kind, detail)
