"""Facts: the order as Shopify has it now, re-read through GraphQL (webhooks are only triggers).

`read_order` reads the whole order in one query in the common case: the order, its refunds and
its returns, each connection's first page sized to what a typical order has, so the query
requests at most 300 points (docs/SHOPIFY_MODEL.md, "Query cost"). Only a connection whose
`pageInfo` says there is more is followed up, page by page, to its end (D6). The answers become
plain, frozen dataclasses in the shop's money, so the decision core never sees GraphQL."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .money import gross, plain, to_money
from .shopify_admin import ShopifyBusy, ShopifyRefused

MONEY = "shopMoney { amount currencyCode }"
TAX_LINES = f"taxLines {{ ratePercentage priceSet {{ {MONEY} }} }}"
# What the customer paid for one (after line and order discounts), not the list price: a hand
# credit or an exchange item must not be worth more than was paid.
LINE_ITEM = f"id sku title quantity discountedUnitPriceAfterAllDiscountsSet {{ {MONEY} }} {TAX_LINES}"
SHIPPING_LINE = f"id title discountedPriceSet {{ {MONEY} }} {TAX_LINES}"
PAGE = "pageInfo { hasNextPage endCursor }"

# Who the invoice is for, and nothing more (docs/PROTECTED_CUSTOMER_DATA.md): the buyer's e-mail,
# name and billing address (where Icelandic shops collect the kennitala, as `company`). These
# are Shopify's protected customer data; a shop whose app is not approved for them answers
# ACCESS_DENIED on exactly these paths, and the invoice then goes to the shop's default customer.
CUSTOMER_FIELDS = ("email customer { id defaultEmailAddress { emailAddress } } "
                   "billingAddress { company name address1 address2 city zip countryCodeV2 }")
CUSTOMER_PATHS = ("email", "customer", "billingAddress")

# The connections of refunds and returns: what one element holds, and how many come on the first
# page inside the order query (what a typical refund or return has; each costs points whether it
# is there or not) and on each further page (`REST_QUERIES`, asked only for a connection whose
# first page said there is more).
REFUND_LINE = f"quantity lineItem {{ id }} subtotalSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }}"
REFUND_SHIPPING = f"shippingLine {{ id }} subtotalAmountSet {{ {MONEY} }} taxAmountSet {{ {MONEY} }}"
REFUND_TRANSACTION = f"id kind status gateway processedAt amountSet {{ {MONEY} }}"
RETURN_LINE = f"""__typename id quantity refundedQuantity
          ... on ReturnLineItem {{
            fulfillmentLineItem {{ lineItem {{ id }} }}
            withCodeDiscountedTotalPriceSet {{ {MONEY} }}
            restockingFee {{ percentage amountSet {{ {MONEY} }} }}
            returnReasonDefinition {{ name }}
          }}"""
EXCHANGE_LINE = f"id quantity variantSku title lineItems {{ {LINE_ITEM} }}"
CONNECTIONS = {   # name: (fields, first page, each further page)
    "Refund": {"refundLineItems": (REFUND_LINE, 5, 50), "refundShippingLines": (REFUND_SHIPPING, 2, 10),
               "transactions": (REFUND_TRANSACTION, 3, 20)},
    "Return": {"returnLineItems": (RETURN_LINE, 5, 50), "exchangeLineItems": (EXCHANGE_LINE, 2, 20)},
}


def _first_pages(kind: str) -> str:
    return "\n      ".join(f"{name}(first: {first}) {{ nodes {{ {fields} }} {PAGE} }}"
                          for name, (fields, first, _) in CONNECTIONS[kind].items())


REFUND = f"id legacyResourceId createdAt note return {{ id }}\n      {_first_pages('Refund')}"
RETURN = (f"id name status createdAt closedAt returnShippingFees {{ id amountSet {{ {MONEY} }} }}\n"
          f"      {_first_pages('Return')}")
ORDER_FIRST = {"lineItems": 10, "shippingLines": 2, "returns": 2}

# The whole order in one query. Order.refunds and Order.transactions are plain lists that Shopify
# serves whole when no `first` is given (D6: no size limits); Order.returns and every connection
# below a refund or a return come with a first page only (ORDER_FIRST, CONNECTIONS), so the
# query's requested cost stays at most ORDER_QUERY_MAX_COST whatever the order holds.
ORDER_QUERY = f"""
query SkilvisOrder($id: ID!) {{
  order(id: $id) {{
    id legacyResourceId name createdAt updatedAt currencyCode taxesIncluded test
    displayFinancialStatus
    totalOutstandingSet {{ {MONEY} }}
    {CUSTOMER_FIELDS}
    lineItems(first: {ORDER_FIRST["lineItems"]}) {{ nodes {{ {LINE_ITEM} }} {PAGE} }}
    shippingLines(first: {ORDER_FIRST["shippingLines"]}) {{ nodes {{ {SHIPPING_LINE} }} {PAGE} }}
    transactions {{
      id kind status gateway processedAt amountSet {{ {MONEY} }} parentTransaction {{ id }}
    }}
    refunds {{
      {REFUND}
    }}
    returns(first: {ORDER_FIRST["returns"]}) {{
      {PAGE}
      nodes {{
      {RETURN}
      }}
    }}
  }}
}}
"""
# The most ORDER_QUERY may request, by Shopify's documented rule (the stand-in's: 281 today;
# live Shopify asks less, docs/SHOPIFY_MODEL.md); tests/test_shopify_reader.py holds it to this.
ORDER_QUERY_MAX_COST = 300

# An order with more returns than ORDER_FIRST["returns"]: the rest, a few at a time, each with
# the same first pages as in ORDER_QUERY.
RETURNS_QUERY = f"""
query SkilvisReturns($id: ID!, $after: String) {{
  order(id: $id) {{
    returns(first: 4, after: $after) {{
      {PAGE}
      nodes {{
      {RETURN}
      }}
    }}
  }}
}}
"""


def _rest_query(kind: str, connection: str) -> str:
    fields, _, size = CONNECTIONS[kind][connection]
    return f"""
