"""Credit by hand (C6): the merchant picks products, quantities and shipping of an order, for
money returned outside Shopify's refund flow. The credit goes the same exactly-once way as any
document: claimed under a unique key, then sent by the order's pipeline pass.

The key is `manual-<token>`, the token made when the form was rendered: a double submit, a
retried request or a second tab with the same form all claim the same key, so one document."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from . import db, documents, orders, timeline
from .decision import ITEM, SHIPPING, Line, Plan, UnsupportedVat, listed_gross, refunded_quantities, vat_rate
from .facts import Order

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class InvalidCredit(ValueError):
    """The picks do not make a credit invoice; `code` names why, for the merchant's language."""

    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code, self.params = code, params


def numeric(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def creditable(order: Order) -> dict[str, int]:
    """Per line item, how many can still be credited by hand: ordered, less what Shopify
    refunds already gave money back for (those have their own credit invoices)."""
    refunded = refunded_quantities(order)
    return {item.id: max(item.quantity - refunded.get(item.id, 0), 0) for item in order.line_items.values()}


def build(order: Order, picks: Mapping[str, int], shipping: bool, token: str) -> Plan:
    """Pure: the order's facts and the merchant's picks (line item numeric id → quantity) → the
    plan of a credit invoice. Amounts as Shopify lists them, VAT included; the VAT rate per
    line by the decision core's own rules."""
    if not TOKEN.match(token or ""):
        raise InvalidCredit("bad_token")
    by_numeric = {numeric(item.id): item for item in order.line_items.values()}
    most = creditable(order)
    lines: list[Line] = []
    try:
        for line_id, quantity in picks.items():
            quantity = int(quantity)
            if quantity == 0:
                continue
            item = by_numeric.get(str(line_id))
            if item is None:
                raise InvalidCredit("unknown_line", line=line_id)
            if not 0 < quantity <= most[item.id]:
                raise InvalidCredit("bad_quantity", item=item.title, max=most[item.id])
            rate = vat_rate(item.vat_rates, item.title)
            lines.append(Line(ITEM, item.title, item.sku, -quantity,
                              -listed_gross(order, item.unit_price * quantity, rate), rate))
        if shipping:
            for ship in order.shipping_lines.values():
                if ship.price:
                    rate = vat_rate(ship.vat_rates, ship.title)
                    lines.append(Line(SHIPPING, ship.title, None, -1, -listed_gross(order, ship.price, rate), rate))
    except UnsupportedVat as exc:
        raise InvalidCredit("unsupported_vat_rate", rate=exc.rate, item=exc.what) from exc
    if not lines:
        raise InvalidCredit("nothing_picked")
    key = f"manual-{token}"
    # No gateway, so the invoice is created unpaid: the money went back outside Shopify (cash, a
    # transfer), and only the bookkeeper knows how; the sale's card gateway would be wrong.
    return Plan(key=key, trigger="manual", case_key=key, return_id=None, return_name=None, refund_ids=(),
                lines=tuple(lines), gateway=None)


@dataclass(frozen=True)
class Created:
    case_id: int
    document_id: int | None
    new: bool           # False: this form was submitted before, nothing more was made


def create(shop_id: int, order_row: dict, order: Order, plan: Plan) -> Created:
    """Claim the plan (once per key, ever), give it a case for the home list, and ask the
    order's pipeline to send it."""
    with db.transaction() as conn:
        # One hand-made credit at a time per order, so labels count up without gaps.
        conn.execute("SELECT id FROM orders WHERE id = %s AND shop_id = %s FOR UPDATE", (order_row["id"], shop_id))
        existing = conn.execute("SELECT id FROM cases WHERE shop_id = %s AND case_gid = %s",
                                (shop_id, plan.case_key)).fetchone()
        if existing:
            doc = conn.execute("SELECT id FROM documents WHERE shop_id = %s AND doc_key = %s",
                               (shop_id, plan.key)).fetchone()
            return Created(existing["id"], doc["id"] if doc else None, False)
        count = conn.execute("SELECT count(*) AS n FROM cases WHERE order_id = %s AND kind = 'manual'",
                             (order_row["id"],)).fetchone()["n"]
        case_id = conn.execute(
            """INSERT INTO cases (shop_id, order_id, case_gid, kind, label, status, amount, currency)
               VALUES (%s, %s, %s, 'manual', %s, 'processing', %s, %s) RETURNING id""",
            (shop_id, order_row["id"], plan.case_key, f"{order.name}-H{count + 1}", plan.total, order.currency),
        ).fetchone()["id"]
        doc_id = documents.claim(conn, shop_id=shop_id, order={"id": order_row["id"], "name": order.name}, plan=plan,
                                 case_id=case_id, currency=order.currency)
        timeline.add(conn, shop_id, order_row["id"], case_id, "manual_credit",
                     {"doc_key": plan.key, "total": str(plan.total)})
        orders.ask_again(conn, order_row["id"])
    orders.enqueue(order_row["id"])
    return Created(case_id, doc_id, True)
