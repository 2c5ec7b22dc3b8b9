"""The Shopify stand-in's memory: shops, orders, returns, refunds and transactions.

docs/SHOPIFY_MODEL.md is the contract. Each verb is one of the scenario verbs of
../shared/scenarios/README.md: it changes the order the way that page says, moves the order's
`updatedAt`, and queues the webhooks Shopify sends for the change (payload shapes in
payloads.py). GraphQL reads this memory through nodes.py.

Money is Decimal, rounded to the currency's minor unit. Prices are "as listed": VAT included
when the shop's `taxes_included`, excluded otherwise. Money that changes hands (payments,
refunds, return fees, refunded shipping) always includes VAT.

Choices where SHOPIFY_MODEL.md leaves room (each keeps the scenarios' money right):
- A restocking fee is its percentage of the returned quantity's value *including VAT* (the
  fee itself includes VAT), rounded to the minor unit.
- A refund of a return uses up the return's fees: without `amount`, as much of the fees as the
  refund's worth covers; with `amount`, all of them ("any fees already taken off").
- `totalOutstandingSet` = max(0, what the order now costs − payments net of refunds, pending
  ones included). What the order now costs: its line items (exchange items too) and shipping,
  plus the fees of open or closed returns, less what refunds credited (refunded lines and
  shipping) and less the items returned in an exchange (they pay for the new ones).
- An exchange's new line items are made, and count as processed, when its return opens; a
  return line counts as processed once refunded, or entirely once its return is closed.
- Canceling a return removes the exchange items it made; declining needs REQUESTED, closing
  needs OPEN, reopening needs CLOSED.
- A returned line may carry `"reason": "<name>"` (beyond the shared README): served as the
  line's `returnReasonDefinition`, null without one.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from . import app_toml
from . import payloads
from .money import ZERO, MoneyError, rounded, vat_in
from .money import decimal as _decimal

REQUESTED, OPEN, CLOSED, DECLINED, CANCELED = "REQUESTED", "OPEN", "CLOSED", "DECLINED", "CANCELED"
SALE, REFUND = "SALE", "REFUND"
SUCCESS, PENDING, FAILURE = "SUCCESS", "PENDING", "FAILURE"
_MONEY_STATUS = {"success": SUCCESS, "pending": PENDING, "failure": FAILURE}
FIRST_ID = 6_000_000_000_001  # past 32 bits, as Shopify's ids are
ORDER_WINDOW = timedelta(days=60)  # what read_orders sees without read_all_orders

DEFAULT_SEED_ORDER = {
    "customer": {"email": "seed@example.is", "company": "1203894569"},
    "lines": [{"sku": "SEED-1", "title": "Seed item", "price": "2500", "quantity": 2, "tax_rate": "24"}],
    "payment": {"gateway": "shopify_payments", "status": "success"},
}


class StoreError(ValueError):
    """A change Shopify would refuse: an unknown SKU, more items than the order has, a return
    in the wrong status, an amount that is not one."""


def decimal(value) -> Decimal:
    try:
        return _decimal(value)
    except MoneyError as exc:
        raise StoreError(str(exc)) from None


def _quantity(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StoreError(f"a quantity must be a whole number above 0, not {value!r}")
    return value


def _optional_amount(value) -> Decimal | None:
    """A fee or percentage from a scenario; absent and zero both mean none."""
    if value is None or value == "":
        return None
    amount = decimal(value)
    if amount < 0:
        raise StoreError(f"a fee cannot be negative: {value!r}")
    return amount or None


# --- the model --------------------------------------------------------------------------

@dataclass(eq=False)
class Shop:
    domain: str
    id: int
    currency: str
    taxes_included: bool
    name: str
    timezone: str
    created_at: datetime
    orders: list = field(default_factory=list, repr=False)
    customers: dict = field(default_factory=dict, repr=False)
    next_number: int = 1001
    # Level-2 protected customer data (name, e-mail, phone, address) approved for the app; when
    # False every GraphQL field carrying it is null with an ACCESS_DENIED error (nodes.py).
    protected_customer_data: bool = True
    # The scopes Shopify granted the app on this shop (read_all_orders only once approved).
    granted_scopes: list = field(default_factory=list)


class _Priced:
    """Something with a unit price as listed, a quantity and a VAT rate, on an order."""

    order: "Order"
    unit_price: Decimal
    quantity: int
    tax_rate: Decimal

    unit_discount = ZERO   # a line-level discount, per unit (Shopify's discount allocation / quantity)

    @property
    def paid_unit(self) -> Decimal:
        """The unit price after the line's discounts: what taxes, refunds and returns count."""
        return self.unit_price - self.unit_discount

    def listed(self, quantity: int | None = None) -> Decimal:
        return self.paid_unit * (self.quantity if quantity is None else quantity)

    def tax(self, quantity: int | None = None) -> Decimal:
        return vat_in(self.listed(quantity), self.tax_rate, self.order.taxes_included, self.order.currency)

    def gross(self, quantity: int | None = None) -> Decimal:
        listed = self.listed(quantity)
        return listed if self.order.taxes_included else listed + self.tax(quantity)


