"""Returned goods back into Payday's stock, for shops whose Payday keeps stock.

A credited line cannot carry its sku: Payday moves a linked product's stock by -quantity when it
issues the invoice, whatever the price's sign (docs/PAYDAY_MODEL.md F1, F2), so a credit invoice
would take the goods out a second time. What came back in a return is put back instead by the
one way observed to add stock, a product movement of +quantity (F5).

Exactly once, as for documents: each move is recorded in the transaction that records its
document as sent (UNIQUE document, position), marked `sending` before Payday is called, and a
move whose outcome is unknown is looked for among the product's movements, by its description,
before it is sent again. Refunds without a return and corrections move no goods: nothing came
back (a correction undoes money that never moved, not a return)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ... import db, documents, timeline
from ...decision import ITEM
from .. import local_day
from . import api as payday

log = logging.getLogger(__name__)

TRIGGERS = ("return_close", "exchange_settled")
# How far back in a product's movements a move whose answer was lost is looked for: Payday's
# clock and ours may differ, and its list is newest first.
LOOKUP_MARGIN = timedelta(hours=1)
LOOKUP_PAGES = 10


def record(conn, doc: dict, keeps_stock: bool) -> None:
    """The moves a document owes, noted with the document's `sent` (same transaction)."""
    if not keeps_stock or doc["trigger"] not in TRIGGERS:
        return
    day = doc.get("document_date") or local_day("payday")
    for position, line in enumerate(doc["lines"], start=1):
        if line["kind"] == ITEM and line.get("sku") and int(line["quantity"]) < 0:
            conn.execute(
                """INSERT INTO stock_moves (shop_id, order_id, document_id, position, sku, quantity, description,
                                            moved_on)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (document_id, position) DO NOTHING""",
                (doc["shop_id"], doc["order_id"], doc["id"], position, line["sku"], -int(line["quantity"]),
                 f"Vöruskil: {doc['reference']} (lína {position})"[:255], day))


def due(order_id: int) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            """SELECT m.*, d.case_id, d.doc_key FROM stock_moves m JOIN documents d ON d.id = m.document_id
               WHERE m.order_id = %s AND m.status IN ('pending', 'sending') AND m.next_attempt_at <= now()
               ORDER BY m.id""", (order_id,)).fetchall()


def put_back(order_id: int, client: payday.PaydayClient) -> None:
    for move in due(order_id):
        _put_back(move, client)


def _put_back(move: dict, client: payday.PaydayClient) -> str:
    with db.transaction() as conn:
        attempt = conn.execute("UPDATE stock_moves SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                               (move["id"],)).fetchone()["attempts"]
    try:
        product_id = move["product_id"]
        if not product_id:
            product = client.product_by_sku(move["sku"])
            if not product or product.get("quantity") is None:
                # Not a product in Payday, or one without stock: nothing to put back.
                return _end(move, "skipped", "stock_skipped", None)
            product_id = str(product["id"])
        if move["status"] == "sending" and (found := _already_moved(client, product_id, move)):
            return _end(move, "done", "stock_returned", None, product_id, found)
        with db.transaction() as conn:
            conn.execute("UPDATE stock_moves SET status = 'sending', product_id = %s, next_attempt_at = now() "
                         "WHERE id = %s", (product_id, move["id"]))
        made = client.add_movement(product_id, change=move["quantity"], day=move["moved_on"].isoformat(),
                                   description=move["description"])
        return _end(move, "done", "stock_returned", None, product_id, made)
    except payday.PaydayTransient as exc:
        if attempt >= documents.MAX_ATTEMPTS:   # the documents' ladder: about 13 hours
            return _end(move, "failed", "stock_failed", str(exc))
        with db.transaction() as conn:
            conn.execute("UPDATE stock_moves SET last_error = %s, next_attempt_at = now() + %s WHERE id = %s",
                         (str(exc), documents.BACKOFF[attempt - 1], move["id"]))
        return "retrying"
    except (payday.PaydayUnconfirmed, payday.PaydayAuthError, payday.PaydayValidationError) as exc:
        return _end(move, "failed", "stock_failed", getattr(exc, "message", str(exc)))


def _already_moved(client, product_id: str, move: dict) -> dict | None:
    """The movement an earlier attempt may have made, among the product's newest movements back
    to shortly before that attempt; PaydayUnconfirmed when the list is longer than we read."""
    since = move["next_attempt_at"] - LOOKUP_MARGIN
    for page in range(1, LOOKUP_PAGES + 1):
        rows = client.movements_page(product_id, page)
        for row in rows:
            if row.get("description") == move["description"] and int(float(row.get("changeInQuantity") or 0)) == move["quantity"]:
                return row
        if not rows or _created(rows[-1]) < since:
            return None
    raise payday.PaydayUnconfirmed(f"more than {LOOKUP_PAGES} pages of stock movements since the last attempt")


def _created(row: dict) -> datetime:
    try:
        when = datetime.fromisoformat(str(row.get("created")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)   # unreadable: keep looking
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _end(move: dict, status: str, event: str, error: str | None, product_id: str | None = None,
         movement: dict | None = None) -> str:
    with db.transaction() as conn:
        conn.execute("""UPDATE stock_moves SET status = %s, last_error = %s, product_id = COALESCE(%s, product_id),
                               movement_id = %s WHERE id = %s""",
                     (status, error, product_id, str((movement or {}).get("id") or "") or None, move["id"]))
        timeline.add(conn, move["shop_id"], move["order_id"], move["case_id"], event,
                     {"doc_key": move["doc_key"], "sku": move["sku"], "quantity": move["quantity"], "error": error})
    return status
