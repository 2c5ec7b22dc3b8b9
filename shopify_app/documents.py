"""Documents: each credit invoice is claimed in Postgres under its unique key, then handed to
the shop's accounting system (accounting/: Payday, e-conomic, Dinero or Billy) as a neutral note.

The order of effects is what makes a crash harmless:
  1. claim   INSERT ... ON CONFLICT DO NOTHING on (shop, doc_key): a second decision claims nothing;
  2. sending the adapter journals what it will send (committed) before its first call that may
             create anything;
  3. call    the system makes the document and books it;
  4. sent    the system's id and number recorded.
A worker killed between 3 and 4 leaves the row in `sending`; the next attempt first asks the
adapter to find the document by its unique reference and records it instead of making it again.
Transient failures wait with growing pauses over hours, then fail visibly.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from psycopg.types.json import Jsonb

from . import accounting, db, invoicing, orders, shop_settings, timeline
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


def claim(conn, *, shop_id: int, order: dict, plan: Plan, case_id: int | None, currency: str,
          system: str) -> int | None:
    """Claim the document under its key for the shop's accounting system (`settings.accounting`);
    None when it is already claimed (by anyone, ever)."""
    row = conn.execute(
        """INSERT INTO documents (shop_id, order_id, case_id, doc_key, trigger, return_gid, return_name, refund_gids,
                                  lines, total, currency, gateway, reference, status, document_date, paid_date, note,
                                  return_reason, order_date, accounting)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'claimed', %s, %s, %s, %s, %s, %s)
           ON CONFLICT (shop_id, doc_key) DO NOTHING RETURNING id""",
        (shop_id, order["id"], case_id, plan.key, plan.trigger, plan.return_id, plan.return_name,
         list(plan.refund_ids), Jsonb([line_dict(l) for l in plan.lines]), plan.total, currency, plan.gateway,
         _shop_mark(conn, shop_id) + invoicing.reference(order["name"], plan.key, plan.return_name, plan.corrects,
                                                         language=accounting.LANGUAGES[system]),
         _day(system, plan.dated), _day(system, plan.paid), plan.note, plan.reason,
         # When the caller knows when the order was placed (Shopify's createdAt, as `placed_at`),
         # the sale invoice is looked for in the days around it (C7, _window_days).
         _day(system, order.get("placed_at")), system),
    ).fetchone()
    if row:
        timeline.add(conn, shop_id, order["id"], case_id, "document_claimed",
                     {"doc_key": plan.key, "total": str(plan.total), "lines": len(plan.lines)})
    return row["id"] if row else None


def _day(system: str, moment):
    return accounting.local_day(system, moment) if moment else None


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


def due(order_id: int) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            """SELECT d.*, o.name AS order_name, o.customer_name, o.customer_email, o.created_at AS order_heard_at
               FROM documents d JOIN orders o ON o.id = d.order_id
               WHERE d.order_id = %s AND d.status IN ('claimed', 'sending') AND d.next_attempt_at <= now()
               ORDER BY d.id""",
            (order_id,),
        ).fetchall()


# What an adapter may note on a document while sending it, beside the request (Payday: how the
# customer was found, the sale invoice it credits, a payment to register once Payday issues it).
JOURNAL_COLUMNS = ("customer_by", "original_number", "original_date", "pay_later")


def send(doc: dict, system: accounting.Adapter, settings: shop_settings.ShopSettings,
         buyer: accounting.Buyer | None) -> str:
    """One attempt to get the document into the shop's accounting system; returns its new status."""
    with db.transaction() as conn:
        attempt = conn.execute("UPDATE documents SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                               (doc["id"],)).fetchone()["attempts"]
    if doc["accounting"] != settings.accounting:
        return _give_up(doc, "validation", f"made for {doc['accounting']}, and the shop now books in "
                                           f"{settings.accounting}", attempt)
    try:
        note = note_of(doc, buyer)
        if doc["status"] == "sending":
            # The last attempt's outcome is unknown: the document may exist already.
            found = system.find(note, doc.get("request_body"))
            if found:
                return _booked(doc, found, system, looked_up=True)
        return _booked(doc, system.send(note, _journal(doc, attempt, settings.accounting)), system)
    except accounting.Unconfirmed as exc:
        return _give_up(doc, "unconfirmed", exc.message, attempt)
    except accounting.Transient as exc:
        return _retry_later(doc, exc, attempt)
    except accounting.AuthError as exc:
        return _give_up(doc, "auth", exc.message, attempt)
    except accounting.ValidationError as exc:
        return _give_up(doc, "validation", exc.message, attempt)


def _journal(doc: dict, attempt: int, system: str):
    """The adapter's journal for this attempt: the first entry marks the document `sending`
    (committed before the call it precedes); a later one only updates what will be sent."""
    first = True

    def journal(request: dict, **columns) -> None:
        nonlocal first
        sets = ", ".join(f"{name} = %({name})s" for name in columns if name in JOURNAL_COLUMNS)
        values = {**{k: Jsonb(v) if isinstance(v, dict) else v for k, v in columns.items()},
                  "request": Jsonb(request), "id": doc["id"]}
        with db.transaction() as conn:
            conn.execute(f"UPDATE documents SET status = 'sending', request_body = %(request)s"
                         f"{', ' + sets if sets else ''} WHERE id = %(id)s", values)
            if first:
                timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_call",
                             {"doc_key": doc["doc_key"], "attempt": attempt, "system": system})
        first = False
    return journal