@dataclass(eq=False)
class LineItem(_Priced):
    id: int
    order: "Order" = field(repr=False)
    sku: str
    title: str
    quantity: int
    unit_price: Decimal
    tax_rate: Decimal
    fulfillment_line_item_id: int
    exchange: "ExchangeLine | None" = field(default=None, repr=False)
    unit_discount: Decimal = ZERO

    @property
    def discount(self) -> Decimal:
        """The whole line's discount, as Shopify allocates it."""
        return self.unit_discount * self.quantity

    @property
    def refunded_quantity(self) -> int:
        return sum(rl.quantity for r in self.order.refunds for rl in r.lines if rl.line_item is self)

    @property
    def returned_quantity(self) -> int:
        return sum(rl.quantity for ret in self.order.returns if ret.status not in (DECLINED, CANCELED)
                   for rl in ret.lines if rl.line_item is self)


@dataclass(eq=False)
class ShippingLine:
    id: int
    order: "Order" = field(repr=False)
    title: str
    price: Decimal
    tax_rate: Decimal

    def tax(self) -> Decimal:
        return vat_in(self.price, self.tax_rate, self.order.taxes_included, self.order.currency)

    def gross(self) -> Decimal:
        return self.price if self.order.taxes_included else self.price + self.tax()


@dataclass(eq=False)
class Transaction:
    id: int
    order: "Order" = field(repr=False)
    kind: str
    status: str
    gateway: str
    amount: Decimal
    created_at: datetime
    processed_at: datetime | None
    parent: "Transaction | None" = field(default=None, repr=False)
    refund: "Refund | None" = field(default=None, repr=False)


@dataclass(eq=False)
class ReturnLine:
    id: int
    ret: "Return" = field(repr=False)
    line_item: LineItem
    quantity: int
    restocking_fee_percent: Decimal | None
    restocking_fee_id: int
    reason: str | None = None   # the return reason's name (scenario line key `reason`)

    @property
    def restocking_fee(self) -> Decimal | None:
        if not self.restocking_fee_percent:
            return None
        order = self.ret.order
        return rounded(self.line_item.gross(self.quantity) * self.restocking_fee_percent / 100, order.currency)

    @property
    def refunded_quantity(self) -> int:
        return sum(rl.quantity for r in self.ret.refunds for rl in r.lines if rl.line_item is self.line_item)

    @property
    def processed_quantity(self) -> int:
        return self.quantity if self.ret.status == CLOSED else min(self.quantity, self.refunded_quantity)


@dataclass(eq=False)
class ExchangeLine(_Priced):
    id: int
    ret: "Return" = field(repr=False)
    sku: str
    title: str
    unit_price: Decimal
    quantity: int
    tax_rate: Decimal
    line_item: LineItem | None = None

    @property
    def order(self) -> "Order":
        return self.ret.order

    @property
    def processed_quantity(self) -> int:
        return self.quantity if self.line_item is not None else 0


@dataclass(eq=False)
class Return:
    id: int
    order: "Order" = field(repr=False)
    label: str
    number: int
    status: str
    created_at: datetime
    lines: list = field(default_factory=list)
    exchange_lines: list = field(default_factory=list)
    shipping_fee: Decimal | None = None
    shipping_fee_id: int | None = None
    refunds: list = field(default_factory=list, repr=False)
    closed_at: datetime | None = None
    request_approved_at: datetime | None = None
    decline: dict | None = None
    fees_taken: Decimal = ZERO

    @property
    def name(self) -> str:
        return f"{self.order.name}-R{self.number}"

    @property
    def active(self) -> bool:
        return self.status in (OPEN, CLOSED)

    @property
    def fees(self) -> Decimal:
        restocking = sum((line.restocking_fee or ZERO for line in self.lines), ZERO)
        return (self.shipping_fee or ZERO) + restocking

    @property
    def exchange_credit(self) -> Decimal:
        """Returned items that pay for the exchange items (those not refunded as money)."""
        if not (self.active and self.exchange_lines):
            return ZERO
        return sum((line.line_item.gross(line.quantity - line.refunded_quantity) for line in self.lines), ZERO)


@dataclass(eq=False)
class RefundLine:
    id: int
    refund: "Refund" = field(repr=False)
    line_item: LineItem
    quantity: int

    def listed(self) -> Decimal:
        return self.line_item.listed(self.quantity)

    def tax(self) -> Decimal:
        return self.line_item.tax(self.quantity)

    def gross(self) -> Decimal:
        return self.line_item.gross(self.quantity)


