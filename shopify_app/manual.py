"""Credit by hand (C6): the merchant picks products, quantities and shipping of an order, for
money returned outside Shopify's refund flow. The credit goes the same exactly-once way as any
document: claimed under a unique key, then sent by the order's pipeline pass.

The key is `manual-<token>`, the token made when the form was rendered: a double submit, a
retried request or a second tab with the same form all claim the same key, so one document.

The merchant sees the invoice before it is made, exactly as Payday will get it (`proposal`: the
lines, signs and labels from invoicing.draft, the function the invoice itself is built by), and
confirms it by its digest: a create whose plan is no longer the one confirmed (another hand
credit or a refund changed what is left) makes nothing and shows the new one."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Mapping

from . import accounting, db, decision, documents, invoicing, orders, shop_settings, timeline
from .decision import (ITEM, SHIPPING, Line, Plan, UnsupportedVat, line_rate, listed_gross, refunded_quantities,
                       refunded_shipping, vat_rate)
from .facts import Order
from .money import ZERO

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class InvalidCredit(ValueError):
    """The picks do not make a credit invoice; `code` names why, for the merchant's language."""

    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code, self.params = code, params


def numeric(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class HandCredits:
    """What earlier hand-made credits of an order already credited: per order line the
    quantity, per shipping line the amount (VAT included, positive)."""
    items: Mapping[str, int] = field(default_factory=dict)
    shipping: Mapping[str, Decimal] = field(default_factory=dict)


def hand_credits(order_id: int, token: str, conn=None) -> HandCredits:
    """The order's hand-made credits, except the one this form makes (its own resubmit must
    find its document, not be refused for having credited itself)."""
    items: dict[str, int] = {}
    shipping: dict[str, Decimal] = {}
    with db.joined(conn) as c:
        rows = c.execute("SELECT lines FROM documents WHERE order_id = %s AND trigger = 'manual' AND doc_key <> %s",
                         (order_id, key(token))).fetchall()
    for row in rows:
        for line in row["lines"]:
            source = line.get("source")
            if source and line["kind"] == ITEM:
                items[source] = items.get(source, 0) - int(line["quantity"])
            elif source and line["kind"] == SHIPPING:
                shipping[source] = shipping.get(source, ZERO) - Decimal(line["amount"])
    return HandCredits(items, shipping)


def creditable(order: Order, earlier: HandCredits = HandCredits()) -> dict[str, int]:
    """Per line item, how many can still be credited by hand: ordered, less what Shopify
    refunds already gave money back for (those have their own credit invoices) and what
    earlier hand credits took."""
    refunded = refunded_quantities(order)
    return {item.id: max(item.quantity - refunded.get(item.id, 0) - earlier.items.get(item.id, 0), 0)
            for item in order.line_items.values()}


def creditable_shipping(order: Order, earlier: HandCredits = HandCredits()) -> dict[str, Decimal]:
    """Per shipping line, the shipping (VAT included) not yet given back by a Shopify refund or
    an earlier hand credit. A line with nothing left is left out."""
    refunded = refunded_shipping(order)
    left = {}
    for ship in order.shipping_lines.values():
        # What is left is shown whatever the rate: one the shop cannot book is refused at the preview.
        rest = listed_gross(order, ship.price, line_rate(ship.vat_rates)) - refunded.get(ship.id, ZERO) - earlier.shipping.get(ship.id, ZERO)
        if rest > 0:
            left[ship.id] = rest
    return left


def build(order: Order, picks: Mapping[str, int], shipping: bool, token: str,
          earlier: HandCredits = HandCredits()) -> Plan:
    """Pure: the order's facts, the merchant's picks (line item numeric id → quantity) and the
    earlier hand credits → the plan of a credit invoice. Amounts as Shopify lists them, VAT
    included; the VAT rate per line by the decision core's own rules."""
    if not TOKEN.match(token or ""):
        raise InvalidCredit("bad_token")
    by_numeric = {numeric(item.id): item for item in order.line_items.values()}
    most = creditable(order, earlier)
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
                              -listed_gross(order, item.unit_price * quantity, rate), rate, source=item.id))
        if shipping:
            left = creditable_shipping(order, earlier)
            if not left:
                raise InvalidCredit("shipping_credited")
            for ship_id, amount in left.items():
                ship = order.shipping_lines[ship_id]
                lines.append(Line(SHIPPING, ship.title, None, -1, -amount, vat_rate(ship.vat_rates, ship.title),
                                  source=ship_id))
    except UnsupportedVat as exc:
        why = decision.unbookable(exc)   # Payday's fixed rates, or what a Danish shop mapped
        raise InvalidCredit(why.code, **dict(why.params)) from exc
    if not lines:
        raise InvalidCredit("nothing_picked")
    # No gateway, so the invoice is created unpaid: the money went back outside Shopify (cash, a
    # transfer), and only the bookkeeper knows how; the sale's card gateway would be wrong.
    return Plan(key=key(token), trigger="manual", case_key=key(token), return_id=None, return_name=None, refund_ids=(),
                lines=tuple(lines), gateway=None)


