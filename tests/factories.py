"""Builders of order facts (facts.py dataclasses) for the pure rule tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from shopify_app.facts import (Customer, ExchangeLine, LineItem, Order, Refund, RefundLine, RefundShipping, Return,
                               ReturnLine, ShippingLine, Transaction)
from shopify_app.money import vat_of_gross

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
D = Decimal


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def item(n: int, sku: str, price, qty: int, rate="24", title=None, currency="ISK", taxes_included=True) -> LineItem:
    price, rate = D(str(price)), D(rate)
    total = price * qty
    tax = vat_of_gross(total, rate, currency) if taxes_included else (total * rate / 100).quantize(D(1))
    return LineItem(f"gid://shopify/LineItem/{n}", sku, title or sku, qty, price, (rate,) if rate else (), tax)


def sale(amount, status="SUCCESS", n=1, gateway="shopify_payments", kind="SALE") -> Transaction:
    return Transaction(f"gid://shopify/OrderTransaction/{n}", kind, status, gateway, D(str(amount)))


def refund(n: int, *, lines=(), shipping=(), money=None, status="SUCCESS", minute=10, return_id=None,
           gateway="shopify_payments") -> Refund:
    """lines: [(line item, qty)] at the line's listed price; money: what moved (default: their value)."""
    rlines = tuple(RefundLine(li.id, q, li.unit_price * q) for li, q in lines)
    rship = tuple(RefundShipping(s.id, D(str(v))) for s, v in shipping)
    value = sum((rl.gross for rl in rlines), D(0)) + sum((rs.gross for rs in rship), D(0))
    amount = D(str(money)) if money is not None else value
    txs = (Transaction(f"gid://shopify/OrderTransaction/{100 + n}", "REFUND", status, gateway, amount),) if amount else ()
    return Refund(f"gid://shopify/Refund/{n}", str(n), at(minute), return_id, rlines, rship, txs)


def a_return(n: int, *, lines=(), status="OPEN", closed_minute=None, fee=None, exchange=(), restocking_percent=None,
             name=None) -> Return:
    rlines = []
    for li, q in lines:
        value = li.unit_price * q
        restock = (value * D(str(restocking_percent)) / 100).quantize(D(1)) if restocking_percent else D(0)
        rlines.append(ReturnLine(li.id, q, 0, value, restock))
    ex = tuple(ExchangeLine(f"gid://shopify/ExchangeLineItem/{li.id.rsplit('/', 1)[-1]}", li.quantity, li.sku, li.title, (li,))
               for li in exchange)
    return Return(f"gid://shopify/Return/{n}", name or f"#1001-R{n}", status,
                  at(closed_minute) if closed_minute is not None else None, tuple(rlines), ex,
                  (D(str(fee)),) if fee else ())


def order(lines, *, refunds=(), returns=(), transactions=None, outstanding="0", shipping=None, currency="ISK",
          taxes_included=True, name="#1001") -> Order:
    shipping_lines = {s.id: s for s in ([shipping] if shipping else [])}
    total = sum((li.unit_price * li.quantity for li in lines), D(0)) + sum((s.price for s in shipping_lines.values()), D(0))
    return Order(
        id="gid://shopify/Order/1", legacy_id="1", name=name, currency=currency, taxes_included=taxes_included,
        updated_at=at(0), outstanding=D(str(outstanding)),
        customer=Customer(email="anna@example.is", name="Anna Jónsdóttir"),
        line_items={li.id: li for li in lines}, shipping_lines=shipping_lines,
        transactions=tuple(transactions if transactions is not None else [sale(total)]),
        refunds=tuple(refunds), returns=tuple(returns))


def shipping_line(price, rate="24", title="Heimsending") -> ShippingLine:
    return ShippingLine("gid://shopify/ShippingLine/1", title, D(str(price)), (D(rate),))
