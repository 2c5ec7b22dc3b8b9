"""Facts: the order as Shopify has it now, re-read through GraphQL (webhooks are only triggers).

`read_order` reads the order's summary, then its refunds and returns in batches, every
connection to its end, and turns the answers into plain, frozen dataclasses in the shop's money,
so the decision core never sees GraphQL."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .money import gross, plain, to_money
from .shopify_admin import ShopifyRefused

MONEY = "shopMoney { amount currencyCode }"
TAX_LINES = f"taxLines {{ ratePercentage priceSet {{ {MONEY} }} }}"
# What the customer paid for one (after line and order discounts), not the list price: a hand
# credit or an exchange item must not be worth more than was paid.
LINE_ITEM = f"id sku title quantity discountedUnitPriceAfterAllDiscountsSet {{ {MONEY} }} {TAX_LINES}"
PAGE = "pageInfo { hasNextPage endCursor }"

# Who the invoice is for, and nothing more (docs/PROTECTED_CUSTOMER_DATA.md): the buyer's e-mail,
# name and billing address (where Icelandic shops collect the kennitala, as `company`). These
# are Shopify's protected customer data; a shop whose app is not approved for them answers
# ACCESS_DENIED on exactly these paths, and the invoice then goes to the shop's default customer.
CUSTOMER_FIELDS = ("email customer { id defaultEmailAddress { emailAddress } } "
                   "billingAddress { company name address1 address2 city zip countryCodeV2 }")
CUSTOMER_PATHS = ("email", "customer", "billingAddress")

# The order's summary and its lists. Order.refunds and Order.transactions are plain lists that
# Shopify serves whole when no `first` is given (D6: no size limits); the details of refunds and
# returns follow in batches through `nodes(ids:)`, and every connection is read to its end
# (`_Reader.page_rest`), so each query stays under Shopify's 1,000-point limit whatever the order.
ORDER_QUERY = f"""
query SkilvisOrder($id: ID!, $returnsAfter: String) {{
  order(id: $id) {{
    id legacyResourceId name createdAt updatedAt currencyCode taxesIncluded test
    displayFinancialStatus
    totalOutstandingSet {{ {MONEY} }}
    {CUSTOMER_FIELDS}
    lineItems(first: 50) {{ nodes {{ {LINE_ITEM} }} {PAGE} }}
    shippingLines(first: 5) {{ nodes {{ id title discountedPriceSet {{ {MONEY} }} {TAX_LINES} }} {PAGE} }}
    transactions {{
      id kind status gateway processedAt amountSet {{ {MONEY} }} parentTransaction {{ id }}
    }}
    refunds {{ id legacyResourceId createdAt note return {{ id }} }}
    returns(first: 20, after: $returnsAfter) {{
      {PAGE}
      nodes {{ id name status createdAt closedAt returnShippingFees {{ id amountSet {{ {MONEY} }} }} }}
    }}
  }}
}}
"""

# The connections of each node kind, with what one element holds and how many come per page.
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
CONNECTIONS = {
    "Refund": {"refundLineItems": (REFUND_LINE, 25), "refundShippingLines": (REFUND_SHIPPING, 5),
               "transactions": (REFUND_TRANSACTION, 10)},
    "Return": {"returnLineItems": (RETURN_LINE, 25), "exchangeLineItems": (EXCHANGE_LINE, 10)},
}


def _details_query(kind: str) -> str:
    connections = "\n      ".join(f"{name}(first: {size}) {{ nodes {{ {fields} }} {PAGE} }}"
                                  for name, (fields, size) in CONNECTIONS[kind].items())
    return f"""
query Skilvis{kind}s($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on {kind} {{
      id
      {connections}
    }}
  }}
}}
"""


def _rest_query(kind: str, connection: str) -> str:
    fields, size = CONNECTIONS[kind][connection]
    return f"""