@dataclass(frozen=True)
class Proposal:
    """A hand credit as the merchant confirms it: its plan, its name (`#1001-H2`), and the
    invoice as Payday will receive it (invoicing.draft: text, reference, lines)."""
    plan: Plan
    label: str
    invoice: dict
    currency: str
    system: str          # the accounting system it is made for (settings.accounting)

    @property
    def total(self) -> Decimal:
        return self.plan.total

    @property
    def digest(self) -> str:
        """What the merchant confirms: every word and number Payday will be sent."""
        shown = json.dumps({**self.invoice, "currency": self.currency, "total": str(self.total)},
                           sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(shown.encode()).hexdigest()[:32]


class Unconfirmed(InvalidCredit):
    """The create did not confirm this plan: no confirmation at all, or one of a plan that has
    changed since its preview. `proposal` is the plan as it is now, to show and confirm."""

    def __init__(self, code: str, proposal: Proposal):
        super().__init__(code)
        self.proposal = proposal


def proposal(conn, shop_id: int, order_row: dict, order: Order, picks: Mapping[str, int], shipping: bool,
             token: str, keeps_stock: bool = False) -> Proposal:
    """The plan of this form and the invoice it makes, with the name and reference it would be
    claimed under now: the one source of the preview and of what create claims."""
    settings = shop_settings.load(shop_id, conn)
    language = accounting.LANGUAGES[settings.accounting]   # as documents.claim writes the document
    with decision.booking_rates(settings.vat_rates):
        plan = build(order, picks, shipping, token, hand_credits(order_row["id"], token, conn))
    count = conn.execute("SELECT count(*) AS n FROM cases WHERE order_id = %s AND kind = 'manual'",
                         (order_row["id"],)).fetchone()["n"]
    label = f"{order.name}-H{count + 1}"
    # The hand credit's name stands where a return's would: the reference reads `#1001 / #1001-H2`.
    plan = replace(plan, return_name=label)
    doc = {"trigger": plan.trigger, "return_name": label, "gateway": plan.gateway, "note": plan.note,
           "return_reason": plan.reason, "lines": [documents.line_dict(line) for line in plan.lines],
           # the same reference documents.claim stores, shop mark and all
           "reference": documents._shop_mark(conn, shop_id) + invoicing.reference(order.name, plan.key, label,
                                                                                   language=language)}
    return Proposal(plan, label, invoicing.draft(doc, order_name=order.name, keeps_stock=keeps_stock, language=language),
                    order.currency, settings.accounting)


def preview(shop_id: int, order_row: dict, order: Order, picks: Mapping[str, int], shipping: bool, token: str,
            keeps_stock: bool = False) -> Proposal:
    with db.transaction() as conn:
        return proposal(conn, shop_id, order_row, order, picks, shipping, token, keeps_stock)


@dataclass(frozen=True)
class Created:
    case_id: int
    document_id: int | None
    new: bool           # False: this form was submitted before, nothing more was made


def key(token: str) -> str:
    return f"manual-{token}"


def create(shop_id: int, order_row: dict, order: Order, picks: Mapping[str, int], shipping: bool,
           token: str, confirm: str | None = None, keeps_stock: bool = False) -> Created:
    """Claim the credit (once per form, ever), give it a case for the home list, and ask the
    order's pipeline to send it. Built again under the order's lock, so two forms sent at once
    cannot both credit the same item; made only when it is the plan the merchant confirmed
    (`confirm`: the digest of its preview), else Unconfirmed."""
    with db.transaction() as conn:
        # One hand-made credit at a time per order: labels count up without gaps, and each
        # sees the ones before it.
        conn.execute("SELECT id FROM orders WHERE id = %s AND shop_id = %s FOR UPDATE", (order_row["id"], shop_id))
        existing = conn.execute("SELECT id FROM cases WHERE shop_id = %s AND case_gid = %s",
                                (shop_id, key(token))).fetchone()
        if existing:
            doc = conn.execute("SELECT id FROM documents WHERE shop_id = %s AND doc_key = %s",
                               (shop_id, key(token))).fetchone()
            return Created(existing["id"], doc["id"] if doc else None, False)
        planned = proposal(conn, shop_id, order_row, order, picks, shipping, token, keeps_stock)
        if not confirm:
            raise Unconfirmed("confirmation_required", planned)
        if confirm != planned.digest:
            raise Unconfirmed("plan_changed", planned)
        plan = planned.plan
        case_id = conn.execute(
            """INSERT INTO cases (shop_id, order_id, case_gid, kind, label, status, amount, currency)
               VALUES (%s, %s, %s, 'manual', %s, 'processing', %s, %s) RETURNING id""",
            (shop_id, order_row["id"], plan.case_key, planned.label, plan.total, order.currency),
        ).fetchone()["id"]
        doc_id = documents.claim(conn, shop_id=shop_id, order={"id": order_row["id"], "name": order.name}, plan=plan,
                                 case_id=case_id, currency=order.currency, system=planned.system)
        timeline.add(conn, shop_id, order_row["id"], case_id, "manual_credit",
                     {"doc_key": plan.key, "total": str(plan.total)})
        orders.ask_again(conn, order_row["id"])
    return Created(case_id, doc_id, True)
