"""The store as GraphQL Admin API objects: plain dicts with the schema's field names.

Lists and links back up the tree (a refund's order, a return's refunds) are callables, so only
what a query asks for is built and the cycles in the graph cost nothing. graphql_api.py
pages the lists that the schema calls connections.
"""
from __future__ import annotations

import re
import zlib
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from graphql import GraphQLError

from .graphql_api import page
from .money import ZERO, text
from .payloads import address, customer_name, gid
from .store import (
    CLOSED, OPEN, PENDING, REQUESTED, SUCCESS, LineItem, Order, Refund, Return, Shop, Store, Transaction,
)

_GID = re.compile(r"gid://shopify/(\w+)/(\d+)")

# Level-2 protected customer data (https://shopify.dev/docs/apps/launch/protected-customer-data:
# name, address, phone, e-mail): (type, field) pairs answered null with an ACCESS_DENIED error
# when the shop has not approved the app for them (graphql_api._resolve). For addresses the
# stand-in withholds everything that places a person (Shopify names lines 1 and 2, geolocation and
# zip; company, city and province are the harsher guess); the country stays visible.
PROTECTED_FIELDS = frozenset({
    ("Order", "email"), ("Order", "phone"),
    *(("Customer", f) for f in ("firstName", "lastName", "displayName", "email", "phone", "defaultEmailAddress",
                                "defaultPhoneNumber", "defaultAddress", "addresses", "addressesV2")),
    ("CustomerEmailAddress", "emailAddress"), ("CustomerPhoneNumber", "phoneNumber"),
    *(("MailingAddress", f) for f in ("name", "firstName", "lastName", "company", "address1", "address2", "city",
                                      "zip", "phone", "province", "provinceCode", "latitude", "longitude",
                                      "formatted", "formattedArea")),
})
_KINDS = {"Order": Order, "Return": Return, "Refund": Refund, "LineItem": LineItem, "OrderTransaction": Transaction}


def iso(moment: datetime | None) -> str | None:
    """Shopify's DateTime: UTC, whole seconds."""
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: Decimal, currency: str) -> dict:
    return {"amount": text(amount, currency), "currencyCode": currency}


def bag(amount: Decimal, currency: str) -> dict:
    """A MoneyBag; the sandbox has one currency per shop, so both sides are the same."""
    return {"shopMoney": money(amount, currency), "presentmentMoney": money(amount, currency)}


# --- the root --------------------------------------------------------------------------

def root(store: Store, domain: str, run) -> dict:
    """QueryRoot for one shop: what the Skilvís reader needs (order, orders, shop, node)."""
    shop = store.shop(domain)
    if not shop.protected_customer_data:
        run.withheld = PROTECTED_FIELDS

    def one(kind):
        def find(id, **_):
            return _node(store, shop, id, kind)
        return find

    def nodes(ids, **_):
        return [_node(store, shop, i) for i in ids]

    return {
        "shop": lambda **_: shop_node(shop),
        "order": one("Order"),
        "return": one("Return"),
        "refund": one("Refund"),
        "node": lambda id, **_: _node(store, shop, id),
        "nodes": nodes,
        "orders": lambda **args: orders(shop, args, run, store.visible),
        "currentAppInstallation": lambda **_: app_installation(shop),
    }


def app_installation(shop: Shop) -> dict:
    """QueryRoot.currentAppInstallation: the scopes granted on this shop."""
    return {"__typename": "AppInstallation", "id": gid("AppInstallation", shop.id),
            "accessScopes": [{"__typename": "AccessScope", "handle": s, "description": s}
                             for s in shop.granted_scopes]}


def _node(store: Store, shop: Shop, global_id: str, kind: str | None = None):
    match = _GID.fullmatch(global_id)
    if not match:
        raise GraphQLError(f"Invalid global id '{global_id}'", extensions={"code": "argumentLiteralsIncompatible"})
    if kind is not None and match[1] != kind:
        raise GraphQLError(f"Invalid global id '{global_id}': expected a {kind}",
                           extensions={"code": "argumentLiteralsIncompatible"})
    obj = store.objects.get(int(match[2]))
    if obj is None or not isinstance(obj, _KINDS.get(match[1], ())) or _shop_of(obj) is not shop:
        return None
    if not store.visible(obj if isinstance(obj, Order) else obj.order):
        return None  # older than 60 days without read_all_orders
    render = {Order: order_node, Return: return_node, Refund: refund_node, LineItem: line_item_node,
              Transaction: transaction_node}[type(obj)]
    return render(obj)