query SkilvisMore{kind}{connection[0].upper()}{connection[1:]}($id: ID!, $after: String) {{
  node(id: $id) {{ ... on {kind} {{ {connection}(first: {size * 2}, after: $after) {{ nodes {{ {fields} }} {PAGE} }} }} }}
}}
"""


REFUND_DETAILS_QUERY = _details_query("Refund")
RETURN_DETAILS_QUERY = _details_query("Return")
REST_QUERIES = {(kind, name): _rest_query(kind, name) for kind in CONNECTIONS for name in CONNECTIONS[kind]}

# An order with more than one page of line items (B2B orders) reads the rest page by page.
LINE_ITEMS_QUERY = f"""
query SkilvisLineItems($id: ID!, $after: String) {{
  order(id: $id) {{ lineItems(first: 50, after: $after) {{ nodes {{ {LINE_ITEM} }} {PAGE} }} }}
}}
"""
SHIPPING_LINES_QUERY = f"""
query SkilvisShippingLines($id: ID!, $after: String) {{
  order(id: $id) {{ shippingLines(first: 20, after: $after) {{ nodes {{ id title discountedPriceSet {{ {MONEY} }} {TAX_LINES} }} {PAGE} }} }}
}}
"""

REFUNDS_PER_CALL = 4
RETURNS_PER_CALL = 3


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


def _batches(ids: list[str], size: int):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


class _Reader:
    """One read of one order: every query's answer, with the paths Shopify withheld."""

    def __init__(self, admin, shop: str):
        self.admin, self.shop = admin, shop
        self.withheld: set[tuple] = set()

    def query(self, query: str, variables: dict) -> dict:
        answer = self.admin.query(self.shop, query, variables)
        self.withheld.update(answer.withheld)
        return answer.data

    def page_rest(self, first_page: dict, query: str, variables: dict, dig) -> list:
        """The nodes of a connection: the page at hand and every page after it."""
        nodes, page = list(_nodes(first_page)), first_page
        while page["pageInfo"]["hasNextPage"]:
            page = dig(self.query(query, {**variables, "after": page["pageInfo"]["endCursor"]}))
            nodes.extend(_nodes(page))
        return nodes

    def details(self, kind: str, ids: list[str], size: int) -> dict[str, dict]:
        query = REFUND_DETAILS_QUERY if kind == "Refund" else RETURN_DETAILS_QUERY
        found = {}
        for batch in _batches(ids, size):
            for node in self.query(query, {"ids": batch})["nodes"]:
                if node:
                    for name in CONNECTIONS[kind]:
                        node[name] = {"nodes": self.page_rest(
                            node[name], REST_QUERIES[(kind, name)], {"id": node["id"]},
                            lambda data, name=name: data["node"][name])}
                    found[node["id"]] = node
        return found


def read_order(admin, shop: str, order_gid: str) -> Order | None:
    """Read the order with every refund and return in full, however many lines, refunds and
    returns it has (D6); None when Shopify does not show it (deleted, or older than the 60 days
    an app without read_all_orders sees)."""
    reader = _Reader(admin, shop)
    variables = {"id": order_gid, "returnsAfter": None}
    data = reader.query(ORDER_QUERY, variables)["order"]
    if data is None:
        return None
    items = reader.page_rest(data["lineItems"], LINE_ITEMS_QUERY, {"id": order_gid},
                             lambda d: d["order"]["lineItems"])
    shipping = reader.page_rest(data["shippingLines"], SHIPPING_LINES_QUERY, {"id": order_gid},
                                lambda d: d["order"]["shippingLines"])
    returns = list(_nodes(data["returns"]))
    page = data["returns"]
    while page["pageInfo"]["hasNextPage"]:
        variables["returnsAfter"] = page["pageInfo"]["endCursor"]
        page = reader.query(ORDER_QUERY, variables)["order"]["returns"]
        returns.extend(_nodes(page))
    refunds = data["refunds"] or []
    refund_details = reader.details("Refund", [r["id"] for r in refunds], REFUNDS_PER_CALL)
    return_details = reader.details("Return", [r["id"] for r in returns], RETURNS_PER_CALL)
    data = {**data, "lineItems": {"nodes": items}, "shippingLines": {"nodes": shipping},
            "refunds": [{**r, **refund_details.get(r["id"], {})} for r in refunds],
            "returns": [{**r, **return_details.get(r["id"], {})} for r in returns]}
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
