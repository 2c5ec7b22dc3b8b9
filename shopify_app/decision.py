"""Decision: from the facts of one order, which credit invoices must exist and where each
return stands. Pure: facts in, plans and states out; no I/O, so every rule tests without servers.

Each document has a stable key, so deciding again (a duplicate webhook, a retry, the
reconciliation pass) yields the same key and Postgres's unique constraint keeps it to one:
  return-<id>    a closed return's credit invoice (R1–R3, R5–R7)
  return-<id>-<refund id>  the refunds made while it was reopened, at its next close (R9)
  exchange-<id>  a closed and settled exchange's invoice (E1–E4)
  refund-<id>    a refund after its return's invoice (R4), or a refund with no return (F1–F3)
  correction-<refund id>  F3: a refund invoiced while pending whose money then failed, corrected
`existing` maps the keys already claimed to the refunds each one covers, so a refund is never
on two documents. `start` is where automatic invoicing begins (the shop's install, or an earlier
date the merchant chose): a return closed or a refund made before it was the bookkeeper's to
handle, so it gets no document here ("none needed", before_start).
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from .facts import Order, Refund, Return, Transaction
from .money import ZERO, plain, split, to_money

SUPPORTED_VAT = (Decimal(0), Decimal(11), Decimal(24))

# Line kinds, as in the scenario format.
ITEM, EXCHANGE_ITEM, SHIPPING = "item", "exchange_item", "shipping"
RETURN_SHIPPING_FEE, RESTOCKING_FEE, ADJUSTMENT = "return_shipping_fee", "restocking_fee", "adjustment"

# Case states the decision can see; `processing`, `created` and `failed` (Payday side) come from
# the documents themselves (status.py).
OPEN, PENDING_SETTLEMENT, NONE_NEEDED, FAILED, DOCUMENTED = (
    "open", "pending_settlement", "none_needed", "failed", "documented")


@dataclass(frozen=True)
class Reason:
    code: str
    params: tuple = ()   # ((name, value), ...) — frozen, and rendered in the merchant's language

    def as_dict(self) -> dict:
        return {"code": self.code, "params": dict(self.params)}


def reason(code: str, **params) -> Reason:
    return Reason(code, tuple(sorted((k, str(v)) for k, v in params.items())))


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    sku: str | None
    quantity: int          # negative for what comes back to the shop, positive for what goes out
    amount: Decimal        # VAT included; a credit negative, a charge positive
    vat_rate: Decimal
    source: str | None = None   # a hand credit's order line or shipping line, so it is not credited twice


@dataclass(frozen=True)
class Plan:
    key: str
    trigger: str                    # return_close | refund | exchange_settled
    case_key: str
    return_id: str | None
    return_name: str | None
    refund_ids: tuple[str, ...]
    lines: tuple[Line, ...]
    gateway: str | None
    corrects: str | None = None     # a correction's original document key (its reference names it)
    dated: datetime | None = None   # the trigger's moment: the invoice's date
    paid: datetime | None = None    # when the refund's money moved: the invoice's payment date
    note: str | None = None         # the merchant's note on the refunds (why), carried to the invoice
    reason: str | None = None       # the return's reasons (Shopify's names), carried to the invoice

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


@dataclass(frozen=True)
class Case:
    key: str                 # the return's or the lone refund's GID
    kind: str                # return | exchange | refund
    label: str               # #1001-R1, or the refund's own label
    state: str
    reason: Reason | None = None
    amount: Decimal | None = None
    return_id: str | None = None


@dataclass(frozen=True)
class Decision:
    cases: tuple[Case, ...]
    plans: tuple[Plan, ...]
    currency: str = "ISK"
    extra: dict = field(default_factory=dict)


class UnsupportedVat(Exception):
    def __init__(self, rate: Decimal, what: str):
        super().__init__(f"VAT {rate} % on {what}")
        self.rate, self.what = rate, what


def numeric_id(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


# --- money that moved ----------------------------------------------------------------------

def _refund_money(refund: Refund) -> Decimal:
    """Money of a refund that moved or is moving: SUCCESS and PENDING refund transactions."""
    return sum((t.amount for t in refund.transactions if t.kind == "REFUND" and t.status in ("SUCCESS", "PENDING")), ZERO)


def refunded_quantities(order: Order) -> dict[str, int]:
    """Per line item, how many Shopify refunds gave money back for (R6: items taken back
    without money do not count)."""
    counts: dict[str, int] = {}
    for refund in order.refunds:
        if _refund_money(refund) > 0:
            for line in refund.lines:
                counts[line.line_item_id] = counts.get(line.line_item_id, 0) + line.quantity
    return counts


def refunded_shipping(order: Order) -> dict[str, Decimal]:
    """Per shipping line, the shipping Shopify refunds gave money back for, VAT included."""
    amounts: dict[str, Decimal] = {}
    for refund in order.refunds:
        if _refund_money(refund) > 0:
            for ship in refund.shipping:
                if ship.shipping_line_id:
                    amounts[ship.shipping_line_id] = amounts.get(ship.shipping_line_id, ZERO) + ship.gross
    return amounts


def _failed(refund: Refund) -> bool:
    """F3: a refund whose money failed (every refund transaction FAILURE or ERROR)."""
    moves = [t for t in refund.transactions if t.kind == "REFUND"]
    return bool(moves) and all(t.status in ("FAILURE", "ERROR") for t in moves)


def _pending(transactions) -> list[Transaction]:
    return [t for t in transactions if t.status in ("PENDING", "AWAITING_RESPONSE")]


def refund_gateway(order: Order, refunds) -> str | None:
    for refund in refunds:
        for t in refund.transactions:
            if t.kind == "REFUND" and t.gateway:
                return t.gateway
    sales = [t for t in order.transactions if t.kind in ("SALE", "CAPTURE") and t.gateway]
    return sales[0].gateway if sales else None


# --- VAT -----------------------------------------------------------------------------------

# D3 in general form: the rates the shop's accounting system can book (Payday's three, or the
# rates a Danish shop mapped to a product or account). An implicit argument of every line
# builder below, set around a decision by `booking_rates`, rather than threaded through each.
_BOOKABLE: ContextVar[frozenset] = ContextVar("bookable_vat", default=frozenset(SUPPORTED_VAT))


@contextmanager
def booking_rates(rates):
    token = _BOOKABLE.set(frozenset(Decimal(r) for r in rates))
    try:
        yield
    finally:
        _BOOKABLE.reset(token)


def unbookable(exc: UnsupportedVat) -> Reason:
    bookable = _BOOKABLE.get()
    if bookable == frozenset(SUPPORTED_VAT):   # Payday's fixed three: fix the VAT in Shopify
        return reason("unsupported_vat_rate", rate=exc.rate, item=exc.what)
    return reason("unbookable_vat_rate", rate=exc.rate, item=exc.what,
                  rates=", ".join(f"{plain(r)}%" for r in sorted(bookable)) or "–")


def line_rate(rates: tuple[Decimal, ...]) -> Decimal:
    """A line's VAT rate as Shopify taxed it: its tax lines' rates together."""
    return plain(sum(rates, ZERO)) if rates else ZERO


def vat_rate(rates: tuple[Decimal, ...], what: str) -> Decimal:
    rate = line_rate(rates)
    for supported in _BOOKABLE.get():
        if rate == supported:
            return plain(supported)
    raise UnsupportedVat(rate, what)


def listed_gross(order: Order, amount: Decimal, rate: Decimal) -> Decimal:
    """VAT-inclusive value of an amount as the shop lists it."""
    if order.taxes_included:
        return amount
    return to_money(amount * (Decimal(100) + rate) / Decimal(100), order.currency)


# --- lines ---------------------------------------------------------------------------------

def _item_lines(order: Order, refunds) -> list[Line]:
    """Refunded items, one line per order line, summed over the refunds (R3 merges)."""
    grouped: "OrderedDict[str, list]" = OrderedDict()
    for refund in refunds:
        for rl in refund.lines:
            qty, amount = grouped.get(rl.line_item_id, (0, ZERO))
            grouped[rl.line_item_id] = (qty + rl.quantity, amount + rl.gross)
    lines = []
    for line_id, (qty, amount) in grouped.items():
        item = order.line_items.get(line_id)
        title = item.title if item else line_id
        rate = vat_rate(item.vat_rates if item else (), title)
        if qty or amount:
            lines.append(Line(ITEM, title, item.sku if item else None, -qty, -amount, rate))
    return lines


def _shipping_lines(order: Order, refunds) -> list[Line]:
    """C2: the original shipping, credited when a refund says so."""
    lines = []
    for refund in refunds:
        for rs in refund.shipping:
            if rs.gross == 0:
                continue
            ship = order.shipping_lines.get(rs.shipping_line_id) if rs.shipping_line_id else None
            title = ship.title if ship else "Shipping"
            lines.append(Line(SHIPPING, title, None, -1, -rs.gross, vat_rate(ship.vat_rates if ship else (), title)))
    return lines


def _returned_item_lines(order: Order, ret: Return) -> list[Line]:
    """An exchange's returned goods, from the return itself (its refund carries no lines)."""
    lines = []
    for rl in ret.lines:
        item = order.line_items.get(rl.line_item_id) if rl.line_item_id else None
        title = item.title if item else "Returned item"
        rate = vat_rate(item.vat_rates if item else (), title)
        lines.append(Line(ITEM, title, item.sku if item else None, -rl.quantity, -listed_gross(order, rl.value, rate), rate))
    return lines