query SkilvisMore{kind}{connection[0].upper()}{connection[1:]}($id: ID!, $after: String) {{
  node(id: $id) {{ ... on {kind} {{ {connection}(first: {size}, after: $after) {{ nodes {{ {fields} }} {PAGE} }} }} }}
}}
"""


REST_QUERIES = {(kind, name): _rest_query(kind, name) for kind in CONNECTIONS for name in CONNECTIONS[kind]}

# An order with more than a page of line items (B2B orders) reads the rest page by page.
LINE_ITEMS_QUERY = f"""
query SkilvisLineItems($id: ID!, $after: String) {{
  order(id: $id) {{ lineItems(first: 50, after: $after) {{ nodes {{ {LINE_ITEM} }} {PAGE} }} }}
}}
"""
SHIPPING_LINES_QUERY = f"""
query SkilvisShippingLines($id: ID!, $after: String) {{
  order(id: $id) {{ shippingLines(first: 20, after: $after) {{ nodes {{ {SHIPPING_LINE} }} {PAGE} }} }}
}}
"""


@dataclass(frozen=True)
class LineItem:
    id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Decimal          # paid for one, after all discounts, as listed (VAT included when prices include it)
    vat_rates: tuple[Decimal, ...]
    tax: Decimal                 # the VAT of the whole line


@dataclass(frozen=True)
class ShippingLine:
    id: str
    title: str
    price: Decimal
    vat_rates: tuple[Decimal, ...]


@dataclass(frozen=True)
class Transaction:
    id: str
    kind: str
    status: str
    gateway: str | None
    amount: Decimal
    parent_id: str | None = None
    processed_at: datetime | None = None   # when the money moved (or failed to)


@dataclass(frozen=True)
class RefundLine:
    line_item_id: str
    quantity: int
    gross: Decimal


@dataclass(frozen=True)
class RefundShipping:
    shipping_line_id: str | None
    gross: Decimal


@dataclass(frozen=True)
class Refund:
    id: str
    legacy_id: str
    created_at: datetime
    return_id: str | None
    lines: tuple[RefundLine, ...]
    shipping: tuple[RefundShipping, ...]
    transactions: tuple[Transaction, ...]
    note: str | None = None


@dataclass(frozen=True)
class ReturnLine:
    line_item_id: str | None
    quantity: int
    refunded_quantity: int
    value: Decimal                # the returned quantity's value, as listed
    restocking_fee: Decimal       # VAT included; 0 when none
    # The reason's display name only: the customer's and merchant's notes are free text that may
    # hold personal data, and the invoice needs no more than the reason.
    reason: str | None = None


@dataclass(frozen=True)
class ExchangeLine:
    id: str
    quantity: int
    sku: str | None
    title: str
    line_items: tuple[LineItem, ...]


@dataclass(frozen=True)
class Return:
    id: str
    name: str
    status: str
    closed_at: datetime | None
    lines: tuple[ReturnLine, ...]
    exchange_lines: tuple[ExchangeLine, ...]
    shipping_fees: tuple[Decimal, ...]   # VAT included

    @property
    def is_exchange(self) -> bool:
        return bool(self.exchange_lines)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(line.reason for line in self.lines if line.reason))


@dataclass(frozen=True)
class Customer:
    shopify_id: int | None = None   # Shopify's customer id: customers/redact names it
    email: str | None = None
    name: str | None = None
    company: str | None = None
    address: str | None = None
    zip_code: str | None = None
    city: str | None = None
    country: str | None = None
    # Shopify withheld the buyer's data (protected customer data not approved): the invoice
    # goes to the shop's default Payday customer.
    withheld: bool = False


@dataclass(frozen=True)
class Order:
    id: str
    legacy_id: str
    name: str
    currency: str
    taxes_included: bool
    updated_at: datetime
    outstanding: Decimal
    customer: Customer
    line_items: dict[str, LineItem]
    shipping_lines: dict[str, ShippingLine]
    transactions: tuple[Transaction, ...]
    refunds: tuple[Refund, ...]
    returns: tuple[Return, ...]
    financial_status: str | None = None
    test: bool = False                    # D7: Bogus Gateway or a provider in test mode
    created_at: datetime | None = None


# --- parsing ------------------------------------------------------------------------------

def _amount(bag, currency) -> Decimal:
    return to_money((bag or {}).get("shopMoney", {}).get("amount", "0"), currency)


def _when(value) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _nodes(connection) -> list:
    if connection is None:
        return []
    if isinstance(connection, list):
        return connection
    if "nodes" in connection:
        return connection["nodes"]
    return [edge["node"] for edge in connection.get("edges", [])]


def _rates(tax_lines) -> tuple[Decimal, ...]:
    return tuple(plain(Decimal(str(t["ratePercentage"]))) for t in tax_lines or [])


def _line_item(node, currency) -> LineItem:
    return LineItem(
        id=node["id"], sku=node.get("sku") or None, title=node.get("title") or "", quantity=int(node["quantity"]),
        unit_price=_amount(node.get("discountedUnitPriceAfterAllDiscountsSet"), currency),
        vat_rates=_rates(node.get("taxLines")),
        tax=sum((_amount(t.get("priceSet"), currency) for t in node.get("taxLines") or []), Decimal(0)),
    )


def _transaction(node, currency) -> Transaction:
    return Transaction(id=node["id"], kind=node["kind"], status=node["status"], gateway=node.get("gateway"),
                       amount=_amount(node.get("amountSet"), currency),
                       parent_id=(node.get("parentTransaction") or {}).get("id"),
                       processed_at=_when(node.get("processedAt")))


def parse_order(data: dict, withheld: bool = False) -> Order:
    o = data
    currency = o["currencyCode"]
    included = bool(o["taxesIncluded"])
    line_items = {n["id"]: _line_item(n, currency) for n in _nodes(o["lineItems"])}
    shipping = {n["id"]: ShippingLine(n["id"], n.get("title") or "", _amount(n.get("discountedPriceSet"), currency),
                                      _rates(n.get("taxLines"))) for n in _nodes(o["shippingLines"])}
    refunds = tuple(sorted((
        Refund(
            id=r["id"], legacy_id=str(r.get("legacyResourceId") or r["id"].rsplit("/", 1)[-1]),
            created_at=_when(r["createdAt"]), return_id=(r.get("return") or {}).get("id"), note=r.get("note"),
            lines=tuple(RefundLine(n["lineItem"]["id"], int(n["quantity"]),
                                   gross(_amount(n["subtotalSet"], currency), _amount(n["totalTaxSet"], currency), included))
                        for n in _nodes(r.get("refundLineItems"))),
            shipping=tuple(RefundShipping((n.get("shippingLine") or {}).get("id"),
                                          gross(_amount(n["subtotalAmountSet"], currency), _amount(n["taxAmountSet"], currency), included))
                           for n in _nodes(r.get("refundShippingLines"))),
            transactions=tuple(_transaction(t, currency) for t in _nodes(r.get("transactions"))),
        ) for r in o["refunds"] or []), key=lambda r: (r.created_at, r.id)))
    returns = []
    for node in _nodes(o["returns"]):
        lines = []
        for n in _nodes(node.get("returnLineItems")):
            fee = n.get("restockingFee")
            lines.append(ReturnLine(
                line_item_id=((n.get("fulfillmentLineItem") or {}).get("lineItem") or {}).get("id"),
                quantity=int(n["quantity"]), refunded_quantity=int(n.get("refundedQuantity") or 0),
                value=_amount(n.get("withCodeDiscountedTotalPriceSet"), currency),
                restocking_fee=_amount(fee.get("amountSet"), currency) if fee else Decimal(0),
                reason=((n.get("returnReasonDefinition") or {}).get("name") or "").strip() or None))
        returns.append(Return(
            id=node["id"], name=node["name"], status=node["status"], closed_at=_when(node.get("closedAt")),
            lines=tuple(lines),
            exchange_lines=tuple(ExchangeLine(n["id"], int(n["quantity"]), n.get("variantSku"), n.get("title") or "",
                                              tuple(_line_item(li, currency) for li in n.get("lineItems") or []))
                                 for n in _nodes(node.get("exchangeLineItems"))),
            shipping_fees=tuple(_amount(f["amountSet"], currency) for f in node.get("returnShippingFees") or []),
        ))
    billing = o.get("billingAddress") or {}
    buyer = o.get("customer") or {}
    return Order(
        id=o["id"], legacy_id=str(o["legacyResourceId"]), name=o["name"], currency=currency, taxes_included=included,
        updated_at=_when(o["updatedAt"]), created_at=_when(o.get("createdAt")), test=bool(o.get("test")),
        outstanding=_amount(o.get("totalOutstandingSet"), currency),
        financial_status=o.get("displayFinancialStatus"),
        customer=Customer(
            shopify_id=int(buyer["id"].rsplit("/", 1)[-1]) if buyer.get("id") else None,
            email=o.get("email") or (buyer.get("defaultEmailAddress") or {}).get("emailAddress"),
            name=billing.get("name") or None, company=billing.get("company") or None,
            address=" ".join(x for x in (billing.get("address1"), billing.get("address2")) if x) or None,
            zip_code=billing.get("zip"), city=billing.get("city"), country=billing.get("countryCodeV2"),
            withheld=withheld),
        line_items=line_items, shipping_lines=shipping,
        transactions=tuple(_transaction(t, currency) for t in o["transactions"] or []),
        refunds=refunds, returns=tuple(returns),
    )


# How long, in all, a read may wait for the bucket between its own queries when the order is
# too large to be read from a full bucket at all (see _Reader.query).
MAX_READ_WAIT = 300.0


class _Reader:
    """One read of one order: every query's answer, with the paths Shopify withheld and what
    the read has cost so far."""

    def __init__(self, admin, shop: str):
        self.admin, self.shop = admin, shop
        self.withheld: set[tuple] = set()
        self.calls, self.spent, self.waited = 0, 0.0, 0.0

    def query(self, query: str, variables: dict) -> dict:
        """One query of the read. When the shop's bucket cannot pay for a follow-up query, the
        read is put aside until the bucket is full again: coming back only when the next query
        fits would start the read over with too little for the queries after it, again and
        again. An order whose read alone costs more than a full bucket waits here instead,
        between its queries (the one case where a read sleeps), so that it is ever read (D6)."""
        while True:
            try:
                answer = self.admin.query(self.shop, query, variables)
                break
            except ShopifyBusy as busy:
                if not self.calls:
                    raise       # nothing read yet: nothing is lost by coming back later
                fits = busy.maximum is None or self.spent + (busy.requested or 0) <= busy.maximum
                if fits or self.waited + busy.retry_in > MAX_READ_WAIT:
                    wait = busy.until_full()
                    raise ShopifyBusy(wait, f"{self.shop}: the read stopped after {self.calls} queries "
                                            f"({self.spent:.0f} points) for the bucket ({busy}); back when it is "
                                            f"full, in {wait:.1f} s", self.shop, available=busy.available,
                                      maximum=busy.maximum, restore_rate=busy.restore_rate,
                                      requested=busy.requested) from busy
                self.waited += busy.retry_in
                self.admin.sleep(busy.retry_in)
        self.calls += 1
        self.spent += answer.cost
        self.withheld.update(answer.withheld)
        return answer.data

    def page_rest(self, first_page: dict, query: str, variables: dict, dig) -> list:
        """The nodes of a connection: the page at hand and every page after it."""
        nodes, page = list(_nodes(first_page)), first_page
        while page["pageInfo"]["hasNextPage"]:
            page = dig(self.query(query, {**variables, "after": page["pageInfo"]["endCursor"]}))
            nodes.extend(_nodes(page))
        return nodes

    def complete(self, kind: str, node: dict) -> dict:
        """A refund or return with every connection read to its end: nothing more is asked
        unless a first page says there is more."""
        return {**node, **{name: {"nodes": self.page_rest(node[name], REST_QUERIES[(kind, name)],
                                                          {"id": node["id"]}, lambda data, name=name: data["node"][name])}
                           for name in CONNECTIONS[kind]}}


def read_order(admin, shop: str, order_gid: str) -> Order | None:
    """Read the order with every refund and return in full, however many lines, refunds and
    returns it has (D6); None when Shopify does not show it (deleted, or older than the 60 days
    an app without read_all_orders sees). One query for a typical order; more only for what
    did not fit on a first page."""
    reader = _Reader(admin, shop)
    data = reader.query(ORDER_QUERY, {"id": order_gid})["order"]
    if data is None:
        return None
    items = reader.page_rest(data["lineItems"], LINE_ITEMS_QUERY, {"id": order_gid},
                             lambda d: d["order"]["lineItems"])
    shipping = reader.page_rest(data["shippingLines"], SHIPPING_LINES_QUERY, {"id": order_gid},
                                lambda d: d["order"]["shippingLines"])
    returns = reader.page_rest(data["returns"], RETURNS_QUERY, {"id": order_gid}, lambda d: d["order"]["returns"])
    data = {**data, "lineItems": {"nodes": items}, "shippingLines": {"nodes": shipping},
            "refunds": [reader.complete("Refund", r) for r in data["refunds"] or []],
            "returns": [reader.complete("Return", r) for r in returns]}
    return parse_order(data, withheld=_customer_withheld(shop, reader.withheld))


def _customer_withheld(shop: str, paths: set[tuple]) -> bool:
    """Whether Shopify withheld the buyer's data. Only the customer fields may be withheld: a
    denial anywhere else means an invoice would be built on missing facts, so it is refused."""
    elsewhere = [p for p in paths if len(p) < 2 or p[0] != "order" or p[1] not in CUSTOMER_PATHS]
    if elsewhere:
        raise ShopifyRefused(f"{shop} withheld {sorted(elsewhere)[:3]}", "shopify_access_denied")
    return bool(paths)


ORDER_BY_NAME_QUERY = """
query SkilvisOrderByName($query: String!) {
  orders(first: 5, query: $query) { nodes { id legacyResourceId name } }
}
"""


def find_order(admin, shop: str, name: str) -> dict | None:
    """The order the merchant calls `name` (`#1001` or `1001`), by Shopify's order search.
    The search also matches on parts of a name, so only an exact name counts."""
    wanted = name.strip().lstrip("#").casefold()
    nodes = admin.graphql(shop, ORDER_BY_NAME_QUERY, {"query": f"name:'{name.strip()}'"})["orders"]["nodes"]
    return next((n for n in nodes if n["name"].lstrip("#").casefold() == wanted), None)


RECENT_GATEWAYS_QUERY = """
query SkilvisRecentGateways {
  orders(first: 50, sortKey: CREATED_AT, reverse: true) { nodes { paymentGatewayNames } }
}
"""


def recent_gateways(admin, shop: str) -> set[str]:
    """The payment gateways of the shop's latest orders."""
    nodes = admin.graphql(shop, RECENT_GATEWAYS_QUERY)["orders"]["nodes"]
    return {name for node in nodes for name in node["paymentGatewayNames"] or []}