def _shop_of(obj) -> Shop:
    return obj.shop if isinstance(obj, Order) else obj.order.shop


def shop_node(shop: Shop) -> dict:
    offset = datetime.now(ZoneInfo(shop.timezone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return {
        "__typename": "Shop", "id": gid("Shop", shop.id), "name": shop.name, "myshopifyDomain": shop.domain,
        "currencyCode": shop.currency, "ianaTimezone": shop.timezone, "email": f"owner@{shop.domain}",
        "contactEmail": f"owner@{shop.domain}", "createdAt": iso(shop.created_at), "updatedAt": iso(shop.created_at),
        "taxesIncluded": shop.taxes_included, "taxShipping": True, "url": f"https://{shop.domain}",
        "timezoneOffsetMinutes": minutes,
        "timezoneOffset": f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02}{abs(minutes) % 60:02}",
        "timezoneAbbreviation": datetime.now(ZoneInfo(shop.timezone)).tzname(), "weightUnit": "KILOGRAMS",
        "enabledPresentmentCurrencies": [shop.currency], "shopOwnerName": shop.name,
    }


# --- orders ----------------------------------------------------------------------------

_SORT_KEYS = {
    "ID": lambda o: o.id,
    "CREATED_AT": lambda o: o.created_at.astimezone(timezone.utc).isoformat(),
    "PROCESSED_AT": lambda o: o.created_at.astimezone(timezone.utc).isoformat(),
    "UPDATED_AT": lambda o: o.updated_at.astimezone(timezone.utc).isoformat(),
    "ORDER_NUMBER": lambda o: o.number,
    "TOTAL_PRICE": lambda o: float(o.totals().original),
    "CURRENT_TOTAL_PRICE": lambda o: float(o.totals().current),
}


def orders(shop: Shop, args: dict, run, visible=lambda o: True) -> dict:
    """QueryRoot.orders: Shopify's search syntax (the fields below), sorted, paged; only the
    orders the app may see (`visible`: the 60-day window)."""
    query = args.get("query")
    terms, warnings = _search_terms(query or "", shop)
    if warnings:
        run.search.append({"path": ["orders"], "query": query, "warnings": warnings})
    found = [o for o in shop.orders if visible(o) and all(term(o) for term in terms)]
    key = _SORT_KEYS.get(args.get("sortKey") or "ID", _SORT_KEYS["ID"])
    keyed = sorted(([key(o), o.id], o) for o in found)
    return page([o for _, o in keyed], args, keys=[k for k, _ in keyed], render=order_node)


_TOKEN = re.compile(r"""(-?)(?:(\w+):)?(<=|>=|<|>|=)?('[^']*'|"[^"]*"|\S+)""")
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "=": lambda a, b: a == b, "": lambda a, b: a == b}


def _search_terms(query: str, shop: Shop):
    """Terms joined by AND (written or not), each a predicate over an order. Unknown fields
    are ignored with a warning, as Shopify does."""
    terms, warnings = [], []
    for negate, name, op, raw in _TOKEN.findall(query):
        value = raw[1:-1] if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) > 1 else raw
        if not name and value in ("AND", "and"):
            continue
        term = _term(name or "", op or "", value, shop)
        if term is None:
            warnings.append({"field": name or value, "message": "Invalid search field for this query."})
            continue
        terms.append((lambda t: lambda o: not t(o))(term) if negate else term)
    return terms, warnings


def _term(name: str, op: str, value: str, shop: Shop):
    compare = _COMPARE[op]
    if name in ("updated_at", "created_at", "processed_at"):
        attribute, moment = ("updated_at" if name == "updated_at" else "created_at"), _moment(value, shop)
        return None if moment is None else lambda o: compare(getattr(o, attribute), moment)
    if name == "name":
        return lambda o: o.name.lstrip("#") == value.lstrip("#")
    if name == "id" and value.isdigit():
        return lambda o: compare(o.id, int(value))
    if name == "financial_status":
        return lambda o: o.totals().financial_status.lower() == value.lower()
    if name == "return_status":
        return lambda o: _return_status(o).lower() == value.lower()
    if name == "email":
        return lambda o: o.customer["email"].lower() == value.lower()
    if name == "status":
        return lambda o: True  # open/any: no order here is ever closed or canceled
    if name == "test" and value.lower() in ("true", "false"):
        return lambda o: o.test == (value.lower() == "true")
    if not name:
        return lambda o: value.lower() in o.name.lower() or value.lower() in o.customer["email"].lower()
    return None