def _exchange_item_lines(order: Order, ret: Return) -> list[Line]:
    lines = []
    for ex in ret.exchange_lines:
        for li in ex.line_items:
            rate = vat_rate(li.vat_rates, li.title)
            lines.append(Line(EXCHANGE_ITEM, li.title, li.sku, li.quantity,
                              listed_gross(order, li.unit_price * li.quantity, rate), rate))
    return lines


def _fee_lines(order: Order, ret: Return) -> list[Line]:
    """R5: fees the customer pays are their own charged lines. A restocking fee carries its
    line's VAT; a return shipping fee follows the goods it carried back: one rate → that rate,
    several → one fee line per rate, split in proportion to the returned goods' amounts (VAT
    included) at each rate, as F2 splits (Shopify gives the fee no tax line before processing)."""
    lines = []
    carried: "OrderedDict[Decimal, Decimal]" = OrderedDict()
    for rl in ret.lines:
        item = order.line_items.get(rl.line_item_id) if rl.line_item_id else None
        rate = vat_rate(item.vat_rates if item else (), item.title if item else "Returned item")
        carried[rate] = carried.get(rate, ZERO) + listed_gross(order, rl.value, rate)
        if rl.restocking_fee:
            # The title is the item's; the invoice's Icelandic label says it is a fee (invoicing.py).
            lines.append(Line(RESTOCKING_FEE, item.title if item else "", None, 1, rl.restocking_fee, rate))
    for fee in ret.shipping_fees:
        if fee:
            lines += [Line(RETURN_SHIPPING_FEE, "Return shipping", None, 1, part, rate)
                      for rate, part in _by_rate(fee, carried or {Decimal(24): Decimal(1)}, order.currency)]
    return lines