@dataclass(eq=False)
class Refund:
    id: int
    order: "Order" = field(repr=False)
    ret: Return | None
    created_at: datetime
    note: str | None
    lines: list = field(default_factory=list)
    shipping: Decimal = ZERO  # refunded shipping money, VAT included
    shipping_line: ShippingLine | None = None
    shipping_refund_id: int | None = None
    adjustment: Decimal = ZERO  # money moved minus what the lines and shipping are worth
    adjustment_id: int | None = None
    transactions: list = field(default_factory=list)

    @property
    def worth(self) -> Decimal:
        return sum((line.gross() for line in self.lines), ZERO) + self.shipping

    @property
    def shipping_tax(self) -> Decimal:
        if self.shipping_line is None:
            return ZERO
        return vat_in(self.shipping, self.shipping_line.tax_rate, True, self.order.currency)

    @property
    def shipping_listed(self) -> Decimal:
        return self.shipping if self.order.taxes_included else self.shipping - self.shipping_tax

    @property
    def refunded(self) -> Decimal:
        return sum((t.amount for t in self.transactions if t.status == SUCCESS), ZERO)


@dataclass(frozen=True)
class Totals:
    original: Decimal     # what the order cost when placed
    current: Decimal      # what it costs now (returns, exchanges, fees, refunded lines)
    received: Decimal     # SALE money that arrived
    pending: Decimal      # SALE money on its way
    refunded: Decimal     # REFUND money that left
    refund_pending: Decimal
    outstanding: Decimal
    financial_status: str


@dataclass(eq=False)
class Order:
    id: int
    shop: Shop = field(repr=False)
    number: int
    name: str
    created_at: datetime
    updated_at: datetime
    customer: dict
    customer_id: int
    address_id: int
    gateway: str
    line_items: list = field(default_factory=list)
    shipping_lines: list = field(default_factory=list)
    transactions: list = field(default_factory=list)
    returns: list = field(default_factory=list)
    refunds: list = field(default_factory=list)
    test: bool = False  # a test order (Bogus Gateway or a provider in test mode)

    @property
    def currency(self) -> str:
        return self.shop.currency

    @property
    def taxes_included(self) -> bool:
        return self.shop.taxes_included

    @property
    def discounts(self) -> Decimal:
        return sum((li.discount for li in self.line_items), ZERO)

    @property
    def sale(self) -> Transaction:
        return next(t for t in self.transactions if t.kind == SALE)

    def return_labeled(self, label: str) -> Return:
        for ret in self.returns:
            if ret.label == label:
                return ret
        raise StoreError(f"order {self.name} has no return {label!r}")

    def totals(self) -> Totals:
        goods = sum((li.gross() for li in self.line_items), ZERO) + sum((s.gross() for s in self.shipping_lines), ZERO)
        original = sum((li.gross() for li in self.line_items if li.exchange is None), ZERO) + \
            sum((s.gross() for s in self.shipping_lines), ZERO)
        fees = sum((ret.fees for ret in self.returns if ret.active), ZERO)
        credits = sum((r.worth for r in self.refunds), ZERO) + sum((ret.exchange_credit for ret in self.returns), ZERO)
        current = goods + fees - credits

        def money(kind, status):
            return sum((t.amount for t in self.transactions if t.kind == kind and t.status == status), ZERO)

        received, pending = money(SALE, SUCCESS), money(SALE, PENDING)
        refunded, refund_pending = money(REFUND, SUCCESS), money(REFUND, PENDING)
        outstanding = max(ZERO, current - (received + pending - refunded - refund_pending))
        return Totals(original, current, received, pending, refunded, refund_pending, outstanding,
                      _financial_status(current, received, pending, refunded))


def _financial_status(current: Decimal, received: Decimal, pending: Decimal, refunded: Decimal) -> str:
    if received == 0 and refunded == 0:
        return "PENDING" if pending or current > 0 else "PAID"
    if current - (received - refunded) > 0:
        return "PARTIALLY_PAID"
    if refunded > 0:
        return "REFUNDED" if refunded >= received else "PARTIALLY_REFUNDED"
    return "PAID"


@dataclass(frozen=True)
class Event:
    """One webhook event: every delivery of it carries the same id and the same body."""

    id: str
    shop: str
    topic: str
    payload: dict
    body: bytes
    triggered_at: datetime


# --- the store --------------------------------------------------------------------------