def note_of(doc: dict, buyer: accounting.Buyer | None) -> accounting.Note:
    """The neutral note of a claimed document, its text in the company's language."""
    return accounting.Note(
        reference=doc["reference"], order_name=doc["order_name"], currency=doc["currency"],
        date=doc.get("document_date") or accounting.local_day(doc["accounting"]), paid_date=doc.get("paid_date"),
        gateway=doc.get("gateway"), buyer=buyer,
        lines=tuple(accounting.Line(line["kind"], line.get("description") or "", line.get("sku"), int(line["quantity"]),
                                    Decimal(line["amount"]), Decimal(line["vat_rate"])) for line in doc["lines"]),
        text=invoicing.description(doc, order_name=doc["order_name"],
                                   language=accounting.LANGUAGES[doc["accounting"]]),
        order_placed=doc.get("order_date"), trigger=doc["trigger"], return_name=doc.get("return_name"),
        reason=doc.get("return_reason"), remark=doc.get("note"),
        source=accounting.Source(doc["shop_id"], doc["order_id"], doc["id"], doc.get("order_heard_at")))


def _booked(doc: dict, booked: accounting.Booked, system: accounting.Adapter, looked_up: bool = False) -> str:
    with db.transaction() as conn:
        system.record_booked(conn, doc)
        conn.execute(
            """UPDATE documents SET status = 'sent', sent_at = now(), accounting_id = %s, accounting_number = %s,
                   original_number = coalesce(%s, original_number), last_error = NULL, last_error_kind = NULL
               WHERE id = %s""",
            (booked.id, booked.number, booked.credited_invoice, doc["id"]))
        timeline.add(conn, doc["shop_id"], doc["order_id"], doc["case_id"], "payday_invoice_created",
                     {"doc_key": doc["doc_key"], "invoice_id": booked.id, "found_by_reference": looked_up,
                      "system": doc["accounting"]})
        _close_breaker(conn, doc["shop_id"])
    return "sent"


# (The timeline's kinds keep the names they had when Payday was the only system: rows already
# stored use them; `system` in the detail says which system it was.)

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


def _retry_later(doc: dict, exc: accounting.Transient, attempt: int) -> str:
    """A transient failure: try again after a growing pause (or the system's Retry-After), until
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


def retry(doc_id: int, shop_id: int, conn=None) -> bool:
    """The merchant's Retry: a failed document of this shop gets a fresh round of attempts, and
    its order is asked for work. False when there is no such failed document."""
    with db.joined(conn) as c:
        return _reset_failed(c, doc_id, shop_id) is not None


def _reset_failed(conn, doc_id: int, shop_id: int) -> dict | None:
    row = conn.execute(
        """UPDATE documents SET status = CASE WHEN accounting_id IS NULL AND request_body IS NOT NULL
                                                   AND last_error_kind IS DISTINCT FROM 'unconfirmed'
                                              THEN 'sending' ELSE 'claimed' END,
               attempts = 0, next_attempt_at = now(), last_error = NULL, last_error_kind = NULL
           WHERE id = %s AND shop_id = %s AND status = 'failed' RETURNING order_id, case_id, doc_key""",
        (doc_id, shop_id)).fetchone()
    if row:
        timeline.add(conn, shop_id, row["order_id"], row["case_id"], "retry", {"doc_key": row["doc_key"]})
        orders.ask_again(conn, row["order_id"])
    return row


def buyer(order_row: dict, facts_customer, settings: shop_settings.ShopSettings) -> accounting.Buyer | None:
    """Who the document is for: None while Shopify withholds the buyer's data (the shop's
    default customer takes it); else the buyer, with the kennitala or CVR number from the
    checkout's company field when the shop collects it there."""
    if facts_customer.withheld:
        return None
    # The raw field goes to the system, which validates it: a kennitala issued since 2026 has no
    # check digit, and Payday may know it even where the mod-11 test fails.
    national_id = facts_customer.company if settings.kennitala_from_company and facts_customer.company else None
    return accounting.Buyer(
        name=facts_customer.name or facts_customer.email or order_row["name"], email=facts_customer.email,
        national_id=national_id, shopify_id=facts_customer.shopify_id,
        address={"line1": facts_customer.address, "zip": facts_customer.zip_code, "city": facts_customer.city,
                 "country": facts_customer.country})