def _by_rate(amount: Decimal, weights: "Mapping[Decimal, Decimal]", currency: str) -> list[tuple[Decimal, Decimal]]:
    """`amount` split across VAT rates in proportion to `weights` (D5: rounded to the minor unit,
    the parts adding up exactly), the highest rate first; parts of zero are left out."""
    rates = sorted(weights, reverse=True)
    return [(rate, part) for rate, part in zip(rates, split(amount, [weights[r] for r in rates], currency))
            if part != 0]


def _adjustment_lines(order: Order, difference: Decimal) -> list[Line]:
    """F2: money no line explains. Its VAT follows the order: one rate → that rate; several →
    split in proportion to what the customer paid at each rate as the order was placed, VAT
    included (items at the price paid, shipping at its own rate), whether the shop lists prices
    with or without VAT, to the minor unit exactly (D5)."""
    if difference == 0:
        return []
    weights: "OrderedDict[Decimal, Decimal]" = OrderedDict()
    exchanged = {li.id for ret in order.returns for ex in ret.exchange_lines for li in ex.line_items}
    for item in order.line_items.values():
        if item.id in exchanged:   # the original sale's amounts, not what an exchange added
            continue
        rate = vat_rate(item.vat_rates, item.title)
        weights[rate] = weights.get(rate, ZERO) + listed_gross(order, item.unit_price * item.quantity, rate)
    for ship in order.shipping_lines.values():
        rate = vat_rate(ship.vat_rates, ship.title)
        weights[rate] = weights.get(rate, ZERO) + listed_gross(order, ship.price, rate)
    return [Line(ADJUSTMENT, "Adjustment (refund not matched by lines)", None, 1, part, rate)
            for rate, part in _by_rate(difference, weights or {Decimal(24): Decimal(1)}, order.currency)]