class Store:
    """Every shop of the stand-in. Thread-safe: the HTTP server reads while tests write."""

    def __init__(self, clock=None, requested_scopes=None):
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.lock = threading.RLock()
        # The scopes the app asks for (shopify.app.toml); a new shop is granted them less the
        # restricted ones (app_toml.default_grant).
        self.requested_scopes = app_toml.scope_list(app_toml.requested_scopes() if requested_scopes is None
                                                    else requested_scopes)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.shops: dict[str, Shop] = {}
            self.outbox: list[Event] = []
            self.objects: dict[int, object] = {}  # every id'd thing, for node(id:)
            self._ids = itertools.count(FIRST_ID)
            self._last_time: datetime | None = None
            self._muted = 0

    # --- plumbing ----------------------------------------------------------------------

    def now(self) -> datetime:
        """The clock, but strictly increasing, so every change has its own updatedAt."""
        with self.lock:
            now = self.clock()
            if self._last_time is not None and now <= self._last_time:
                now = self._last_time + timedelta(microseconds=1)
            self._last_time = now
            return now

    def _keep(self, cls, **fields):
        obj = cls(id=next(self._ids), **fields)
        self.objects[obj.id] = obj
        return obj

    @contextmanager
    def muted(self):
        """Changes made inside queue no webhooks (bulk seeding)."""
        with self.lock:
            self._muted += 1
            try:
                yield
            finally:
                self._muted -= 1

    def emit(self, shop: str, topic: str, payload: dict) -> Event | None:
        with self.lock:
            if self._muted:
                return None
            event = Event(str(uuid.uuid4()), shop, topic, payload,
                          json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), self.now())
            self.outbox.append(event)
            return event

    def drain(self) -> list[Event]:
        """Take every queued event, oldest first."""
        with self.lock:
            events, self.outbox = self.outbox, []
            return events

    def _changed(self, order: Order, *events: tuple[str, dict]) -> None:
        order.updated_at = self.now()
        for topic, payload in events:
            self.emit(order.shop.domain, topic, payload)
        self.emit(order.shop.domain, "orders/updated", payloads.order(order))

    def order(self, ref) -> Order:
        """An order by object, id or GraphQL id."""
        with self.lock:
            if isinstance(ref, Order):
                found = self.objects.get(ref.id)
            else:
                match = re.fullmatch(r"(?:gid://shopify/Order/)?(\d+)", str(ref))
                found = self.objects.get(int(match.group(1))) if match else None
            if not isinstance(found, Order):
                raise StoreError(f"no order {ref!r}")
            return found

    # --- shops and orders --------------------------------------------------------------

    def shop(self, domain: str) -> Shop:
        """The shop, made with defaults (ISK, VAT included) on first mention."""
        with self.lock:
            return self.shops.get(domain) or self.create_shop(domain)

    def create_shop(self, domain: str, *, currency: str = "ISK", taxes_included: bool = True,
                    name: str | None = None, timezone_name: str = "Atlantic/Reykjavik",
                    protected_customer_data: bool = True, granted_scopes=None) -> Shop:
        """A shop. `protected_customer_data`: whether the app is approved for Level-2 customer
        data here; `granted_scopes` (default: the requested scopes less read_all_orders)."""
        with self.lock:
            if domain in self.shops:
                raise StoreError(f"shop {domain} exists")
            granted = app_toml.default_grant(self.requested_scopes) if granted_scopes is None else \
                app_toml.scope_list(granted_scopes)
            shop = self._keep(Shop, domain=domain, currency=currency, taxes_included=bool(taxes_included),
                              name=name or domain.split(".")[0].replace("-", " ").title(),
                              timezone=timezone_name, created_at=self.now(),
                              protected_customer_data=bool(protected_customer_data), granted_scopes=granted)
            self.shops[domain] = shop
            return shop

    def granted_scope(self, domain: str) -> str:
        """The shop's granted scopes as the token endpoint reports them ("a,b"); for a shop not
        yet made, what a new one would be granted."""
        with self.lock:
            shop = self.shops.get(domain)
            scopes = shop.granted_scopes if shop else app_toml.default_grant(self.requested_scopes)
            return ",".join(scopes)

    def grant_scopes(self, shop: str, scopes) -> Event | None:
        """Shopify approved (and the merchant granted) more scopes for the app on this shop, e.g.
        "read_all_orders": they join the grant and app/scopes_update is queued. Nothing changes
        (and nothing is queued) when every scope was granted already."""
        with self.lock:
            the_shop = self.shop(shop)
            previous = list(the_shop.granted_scopes)
            current = previous + [s for s in app_toml.scope_list(scopes) if s not in previous]
            if current == previous:
                return None
            the_shop.granted_scopes = current
            return self.emit(shop, "app/scopes_update",
                             payloads.scopes_update(the_shop, next(self._ids), previous, current, self.now()))

    def visible(self, order: "Order") -> bool:
        """Whether the app may read the order: with read_all_orders any; without, only orders
        created in the last 60 days by the store's clock."""
        return "read_all_orders" in order.shop.granted_scopes or order.created_at > self.clock() - ORDER_WINDOW

    def _shop_for(self, domain: str, spec: dict) -> Shop:
        shop = self.shops.get(domain)
        if shop is None:
            return self.create_shop(domain, currency=spec.get("currency", "ISK"),
                                    taxes_included=spec.get("taxes_included", True))
        for key, have in (("currency", shop.currency), ("taxes_included", shop.taxes_included)):
            if key in spec and spec[key] != have:
                raise StoreError(f"shop {domain} has {key}={have!r}, the order asks for {spec[key]!r}")
        return shop

    def create_order(self, shop: str, spec: dict) -> Order:
        """An order as a scenario's `order` object describes it (plus the shop's `currency`
        and `taxes_included`), paid by one SALE. Queues no webhook (SHOPIFY_MODEL.md lists none)."""
        with self.lock:
            the_shop = self._shop_for(shop, spec)
            if not spec.get("lines"):
                raise StoreError("an order needs at least one line")
            number = self._order_number(the_shop, spec.get("name"))
            now = self._placed_at(spec)
            customer = dict(spec.get("customer") or {})
            email = customer.get("email") or f"customer{number}@example.is"
            customer["email"] = email
            customer_id = the_shop.customers.setdefault(email, next(self._ids))
            payment = spec.get("payment") or {}
            test = bool(spec.get("test", False))
            order = self._keep(Order, shop=the_shop, number=number, name=f"#{number}", created_at=now,
                               updated_at=now, customer=customer, customer_id=customer_id,
                               address_id=next(self._ids), test=test,
                               gateway=payment.get("gateway", "bogus" if test else "shopify_payments"))
            for line in spec["lines"]:
                order.line_items.append(self._line_item(order, line))
            if spec.get("shipping"):
                s = spec["shipping"]
                order.shipping_lines.append(self._keep(
                    ShippingLine, order=order, title=s.get("title", "Shipping"), price=decimal(s.get("price", 0)),
                    tax_rate=decimal(s.get("tax_rate", 0))))
            status = self._money_status(payment.get("status", "success"))
            order.transactions.append(self._keep(
                Transaction, order=order, kind=SALE, status=status, gateway=order.gateway,
                amount=order.totals().original, created_at=now, processed_at=None if status == PENDING else now))
            the_shop.orders.append(order)
            return order

    def _placed_at(self, spec: dict) -> datetime:
        """When the order was placed: `created_at` (ISO 8601; UTC when it has no offset), or
        `age_days` before the store's clock, or now."""
        if spec.get("created_at") is not None and spec.get("age_days") is not None:
            raise StoreError("an order takes created_at or age_days, not both")
        if spec.get("created_at") is not None:
            try:
                moment = datetime.fromisoformat(str(spec["created_at"]).replace("Z", "+00:00"))
            except ValueError:
                raise StoreError(f"created_at is an ISO 8601 time, not {spec['created_at']!r}") from None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        elif spec.get("age_days") is not None:
            try:
                moment = self.clock() - timedelta(days=float(spec["age_days"]))
            except (TypeError, ValueError):
                raise StoreError(f"age_days is a number of days, not {spec['age_days']!r}") from None
        else:
            return self.now()
        if moment > self.clock():
            raise StoreError("an order cannot be placed in the future")
        return moment

    def _order_number(self, shop: Shop, name) -> int:
        if name is None:
            number = shop.next_number
        else:
            match = re.fullmatch(r"#?(\d+)", str(name))
            if not match:
                raise StoreError(f"an order name is #<number>, not {name!r}")
            number = int(match.group(1))
        if any(o.number == number for o in shop.orders):
            raise StoreError(f"{shop.domain} already has order #{number}")
        shop.next_number = max(shop.next_number, number + 1)
        return number

    def _line_item(self, order: Order, spec: dict, exchange: ExchangeLine | None = None) -> LineItem:
        try:
            price, discount = decimal(spec["price"]), decimal(spec.get("discount", 0))
            if not ZERO <= discount <= price:
                raise StoreError(f"a line's discount is per unit, between 0 and its price: {spec!r}")
            return self._keep(LineItem, order=order, sku=spec["sku"], title=spec.get("title", spec["sku"]),
                              quantity=_quantity(spec["quantity"]), unit_price=price, unit_discount=discount,
                              tax_rate=decimal(spec.get("tax_rate", 0)), fulfillment_line_item_id=next(self._ids),
                              exchange=exchange)
        except KeyError as exc:
            raise StoreError(f"a line needs {exc.args[0]!r}: {spec!r}") from exc

    @staticmethod
    def _money_status(status: str) -> str:
        try:
            return _MONEY_STATUS[status]
        except KeyError:
            raise StoreError(f"money status is success, pending or failure, not {status!r}") from None

    def seed_orders(self, shop: str, n: int, *, spec: dict | None = None, steps=(), webhooks: bool = True) -> list[Order]:
        """`n` orders like `spec` (a scenario order; numbered on from the shop's last), each
        then taken through `steps` (scenario steps). With webhooks=False nothing is queued."""
        spec = {k: v for k, v in (spec or DEFAULT_SEED_ORDER).items() if k != "name"}
        orders = []
        with self.lock:
            with self.muted() if not webhooks else _nothing():
                for _ in range(n):
                    order = self.create_order(shop, spec)
                    for step in steps:
                        self.apply(order, step)
                    orders.append(order)
        return orders

    # --- returns -----------------------------------------------------------------------

    def return_request(self, order, label: str, lines, exchange_lines=(), return_shipping_fee=None,
                       restocking_fee_percent=None) -> Return:
        """The customer asked for a return (REQUESTED)."""
        with self.lock:
            order = self.order(order)
            ret = self._new_return(order, label, REQUESTED, lines, exchange_lines, return_shipping_fee,
                                   restocking_fee_percent)
            self._changed(order, ("returns/request", payloads.return_requested(ret)))
            return ret

    def return_open(self, order, label: str, lines=(), exchange_lines=(), return_shipping_fee=None,
                    restocking_fee_percent=None) -> Return:
        """The merchant opened a return, or approved the requested one with this label (OPEN).
        The exchange's new line items are made now."""
        with self.lock:
            order = self.order(order)
            existing = next((r for r in order.returns if r.label == label), None)
            if existing is None:
                ret = self._new_return(order, label, OPEN, lines, exchange_lines, return_shipping_fee,
                                       restocking_fee_percent)
            else:
                ret = existing
                self._approve(ret, lines, exchange_lines, return_shipping_fee, restocking_fee_percent)
            ret.request_approved_at = self.now()
            for line in ret.exchange_lines:
                line.line_item = self._line_item(order, {"sku": line.sku, "title": line.title, "price": line.unit_price,
                                                         "quantity": line.quantity, "tax_rate": line.tax_rate}, line)
                order.line_items.append(line.line_item)
            self._changed(order, ("returns/approve", payloads.return_approved(ret)))
            return ret

    def _approve(self, ret: Return, lines, exchange_lines, shipping_fee, restocking_fee_percent) -> None:
        if ret.status != REQUESTED:
            raise StoreError(f"return {ret.label} is {ret.status}; only a REQUESTED one can be opened again")
        asked = sorted((li.line_item.sku, li.quantity) for li in ret.lines)
        if lines and sorted(_sku_quantities(lines).items()) != asked:
            raise StoreError(f"return {ret.label} was requested for {asked}, not {lines}")
        if exchange_lines and len(exchange_lines) != len(ret.exchange_lines):
            raise StoreError(f"return {ret.label} was requested with other exchange lines")
        ret.status = OPEN
        if shipping_fee is not None:
            self._set_shipping_fee(ret, shipping_fee)
        if restocking_fee_percent is not None:
            for line in ret.lines:
                line.restocking_fee_percent = _optional_amount(restocking_fee_percent)
        reasons = _sku_reasons(lines)
        for line in ret.lines:
            line.reason = reasons.get(line.line_item.sku, line.reason)

    def _new_return(self, order: Order, label: str, status: str, lines, exchange_lines, shipping_fee,
                    restocking_fee_percent) -> Return:
        if any(r.label == label for r in order.returns):
            raise StoreError(f"order {order.name} already has a return {label!r}")
        if not lines and not exchange_lines:
            raise StoreError("a return needs lines")
        ret = self._keep(Return, order=order, label=label, number=len(order.returns) + 1, status=status,
                         created_at=self.now())
        percent = _optional_amount(restocking_fee_percent)
        reasons = _sku_reasons(lines)
        for sku, quantity in _sku_quantities(lines).items():
            ret.lines.append(self._keep(ReturnLine, ret=ret, line_item=self._returnable(order, sku, quantity),
                                        quantity=quantity, restocking_fee_percent=percent,
                                        restocking_fee_id=next(self._ids), reason=reasons.get(sku)))
        for spec in exchange_lines:
            try:
                ret.exchange_lines.append(self._keep(
                    ExchangeLine, ret=ret, sku=spec["sku"], title=spec.get("title", spec["sku"]),
                    unit_price=decimal(spec["price"]), quantity=_quantity(spec["quantity"]),
                    tax_rate=decimal(spec.get("tax_rate", 0))))
            except KeyError as exc:
                raise StoreError(f"an exchange line needs {exc.args[0]!r}: {spec!r}") from exc
        self._set_shipping_fee(ret, shipping_fee)
        order.returns.append(ret)
        return ret

    def _set_shipping_fee(self, ret: Return, amount) -> None:
        ret.shipping_fee = _optional_amount(amount)
        if ret.shipping_fee is not None and ret.shipping_fee_id is None:
            ret.shipping_fee_id = next(self._ids)

    @staticmethod
    def _returnable(order: Order, sku: str, quantity: int) -> LineItem:
        items = [li for li in order.line_items if li.sku == sku]
        if not items:
            raise StoreError(f"order {order.name} has no line with SKU {sku!r}")
        for li in items:
            if li.quantity - li.returned_quantity >= quantity:
                return li
        raise StoreError(f"order {order.name} has fewer than {quantity} of {sku!r} left to return")

    def return_decline(self, order, label: str, reason: str = "OTHER", note: str = "") -> Return:
        with self.lock:
            order = self.order(order)
            ret = self._in_status(order, label, REQUESTED, "declined")
            ret.status = DECLINED
            ret.decline = {"reason": reason.upper(), "note": note or ""}
            self._changed(order, ("returns/decline", payloads.return_declined(ret)))
            return ret

    def return_cancel(self, order, label: str) -> Return:
        with self.lock:
            order = self.order(order)
            ret = self._in_status(order, label, (REQUESTED, OPEN), "canceled")
            if ret.refunds:
                raise StoreError(f"return {label} has refunds and cannot be canceled")
            ret.status = CANCELED
            made = {id(line.line_item) for line in ret.exchange_lines if line.line_item is not None}
            order.line_items = [li for li in order.line_items if id(li) not in made]
            for line in ret.exchange_lines:
                line.line_item = None
            self._changed(order, ("returns/cancel", payloads.return_status(ret)))
            return ret

    def return_close(self, order, label: str) -> Return:
        with self.lock:
            order = self.order(order)
            ret = self._in_status(order, label, OPEN, "closed")
            ret.status, ret.closed_at = CLOSED, self.now()
            self._changed(order, ("returns/close", payloads.return_status(ret)))
            return ret

    def return_reopen(self, order, label: str) -> Return:
        with self.lock:
            order = self.order(order)
            ret = self._in_status(order, label, CLOSED, "reopened")
            ret.status, ret.closed_at = OPEN, None
            self._changed(order, ("returns/reopen", payloads.return_status(ret)))
            return ret

    @staticmethod
    def _in_status(order: Order, label: str, allowed, verb: str) -> Return:
        ret = order.return_labeled(label)
        allowed = (allowed,) if isinstance(allowed, str) else allowed
        if ret.status not in allowed:
            raise StoreError(f"return {label} is {ret.status} and cannot be {verb}")
        return ret

    # --- money -------------------------------------------------------------------------

    def refund(self, order, return_label: str | None = None, lines=(), shipping="0", amount=None,
               status: str = "success", note: str | None = None) -> Refund:
        """A refund, of a return or of none. Its money: `amount` when given, else the lines'
        worth plus `shipping`, less the return's fees no earlier refund took off."""
        with self.lock:
            order = self.order(order)
            ret = order.return_labeled(return_label) if return_label else None
            if ret is not None and not ret.active:
                raise StoreError(f"return {return_label} is {ret.status}; refunds need it open or closed")
            money_status = self._money_status(status)
            now = self.now()
            refund = self._keep(Refund, order=order, ret=ret, created_at=now, note=note)
            refund.lines = [self._keep(RefundLine, refund=refund, line_item=li, quantity=q)
                            for li, q in self._refundable(order, ret, lines)]
            self._refund_shipping(order, refund, decimal(shipping))
            money = self._refund_money(refund, ret, amount)
            refund.adjustment = money - refund.worth
            if refund.adjustment:
                refund.adjustment_id = next(self._ids)
            if money:
                refund.transactions.append(self._keep(
                    Transaction, order=order, kind=REFUND, status=money_status, gateway=order.gateway, amount=money,
                    created_at=now, processed_at=None if money_status == PENDING else now, parent=order.sale,
                    refund=refund))
            order.transactions.extend(refund.transactions)
            order.refunds.append(refund)
            if ret is not None:
                ret.refunds.append(refund)
            self._changed(order, ("refunds/create", payloads.refund(refund)),
                          *[("order_transactions/create", payloads.transaction(t)) for t in refund.transactions])
            return refund

    @staticmethod
    def _refundable(order: Order, ret: Return | None, lines) -> list[tuple[LineItem, int]]:
        found = []
        for sku, quantity in _sku_quantities(lines).items():
            if ret is not None:
                candidates = [(rl.line_item, rl.quantity - rl.refunded_quantity) for rl in ret.lines
                              if rl.line_item.sku == sku]
                where = f"return {ret.label}"
            else:
                candidates = [(li, li.quantity - li.refunded_quantity) for li in order.line_items if li.sku == sku]
                where = f"order {order.name}"
            item = next((li for li, left in candidates if left >= quantity), None)
            if item is None:
                raise StoreError(f"{where} has fewer than {quantity} of {sku!r} left to refund")
            found.append((item, quantity))
        return found

    def _refund_shipping(self, order: Order, refund: Refund, shipping: Decimal) -> None:
        if shipping < 0:
            raise StoreError("refunded shipping cannot be negative")
        if not shipping:
            return
        if not order.shipping_lines:
            raise StoreError(f"order {order.name} has no shipping to refund")
        line = order.shipping_lines[0]
        already = sum((r.shipping for r in order.refunds), ZERO)
        if already + shipping > line.gross():
            raise StoreError(f"order {order.name} has only {line.gross() - already} of shipping left to refund")
        refund.shipping, refund.shipping_line, refund.shipping_refund_id = shipping, line, next(self._ids)

    @staticmethod
    def _refund_money(refund: Refund, ret: Return | None, amount) -> Decimal:
        if amount is not None:
            money = decimal(amount)
            if money < 0:
                raise StoreError("a refund's amount cannot be negative")
            if ret is not None:
                ret.fees_taken = ret.fees
            return money
        worth = refund.worth
        if ret is None:
            return worth
        taken = min(max(ret.fees - ret.fees_taken, ZERO), worth)
        ret.fees_taken += taken
        return worth - taken

    def pay(self, order, amount, status: str = "success") -> Transaction:
        """The customer paid what they owed: a new SALE."""
        with self.lock:
            order = self.order(order)
            money, money_status, now = decimal(amount), self._money_status(status), self.now()
            if money <= 0:
                raise StoreError("a payment must be above 0")
            sale = self._keep(Transaction, order=order, kind=SALE, status=money_status, gateway=order.gateway,
                              amount=money, created_at=now, processed_at=None if money_status == PENDING else now)
            order.transactions.append(sale)
            self._changed(order, ("order_transactions/create", payloads.transaction(sale)))
            return sale

    def settle(self, order, outcome: str = "success") -> list[Transaction]:
        """Every PENDING transaction of the order completes (or fails) in place. With nothing
        pending nothing changes, not even updatedAt."""
        with self.lock:
            order = self.order(order)
            status = self._money_status(outcome)
            if status == PENDING:
                raise StoreError("settle ends in success or failure")
            pending = [t for t in order.transactions if t.status == PENDING]
            if not pending:
                return []
            now = self.now()
            for t in pending:
                t.status, t.processed_at = status, now
            self._changed(order)
            return pending

    # --- other events --------------------------------------------------------------------

    def app_uninstalled(self, shop: str) -> Event | None:
        with self.lock:
            return self.emit(shop, "app/uninstalled", payloads.shop(self.shop(shop)))

    def compliance_request(self, shop: str, topic: str, orders=()) -> Event | None:
        """customers/data_request, customers/redact (about the customer of `orders`) or shop/redact."""
        with self.lock:
            the_shop = self.shop(shop)
            orders = [self.order(o) for o in orders]
            if topic == "shop/redact":
                payload = payloads.shop_redact(the_shop)
            elif topic in ("customers/redact", "customers/data_request"):
                if not orders:
                    raise StoreError(f"{topic} needs the customer's orders")
                payload = payloads.customer_request(the_shop, topic, orders, next(self._ids))
            else:
                raise StoreError(f"{topic!r} is not a compliance topic")
            return self.emit(shop, topic, payload)

    # --- scenario steps ------------------------------------------------------------------

    def apply(self, order, step: dict):
        """Play one scenario step (`{"do": verb, ...}`, ../shared/scenarios/README.md)."""
        verb = step.get("do")
        try:
            if verb in ("return_request", "return_open"):
                return getattr(self, verb)(order, step["return"], step.get("lines") or [],
                                           step.get("exchange_lines") or [], step.get("return_shipping_fee"),
                                           step.get("restocking_fee_percent"))
            if verb == "return_decline":
                return self.return_decline(order, step["return"], step.get("reason", "OTHER"), step.get("note", ""))
            if verb in ("return_cancel", "return_close", "return_reopen"):
                return getattr(self, verb)(order, step["return"])
            if verb == "refund":
                return self.refund(order, step.get("return"), step.get("lines") or [], step.get("shipping", "0"),
                                   step.get("amount"), step.get("status", "success"), step.get("note"))
            if verb == "pay":
                return self.pay(order, step["amount"], step.get("status", "success"))
            if verb == "settle":
                return self.settle(order, step.get("outcome", "success"))
        except KeyError as exc:
            raise StoreError(f"step {verb!r} needs {exc.args[0]!r}") from exc
        raise StoreError(f"unknown step {verb!r}")


def _sku_quantities(lines) -> dict[str, int]:
    """Scenario lines ({sku, quantity}) summed per SKU, in first-seen order."""
    out: dict[str, int] = {}
    for line in lines:
        try:
            out[line["sku"]] = out.get(line["sku"], 0) + _quantity(line["quantity"])
        except (KeyError, TypeError) as exc:
            raise StoreError(f"a line is {{sku, quantity}}, not {line!r}") from exc
    return out


def _sku_reasons(lines) -> dict[str, str]:
    """The return reason of each SKU's lines (a line's optional `reason`, e.g. `{"sku": "X",
    "quantity": 1, "reason": "Of lítið"}`): lines are summed per SKU, so the first reason given wins."""
    out: dict[str, str] = {}
    for line in lines:
        if isinstance(line, dict) and line.get("reason") and "sku" in line:
            out.setdefault(line["sku"], str(line["reason"]))
    return out


@contextmanager
def _nothing():
    yield
