"""Facts: the order as Shopify has it now, re-read through GraphQL (webhooks are only triggers).

`read_order` runs one query (plus pages for long connections) and turns the answer into plain,
frozen dataclasses in the shop's money, so the decision core never sees GraphQL."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .money import gross, plain, to_money

MONEY = "shopMoney { amount currencyCode }"
TAX_LINES = f"taxLines {{ ratePercentage priceSet {{ {MONEY} }} }}"
# What the customer paid for one (after line and order discounts), not the list price: a hand
# credit or an exchange item must not be worth more than was paid.
LINE_ITEM = f"id sku title quantity discountedUnitPriceAfterAllDiscountsSet {{ {MONEY} }} {TAX_LINES}"

# Order.refunds and Order.transactions are plain lists, not connections: a full list may have
# been cut short. Every refund adds a transaction, so payments get twice the room.
LIST_LIMITS = {"refunds": 30, "transactions": 60}

# Three queries instead of one, each under Shopify's 1,000-point single-query limit: nested
# connections multiply their `first`, so the order's summary comes first and the details of
# refunds and returns follow in batches through `nodes(ids:)`.
ORDER_QUERY = f"""
query SkilvisOrder($id: ID!, $returnsAfter: String) {{
  order(id: $id) {{
    id legacyResourceId name createdAt updatedAt currencyCode taxesIncluded email
    displayFinancialStatus
    totalOutstandingSet {{ {MONEY} }}
    customer {{ id email firstName lastName }}
    billingAddress {{ company firstName lastName name address1 address2 city zip countryCodeV2 phone }}
    lineItems(first: 50) {{ nodes {{ {LINE_ITEM} }} pageInfo {{ hasNextPage endCursor }} }}
    shippingLines(first: 5) {{ nodes {{ id title discountedPriceSet {{ {MONEY} }} {TAX_LINES} }} pageInfo {{ hasNextPage }} }}
    transactions(first: {LIST_LIMITS["transactions"]}) {{
      id kind status gateway processedAt amountSet {{ {MONEY} }} parentTransaction {{ id }}
    }}
    refunds(first: {LIST_LIMITS["refunds"]}) {{ id legacyResourceId createdAt note return {{ id }} }}
    returns(first: 20, after: $returnsAfter) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ id name status createdAt closedAt returnShippingFees {{ id amountSet {{ {MONEY} }} }} }}
    }}
  }}
}}
"""

REFUND_DETAILS_QUERY = f"""
query SkilvisRefunds($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on Refund {{
      id
      refundLineItems(first: 25) {{
        nodes {{ quantity lineItem {{ id }} subtotalSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }} }}
        pageInfo {{ hasNextPage }}
      }}
      refundShippingLines(first: 5) {{
        nodes {{ shippingLine {{ id }} subtotalAmountSet {{ {MONEY} }} taxAmountSet {{ {MONEY} }} }}
        pageInfo {{ hasNextPage }}
      }}
      transactions(first: 10) {{ nodes {{ id kind status gateway amountSet {{ {MONEY} }} }} pageInfo {{ hasNextPage }} }}
    }}
  }}
}}
"""

RETURN_DETAILS_QUERY = f"""
query SkilvisReturns($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on Return {{
      id
      returnLineItems(first: 25) {{
        nodes {{
          __typename id quantity refundedQuantity
          ... on ReturnLineItem {{
            fulfillmentLineItem {{ lineItem {{ id }} }}
            withCodeDiscountedTotalPriceSet {{ {MONEY} }}
            restockingFee {{ percentage amountSet {{ {MONEY} }} }}
          }}
        }}
        pageInfo {{ hasNextPage }}
      }}
      exchangeLineItems(first: 10) {{
        nodes {{ id quantity variantSku title lineItems {{ {LINE_ITEM} }} }}
        pageInfo {{ hasNextPage }}
      }}
    }}
  }}
}}
"""

# An order with more than one page of line items (B2B orders) reads the rest page by page.
LINE_ITEMS_QUERY = f"""
query SkilvisLineItems($id: ID!, $after: String) {{
  order(id: $id) {{ lineItems(first: 50, after: $after) {{ nodes {{ {LINE_ITEM} }} pageInfo {{ hasNextPage endCursor }} }} }}
}}
"""

REFUNDS_PER_CALL = 4
RETURNS_PER_CALL = 3


class OrderTooLarge(Exception):
    """More than one read holds of something that is not paged (refunds, payments, the lines of
    one refund or return). Never guessed around: the order is shown as unreadable, and its
    credit invoices are made in Payday by hand."""


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


@dataclass(frozen=True)
class Customer:
    email: str | None = None
    name: str | None = None
    company: str | None = None
    address: str | None = None
    zip_code: str | None = None
    city: str | None = None
    country: str | None = None
    phone: str | None = None


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
    extra: dict = field(default_factory=dict)


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
                       parent_id=(node.get("parentTransaction") or {}).get("id"))


def parse_order(data: dict) -> Order:
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
                restocking_fee=_amount(fee.get("amountSet"), currency) if fee else Decimal(0)))
        returns.append(Return(
            id=node["id"], name=node["name"], status=node["status"], closed_at=_when(node.get("closedAt")),
            lines=tuple(lines),
            exchange_lines=tuple(ExchangeLine(n["id"], int(n["quantity"]), n.get("variantSku"), n.get("title") or "",
                                              tuple(_line_item(li, currency) for li in n.get("lineItems") or []))
                                 for n in _nodes(node.get("exchangeLineItems"))),
            shipping_fees=tuple(_amount(f["amountSet"], currency) for f in node.get("returnShippingFees") or []),
        ))
    billing = o.get("billingAddress") or {}
    customer = o.get("customer") or {}
    name = billing.get("name") or " ".join(x for x in (customer.get("firstName"), customer.get("lastName")) if x) or None
    return Order(
        id=o["id"], legacy_id=str(o["legacyResourceId"]), name=o["name"], currency=currency, taxes_included=included,
        updated_at=_when(o["updatedAt"]), outstanding=_amount(o.get("totalOutstandingSet"), currency),
        financial_status=o.get("displayFinancialStatus"),
        customer=Customer(
            email=o.get("email") or customer.get("email"), name=name, company=billing.get("company") or None,
            address=" ".join(x for x in (billing.get("address1"), billing.get("address2")) if x) or None,
            zip_code=billing.get("zip"), city=billing.get("city"), country=billing.get("countryCodeV2"),
            phone=billing.get("phone")),
        line_items=line_items, shipping_lines=shipping,
        transactions=tuple(_transaction(t, currency) for t in o["transactions"] or []),
        refunds=refunds, returns=tuple(returns),
    )


def _batches(ids: list[str], size: int):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _details(admin, shop: str, query: str, ids: list[str], size: int) -> dict[str, dict]:
    found = {}
    for batch in _batches(ids, size):
        for node in admin.graphql(shop, query, {"ids": batch})["nodes"]:
            if node:
                for conn in ("refundLineItems", "refundShippingLines", "transactions", "returnLineItems",
                             "exchangeLineItems"):
                    if (node.get(conn) or {}).get("pageInfo", {}).get("hasNextPage"):
                        raise OrderTooLarge(f"{node['id']} has more {conn} than one read holds")
                found[node["id"]] = node
    return found


def read_order(admin, shop: str, order_gid: str) -> Order | None:
    """Read the order with every refund and return in full; None when Shopify no longer shows it."""
    variables = {"id": order_gid, "returnsAfter": None}
    data = admin.graphql(shop, ORDER_QUERY, variables)["order"]
    if data is None:
        return None
    for name, limit in LIST_LIMITS.items():
        if len(data[name] or []) >= limit:
            raise OrderTooLarge(f"{order_gid} has {limit} or more {name}")
    if data["shippingLines"]["pageInfo"]["hasNextPage"]:
        raise OrderTooLarge(f"{order_gid} has more shippingLines than one read holds")
    items, page = list(_nodes(data["lineItems"])), data["lineItems"]
    while page["pageInfo"]["hasNextPage"]:
        page = admin.graphql(shop, LINE_ITEMS_QUERY, {"id": order_gid, "after": page["pageInfo"]["endCursor"]})
        page = page["order"]["lineItems"]
        items.extend(_nodes(page))
    returns = list(_nodes(data["returns"]))
    page = data["returns"]
    while page["pageInfo"]["hasNextPage"]:
        variables["returnsAfter"] = page["pageInfo"]["endCursor"]
        page = admin.graphql(shop, ORDER_QUERY, variables)["order"]["returns"]
        returns.extend(_nodes(page))
    refunds = data["refunds"] or []
    refund_details = _details(admin, shop, REFUND_DETAILS_QUERY, [r["id"] for r in refunds], REFUNDS_PER_CALL)
    return_details = _details(admin, shop, RETURN_DETAILS_QUERY, [r["id"] for r in returns], RETURNS_PER_CALL)
    data = {**data, "lineItems": {"nodes": items},
            "refunds": [{**r, **refund_details.get(r["id"], {})} for r in refunds],
            "returns": [{**r, **return_details.get(r["id"], {})} for r in returns]}
    return parse_order(data)


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