def _balanced(order: Order, lines: list[Line], refunded: Decimal) -> list[Line]:
    """Make the total equal the money that moved (D3). A net credit must equal the money paid
    back; a net charge is what the customer paid (we only get here once nothing is owed)."""
    explained = sum((line.amount for line in lines), ZERO)
    if explained <= 0 or refunded > 0:
        target = -refunded if explained <= 0 else explained
        return lines + _adjustment_lines(order, target - explained)
    return lines


# --- settlement ----------------------------------------------------------------------------

def _waiting_for(order: Order, refunds) -> Reason | None:
    """E1: what keeps the order from being settled, or None when every payment is."""
    if order.outstanding > 0:
        return reason("customer_owes", amount=order.outstanding, currency=order.currency)
    refund_tx = [t for r in refunds for t in _pending(r.transactions)]
    if refund_tx:
        return reason("refund_pending", amount=sum((t.amount for t in refund_tx), ZERO), currency=order.currency)
    sales = _pending(t for t in order.transactions if t.kind != "REFUND")
    if sales:
        return reason("payment_pending", amount=sum((t.amount for t in sales), ZERO), currency=order.currency)
    return None


def _refund_owed(order: Order, lines: list[Line], refunds) -> Reason | None:
    """An exchange that leaves the customer money back is settled only once that money went
    out: a refund that failed leaves it owed (E1: every refund owed has completed)."""
    owed = -sum((line.amount for line in lines), ZERO) - sum((_refund_money(r) for r in refunds), ZERO)
    return reason("refund_owed", amount=owed, currency=order.currency) if owed > 0 else None


# --- the decision --------------------------------------------------------------------------

def _before(start: datetime | None, moment: datetime | None) -> bool:
    # Shopify's times have whole seconds: what happened within the start's second counts as after.
    return start is not None and moment is not None and moment < start.replace(microsecond=0)


def decide(order: Order, existing: Mapping[str, frozenset[str]] | None = None,
           start: datetime | None = None, reopened: frozenset[str] = frozenset()) -> Decision:
    """`reopened`: the returns last seen open again after their invoice (R9): their next close
    credits what was refunded meanwhile (Shopify keeps only the latest close's time)."""
    existing = dict(existing or {})
    covered = set().union(*existing.values()) if existing else set()
    by_return: dict[str, list[Refund]] = {}
    for refund in order.refunds:
        by_return.setdefault(refund.return_id, []).append(refund)
    cases, plans = [], []
    if order.test:
        return _test_order(order)
    for ret in order.returns:
        case, new = _decide_return(order, ret, by_return.get(ret.id, []), existing, covered, start,
                                   ret.id in reopened)
        cases.append(case)
        plans.extend(new)
    known_returns = {r.id for r in order.returns}
    for refund in order.refunds:
        if refund.return_id is None or refund.return_id not in known_returns:
            case, new = _decide_lone_refund(order, refund, existing, start)
            cases.append(case)
            plans.extend(new)
    plans.extend(_corrections(order, existing))
    return Decision(cases=tuple(cases), plans=tuple(plans), currency=order.currency)


def _corrections(order: Order, existing: Mapping[str, frozenset[str]]) -> list[Plan]:
    """F3: a refund invoiced while its money was pending, whose money then failed, gets one
    correcting invoice: the lines it put on that invoice with the opposite sign, its reference
    naming the invoice it corrects. Once per refund, whatever else happens on the order."""
    returns = {r.id: r for r in order.returns}
    plans = []
    for refund in order.refunds:
        key = f"correction-{numeric_id(refund.id)}"
        corrected = next((k for k, ids in existing.items() if refund.id in ids
                          and k.split("-", 1)[0] in ("return", "refund", "exchange")), None)
        if corrected is None or key in existing or not _failed(refund):
            continue
        attempted = sum((t.amount for t in refund.transactions if t.kind == "REFUND"), ZERO)
        credited = _balanced(order, _item_lines(order, [refund]) + _shipping_lines(order, [refund]), attempted)
        ret = returns.get(refund.return_id)
        plans.append(Plan(key, "correction", ret.id if ret else refund.id, ret.id if ret else None,
                          ret.name if ret else None, (refund.id,),
                          tuple(Line(l.kind, l.description, l.sku, -l.quantity, -l.amount, l.vat_rate) for l in credited),
                          refund_gateway(order, [refund]), corrects=corrected,
                          dated=_moved_at([refund], ("FAILURE", "ERROR"))))
    return plans