def _moment(value: str, shop: Shop) -> datetime | None:
    """A search date: ISO 8601; without an offset it is the shop's local time, as on Shopify."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(shop.timezone))


def _return_status(order: Order) -> str:
    statuses = {r.status for r in order.returns}
    if REQUESTED in statuses:
        return "RETURN_REQUESTED"
    if OPEN in statuses:
        return "IN_PROGRESS"
    if CLOSED in statuses:
        return "RETURNED"
    return "NO_RETURN"


def order_node(o: Order) -> dict:
    cur, totals = o.currency, o.totals()
    items_listed = sum((li.listed() for li in o.line_items), ZERO)
    shipping_listed = sum((s.price for s in o.shipping_lines), ZERO)
    tax = sum((li.tax() for li in o.line_items), ZERO) + sum((s.tax() for s in o.shipping_lines), ZERO)
    first, last = customer_name(o)
    home = _address(o)
    return {
        "__typename": "Order", "id": gid("Order", o.id), "legacyResourceId": str(o.id), "name": o.name,
        "number": o.number - 1000, "createdAt": iso(o.created_at), "processedAt": iso(o.created_at),
        "updatedAt": iso(o.updated_at), "cancelledAt": None, "cancelReason": None, "closed": False,
        "closedAt": None, "confirmed": True, "test": o.test, "edited": False, "note": None, "tags": [],
        "currencyCode": cur, "presentmentCurrencyCode": cur, "taxesIncluded": o.taxes_included,
        "taxExempt": False, "dutiesIncluded": False, "estimatedTaxes": False, "requiresShipping": True,
        "email": o.customer["email"], "phone": o.customer.get("phone"),
        "customer": {
            "__typename": "Customer", "id": gid("Customer", o.customer_id), "legacyResourceId": str(o.customer_id),
            "email": o.customer["email"], "firstName": first, "lastName": last,
            "displayName": f"{first} {last}".strip(), "phone": o.customer.get("phone"),
            "defaultEmailAddress": _email_address(o), "defaultPhoneNumber": _phone_number(o),
            "defaultAddress": dict(home), "addresses": lambda **_: [dict(home)],
            "addressesV2": lambda **_: [dict(home)],
            "createdAt": iso(o.created_at), "updatedAt": iso(o.created_at), "taxExempt": False,
            "verifiedEmail": True, "tags": [], "state": "DISABLED",
        },
        "billingAddress": home, "shippingAddress": dict(home), "displayAddress": dict(home),
        "billingAddressMatchesShippingAddress": True,
        "paymentGatewayNames": [o.gateway],
        "displayFinancialStatus": totals.financial_status, "displayFulfillmentStatus": "FULFILLED",
        "returnStatus": _return_status(o), "fullyPaid": totals.outstanding == 0 and totals.received > 0,
        "unpaid": totals.received == 0, "refundable": totals.received > totals.refunded,
        "totalPriceSet": bag(totals.original, cur), "originalTotalPriceSet": bag(totals.original, cur),
        "currentTotalPriceSet": bag(totals.current, cur),
        "subtotalPriceSet": bag(items_listed, cur), "currentSubtotalPriceSet": bag(items_listed, cur),
        "totalTaxSet": bag(tax, cur), "currentTotalTaxSet": bag(tax, cur),
        "totalShippingPriceSet": bag(shipping_listed, cur), "currentShippingPriceSet": bag(shipping_listed, cur),
        "totalDiscountsSet": bag(o.discounts, cur), "currentTotalDiscountsSet": bag(o.discounts, cur),
        "totalReceivedSet": bag(totals.received, cur), "totalRefundedSet": bag(totals.refunded, cur),
        "netPaymentSet": bag(totals.received - totals.refunded, cur),
        "totalOutstandingSet": bag(totals.outstanding, cur),
        "totalCapturableSet": bag(ZERO, cur), "totalTipReceivedSet": bag(ZERO, cur),
        "totalRefundedShippingSet": bag(sum((r.shipping for r in o.refunds), ZERO), cur),
        "refundDiscrepancySet": bag(sum((r.adjustment for r in o.refunds), ZERO), cur),
        "lineItems": lambda **_: [line_item_node(li) for li in o.line_items],
        "shippingLines": lambda **_: [shipping_line_node(s) for s in o.shipping_lines],
        "transactions": lambda **_: [transaction_node(t) for t in o.transactions],
        "refunds": lambda **_: [refund_node(r) for r in o.refunds],
        "returns": lambda **_: [return_node(r) for r in o.returns],
    }


def _email_address(o: Order) -> dict:
    """Customer.defaultEmailAddress (Customer.email is deprecated for it since 2025-04)."""
    return {"__typename": "CustomerEmailAddress", "emailAddress": o.customer["email"],
            "marketingState": "NOT_SUBSCRIBED", "marketingOptInLevel": None, "marketingUpdatedAt": None,
            "openTrackingLevel": "UNKNOWN", "validFormat": True, "sourceLocation": None,
            "marketingUnsubscribeUrl": f"https://{o.shop.domain}/unsubscribe",
            "openTrackingUrl": f"https://{o.shop.domain}/tracking"}


def _phone_number(o: Order) -> dict | None:
    phone = o.customer.get("phone")
    return None if not phone else {
        "__typename": "CustomerPhoneNumber", "phoneNumber": phone, "marketingState": "NOT_SUBSCRIBED",
        "marketingOptInLevel": None, "marketingUpdatedAt": None, "marketingCollectedFrom": None,
        "sourceLocation": None}


def _address(o: Order) -> dict:
    a = address(o)
    lines = [a["company"], a["name"], a["address1"], a["address2"], f"{a['zip']} {a['city']}", a["country"]]
    return {
        "__typename": "MailingAddress", "id": gid("MailingAddress", o.address_id), "firstName": a["first_name"],
        "lastName": a["last_name"], "name": a["name"], "company": a["company"], "address1": a["address1"],
        "address2": a["address2"], "city": a["city"], "zip": a["zip"], "province": a["province"] or None,
        "provinceCode": a["province_code"] or None, "country": a["country"], "countryCodeV2": a["country_code"],
        "phone": a["phone"] or None, "latitude": None, "longitude": None, "coordinatesValidated": False,
        "formatted": lambda **_: [line for line in lines if line], "formattedArea": f"{a['city']}, {a['country']}",
    }


def _tax_lines(amount: Decimal, rate: Decimal, currency: str) -> list[dict]:
    return [{"title": "VAT", "rate": float(rate / 100), "ratePercentage": float(rate), "source": "Shopify",
             "channelLiable": False, "price": text(amount, currency), "priceSet": bag(amount, currency)}]


def _discount_allocation(amount: Decimal, cur: str) -> dict:
    """A line-level automatic discount, the one kind of discount the stand-in models."""
    return {"__typename": "DiscountAllocation", "allocatedAmount": money(amount, cur), "allocatedAmountSet": bag(amount, cur),
            "discountApplication": {"__typename": "AutomaticDiscountApplication", "title": "Afsláttur",
                                    "allocationMethod": "EACH", "targetSelection": "EXPLICIT", "targetType": "LINE_ITEM",
                                    "index": 0, "value": {"__typename": "MoneyV2", "amount": text(amount, cur),
                                                          "currencyCode": cur}}}


def line_item_node(li: LineItem) -> dict:
    cur = li.order.currency
    unit, paid, total = li.unit_price, li.paid_unit, li.listed()
    original, discount = unit * li.quantity, li.discount
    return {
        "__typename": "LineItem", "id": gid("LineItem", li.id), "sku": li.sku, "title": li.title, "name": li.title,
        "variantTitle": None, "vendor": None, "variant": None, "product": None, "quantity": li.quantity,
        "currentQuantity": li.quantity - li.refunded_quantity,
        "refundableQuantity": li.quantity - li.refunded_quantity, "fulfillableQuantity": 0,
        "unfulfilledQuantity": 0, "nonFulfillableQuantity": 0, "fulfillmentStatus": "fulfilled",
        "requiresShipping": True, "taxable": li.tax_rate > 0, "isGiftCard": False, "restockable": True,
        "canRestock": True, "merchantEditable": False, "customAttributes": [],
        "discountAllocations": [_discount_allocation(discount, cur)] if discount else [],
        "duties": [], "originalUnitPrice": text(unit, cur), "originalUnitPriceSet": bag(unit, cur),
        "discountedUnitPrice": text(paid, cur), "discountedUnitPriceSet": bag(paid, cur),
        "discountedUnitPriceAfterAllDiscountsSet": bag(paid, cur), "originalTotal": text(original, cur),
        "originalTotalSet": bag(original, cur), "discountedTotal": text(total, cur), "discountedTotalSet": bag(total, cur),
        "totalDiscount": text(discount, cur), "totalDiscountSet": bag(discount, cur),
        "unfulfilledOriginalTotal": text(ZERO, cur), "unfulfilledOriginalTotalSet": bag(ZERO, cur),
        "unfulfilledDiscountedTotal": text(ZERO, cur), "unfulfilledDiscountedTotalSet": bag(ZERO, cur),
        "priceAfterAllDiscountsBeforeTaxesSet": bag(total if not li.order.taxes_included else total - li.tax(), cur),
        "taxLines": _tax_lines(li.tax(), li.tax_rate, cur),
    }


def shipping_line_node(s) -> dict:
    cur = s.order.currency
    return {
        "__typename": "ShippingLine", "id": gid("ShippingLine", s.id), "title": s.title, "code": s.title,
        "source": "shopify", "carrierIdentifier": None, "deliveryCategory": None, "phone": None, "custom": False,
        "isRemoved": False, "shippingRateHandle": None, "discountAllocations": [], "price": text(s.price, cur),
        "originalPrice": money(s.price, cur), "originalPriceSet": bag(s.price, cur),
        "discountedPrice": money(s.price, cur), "discountedPriceSet": bag(s.price, cur),
        "currentDiscountedPriceSet": bag(s.price, cur), "taxLines": _tax_lines(s.tax(), s.tax_rate, cur),
    }


def transaction_node(t: Transaction) -> dict:
    cur = t.order.currency
    children = [c for c in t.order.transactions if c.parent is t and c.status == SUCCESS]
    refundable = t.amount - sum((c.amount for c in children), ZERO) if t.kind == "SALE" and t.status == SUCCESS else ZERO
    return {
        "__typename": "OrderTransaction", "id": gid("OrderTransaction", t.id), "kind": t.kind, "status": t.status,
        "gateway": t.gateway, "formattedGateway": t.gateway.replace("_", " ").title(), "test": t.order.test,
        "amount": text(t.amount, cur), "amountV2": money(t.amount, cur), "amountSet": bag(t.amount, cur),
        "createdAt": iso(t.created_at), "processedAt": iso(t.processed_at), "errorCode": None,
        "authorizationCode": None, "manualPaymentGateway": t.gateway == "manual", "manuallyCapturable": False,
        "multiCapturable": False, "fees": [], "paymentId": f"{t.order.name}.{t.order.transactions.index(t) + 1}",
        "maximumRefundable": text(refundable, cur), "maximumRefundableV2": money(refundable, cur),
        "totalUnsettledSet": bag(t.amount if t.status == PENDING else ZERO, cur),
        "parentTransaction": lambda **_: transaction_node(t.parent) if t.parent else None,
        "order": lambda **_: order_node(t.order),
    }


# --- returns ---------------------------------------------------------------------------

def return_node(ret: Return) -> dict:
    cur = ret.order.currency
    fees = [] if ret.shipping_fee is None else [{
        "__typename": "ReturnShippingFee", "id": gid("ReturnShippingFee", ret.shipping_fee_id),
        "amountSet": bag(ret.shipping_fee, cur)}]
    return {
        "__typename": "Return", "id": gid("Return", ret.id), "name": ret.name, "status": ret.status,
        "createdAt": iso(ret.created_at), "closedAt": iso(ret.closed_at),
        "requestApprovedAt": iso(ret.request_approved_at), "staffMember": None,
        "totalQuantity": sum(line.quantity for line in ret.lines),
        "decline": None if ret.decline is None else {"reason": ret.decline["reason"], "note": ret.decline["note"]},
        "returnShippingFees": fees, "suggestedFinancialOutcome": None, "suggestedRefund": None,
        "order": lambda **_: order_node(ret.order),
        "returnLineItems": lambda **_: [_return_line_node(line) for line in ret.lines],
        "exchangeLineItems": lambda **_: [_exchange_line_node(line) for line in ret.exchange_lines],
        "refunds": lambda **_: [refund_node(r) for r in ret.refunds],
        "transactions": lambda **_: [transaction_node(t) for r in ret.refunds for t in r.transactions],
        "reverseFulfillmentOrders": lambda **_: [],
    }


def _return_line_node(line) -> dict:
    cur = line.ret.order.currency
    li = line.line_item
    fee = line.restocking_fee
    processed = line.processed_quantity
    return {
        "__typename": "ReturnLineItem", "id": gid("ReturnLineItem", line.id), "quantity": line.quantity,
        "refundedQuantity": line.refunded_quantity, "refundableQuantity": line.quantity - line.refunded_quantity,
        "processedQuantity": processed, "processableQuantity": line.quantity - processed,
        "unprocessedQuantity": line.quantity - processed, "returnReason": "UNKNOWN", "returnReasonNote": "",
        "returnReasonDefinition": _reason_definition(line.reason), "customerNote": None, "totalWeight": None,
        "withCodeDiscountedTotalPriceSet": bag(li.listed(line.quantity), cur),
        "restockingFee": None if fee is None else {
            "__typename": "RestockingFee", "id": gid("RestockingFee", line.restocking_fee_id),
            "percentage": float(line.restocking_fee_percent), "amountSet": bag(fee, cur)},
        "fulfillmentLineItem": {
            "id": gid("FulfillmentLineItem", li.fulfillment_line_item_id), "quantity": li.quantity,
            "originalTotal": text(li.listed(), cur), "originalTotalSet": bag(li.listed(), cur),
            "discountedTotal": text(li.listed(), cur), "discountedTotalSet": bag(li.listed(), cur),
            "lineItem": lambda **_: line_item_node(li)},
    }


def _reason_definition(name: str | None) -> dict | None:
    if not name:
        return None
    # A shop's reason definitions are shared by its returns: the same name, the same definition.
    handle = re.sub(r"[\W_]+", "-", name.lower()).strip("-") or "other"
    return {"__typename": "ReturnReasonDefinition", "id": gid("ReturnReasonDefinition", zlib.crc32(name.encode())),
            "handle": handle, "name": name, "deleted": False}


def _exchange_line_node(line) -> dict:
    made = [line_item_node(line.line_item)] if line.line_item is not None else []
    processed = line.processed_quantity
    return {
        "__typename": "ExchangeLineItem", "id": gid("ExchangeLineItem", line.id), "quantity": line.quantity,
        "processedQuantity": processed, "processableQuantity": line.quantity - processed,
        "unprocessedQuantity": line.quantity - processed, "variantSku": line.sku, "title": line.title,
        "variantTitle": None, "variantId": None, "productId": None,
        "lineItems": made, "lineItem": made[0] if made else None,
    }


# --- refunds ---------------------------------------------------------------------------

def refund_node(r: Refund) -> dict:
    cur = r.order.currency
    return {
        "__typename": "Refund", "id": gid("Refund", r.id), "legacyResourceId": str(r.id),
        "createdAt": iso(r.created_at), "updatedAt": iso(r.created_at), "processedAt": iso(r.created_at),
        "note": r.note, "staffMember": None, "duties": [],
        "totalRefunded": money(r.refunded, cur), "totalRefundedSet": bag(r.refunded, cur),
        "order": lambda **_: order_node(r.order),
        "return": lambda **_: return_node(r.ret) if r.ret else None,
        "refundLineItems": lambda **_: [_refund_line_node(line) for line in r.lines],
        "refundShippingLines": lambda **_: _refund_shipping_nodes(r),
        "orderAdjustments": lambda **_: [] if not r.adjustment else [{
            "__typename": "OrderAdjustment", "id": gid("OrderAdjustment", r.adjustment_id),
            "amountSet": bag(r.adjustment, cur), "taxAmountSet": bag(ZERO, cur), "reason": "REFUND_DISCREPANCY"}],
        "transactions": lambda **_: [transaction_node(t) for t in r.transactions],
    }


def _refund_line_node(line) -> dict:
    cur = line.refund.order.currency
    unit = line.line_item.paid_unit
    return {
        "__typename": "RefundLineItem", "id": gid("RefundLineItem", line.id), "quantity": line.quantity,
        "lineItem": lambda **_: line_item_node(line.line_item),
        "restockType": "RETURN" if line.refund.ret else "NO_RESTOCK", "restocked": line.refund.ret is not None,
        "location": None, "price": text(unit, cur), "priceSet": bag(unit, cur),
        "subtotal": text(line.listed(), cur), "subtotalSet": bag(line.listed(), cur),
        "totalTax": text(line.tax(), cur), "totalTaxSet": bag(line.tax(), cur),
    }


def _refund_shipping_nodes(r: Refund) -> list[dict]:
    if r.shipping_line is None:
        return []
    cur = r.order.currency
    return [{
        "__typename": "RefundShippingLine", "id": gid("RefundShippingLine", r.shipping_refund_id),
        "shippingLine": lambda **_: shipping_line_node(r.shipping_line),
        "subtotalAmountSet": bag(r.shipping_listed, cur), "taxAmountSet": bag(r.shipping_tax, cur),
    }]