def _moved_at(refunds, statuses=("SUCCESS",)) -> datetime | None:
    """When the refunds' money last moved (or, for a correction, failed)."""
    return max((t.processed_at for r in refunds for t in r.transactions
                if t.kind == "REFUND" and t.status in statuses and t.processed_at), default=None)


def _test_order(order: Order) -> Decision:
    """D7: a test order's returns and refunds never reach the books; each is shown as none needed."""
    why = reason("test_order")
    cases = [Case(r.id, "exchange" if r.is_exchange else "return", r.name, NONE_NEEDED, why, None, r.id)
             for r in order.returns]
    returns = {r.id for r in order.returns}
    cases += [Case(f.id, "refund", _refund_label(order, f), NONE_NEEDED, why, None, None)
              for f in order.refunds if f.return_id not in returns]
    return Decision(cases=tuple(cases), plans=(), currency=order.currency)


def _decide_return(order, ret: Return, refunds, existing, covered, start, reopened=False) -> tuple[Case, list[Plan]]:
    kind = "exchange" if ret.is_exchange else "return"
    main_key = f"{kind}-{numeric_id(ret.id)}"

    def case(state, why=None, amount=None):
        return Case(ret.id, kind, ret.name, state, why, amount, ret.id)

    if ret.status in ("DECLINED", "CANCELED") and main_key not in existing:
        return case(NONE_NEEDED, reason("return_" + ret.status.lower())), []
    if ret.status != "CLOSED":
        return case(OPEN, reason("waiting_for_close")), []   # R1: nothing before the close

    # R6, F3: a refund that moved no money (items taken back without refund, or money that
    # failed) puts nothing on an invoice; except in a return with fees, where the items' value
    # went to the fees (R10: the customer may even owe the rest).
    fees = bool(ret.shipping_fees) or any(rl.restocking_fee for rl in ret.lines)
    live = [r for r in refunds if r.id not in covered
            and (_refund_money(r) > 0 or (fees and r.lines and not r.transactions))]
    plans: list[Plan] = []
    early = main_key not in existing and _before(start, _due_at(ret, refunds))
    try:
        if early:
            # Closed before Skilvís's start: what it covered is in the books already; a refund
            # after the close is still a document of its own (R4), by its own date below.
            live = [] if ret.is_exchange else [r for r in live if r.created_at > ret.closed_at]
        elif main_key not in existing:
            if ret.is_exchange:
                # An exchange's invoice waits for settlement and then covers every refund made
                # for it until then, whether before or after the close.
                before, after = live, []
                lines = (_returned_item_lines(order, ret) + _exchange_item_lines(order, ret)
                         + _shipping_lines(order, before) + _fee_lines(order, ret))
                waiting = _waiting_for(order, refunds) or _refund_owed(order, lines, before)
                if waiting:
                    return case(PENDING_SETTLEMENT, waiting), []   # E1–E4
                trigger = "exchange_settled"
            else:
                before = [r for r in live if ret.closed_at is None or r.created_at <= ret.closed_at]
                after = [r for r in live if r not in before]
                lines = _item_lines(order, before) + _shipping_lines(order, before) + _fee_lines(order, ret)
                trigger = "return_close"
            refunded = sum((_refund_money(r) for r in before), ZERO)
            if not lines and refunded == 0:
                if not after and not _documented(ret, refunds, existing):
                    why = "refund_failed" if any(_failed(r) for r in refunds) else "nothing_refunded"
                    return case(NONE_NEEDED, reason(why)), []   # R8, F3
            elif sum((line.amount for line in lines), ZERO) > 0 and (waiting := _waiting_for(order, refunds)):
                return case(PENDING_SETTLEMENT, waiting), []   # a fee larger than the refund: E4's rule
            else:
                lines = _balanced(order, lines, refunded)
                plans.append(Plan(main_key, trigger, ret.id, ret.id, ret.name, tuple(r.id for r in before),
                                  tuple(lines), refund_gateway(order, before), dated=_due_at(ret, refunds),
                                  paid=_moved_at(before), note=_notes(before), reason=_reasons(ret)))
            live = after
        elif reopened and not ret.is_exchange:
            # R9: refunds made while a closed return was reopened waited for its next close, which
            # credits them together on one new invoice; fees were charged the first time.
            again = [r for r in live if ret.closed_at and r.created_at <= ret.closed_at
                     and not _before(start, r.created_at)]
            if again:
                lines = _balanced(order, _item_lines(order, again) + _shipping_lines(order, again),
                                  sum((_refund_money(r) for r in again), ZERO))
                plans.append(Plan(f"{main_key}-{numeric_id(again[0].id)}", "return_close", ret.id, ret.id, ret.name,
                                  tuple(r.id for r in again), tuple(lines), refund_gateway(order, again),
                                  dated=ret.closed_at, paid=_moved_at(again), note=_notes(again),
                                  reason=_reasons(ret)))
                live = [r for r in live if r not in again]
        for refund in live:   # R4: a refund after the close gets its own invoice
            if _before(start, refund.created_at):
                early = True
                continue
            if ret.is_exchange and _waiting_for(order, [refund]):
                return case(PENDING_SETTLEMENT, _waiting_for(order, [refund])), plans
            plan = _refund_plan(order, refund, ret)
            if plan:
                plans.append(plan)
    except UnsupportedVat as exc:
        return case(FAILED, unbookable(exc)), []
    if plans or _documented(ret, refunds, existing):
        return case(DOCUMENTED, amount=sum((p.total for p in plans), ZERO) if plans else None), plans
    if early:
        return case(NONE_NEEDED, _before_start(start)), plans
    return case(NONE_NEEDED, reason("nothing_refunded")), plans


def _before_start(start: datetime) -> Reason:
    return reason("before_start", date=start.isoformat())


def _due_at(ret: Return, refunds) -> datetime | None:
    """When a return's own document is due: at the close; an exchange's when it settles (its
    last refund, or the close if that came later)."""
    moments = [ret.closed_at] + ([r.created_at for r in refunds] if ret.is_exchange else [])
    return max((m for m in moments if m), default=None)


def _documented(ret: Return, refunds, existing) -> bool:
    keys = {f"return-{numeric_id(ret.id)}", f"exchange-{numeric_id(ret.id)}"}
    keys.update(f"refund-{numeric_id(r.id)}" for r in refunds)
    return any(k in existing for k in keys)


def _refund_plan(order: Order, refund: Refund, ret: Return | None) -> Plan | None:
    refunded = _refund_money(refund)
    if refunded == 0:
        return None
    lines = _item_lines(order, [refund]) + _shipping_lines(order, [refund])
    lines = _balanced(order, lines, refunded)
    if not lines:
        return None
    return Plan(f"refund-{numeric_id(refund.id)}", "refund", ret.id if ret else refund.id,
                ret.id if ret else None, ret.name if ret else None, (refund.id,), tuple(lines),
                refund_gateway(order, [refund]), dated=refund.created_at, paid=_moved_at([refund]),
                note=_notes([refund]))


def _notes(refunds) -> str | None:
    return "; ".join(dict.fromkeys(r.note.strip() for r in refunds if r.note and r.note.strip())) or None


def _reasons(ret: Return) -> str | None:
    return ", ".join(ret.reasons) or None


def _refund_label(order: Order, refund: Refund) -> str:
    # The merchant tells a refund by its order, kind, amount and day (the list shows each);
    # Shopify's refund id means nothing to them.
    return order.name


def _decide_lone_refund(order: Order, refund: Refund, existing, start) -> tuple[Case, list[Plan]]:
    """F1–F3: a refund outside any return is invoiced on its own, when it is made."""
    label = _refund_label(order, refund)

    def case(state, why=None, amount=None):
        return Case(refund.id, "refund", label, state, why, amount, None)

    key = f"refund-{numeric_id(refund.id)}"
    if key in existing:
        return case(DOCUMENTED), []
    if _failed(refund):
        return case(NONE_NEEDED, reason("refund_failed")), []
    if _before(start, refund.created_at):
        return case(NONE_NEEDED, _before_start(start)), []
    try:
        plan = _refund_plan(order, refund, None)
    except UnsupportedVat as exc:
        return case(FAILED, unbookable(exc)), []
    if plan is None:
        return case(NONE_NEEDED, reason("nothing_refunded")), []
    return case(DOCUMENTED, amount=plan.total), [plan]
