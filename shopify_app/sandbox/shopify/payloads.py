"""Webhook payloads of the Shopify stand-in, in Shopify's REST shapes.

Shapes follow ../shared/spec/webhooks/examples and validate against the schemas beside them.
Those schemas were inferred from Shopify's sample payloads, so where a sample had an empty
list the schema admits only an empty list: `returns/request|approve` carry no
`return_line_items` and a null `name`, `refunds/create` no `refund_shipping_lines`,
`orders/updated` no `refunds` or `returns`; where a sample had a value the schema admits no
null, so `order_transactions/create` carries an `authorization` string and a `device_id` of 1.
The app must not need any of it: webhooks are triggers, and the truth is read back through
GraphQL.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from .money import ZERO, text

_COUNTRY_NAMES = {"IS": "Iceland", "DK": "Denmark", "NO": "Norway", "SE": "Sweden", "US": "United States",
                  "GB": "United Kingdom", "DE": "Germany"}


def gid(kind: str, id_: int) -> str:
    return f"gid://shopify/{kind}/{id_}"


def timestamp(moment: datetime | None, zone: str) -> str | None:
    """Shopify's REST time: seconds, in the shop's time zone, with its offset."""
    return None if moment is None else moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def money_set(amount, currency: str) -> dict:
    money = {"amount": text(amount, currency), "currency_code": currency}
    return {"shop_money": dict(money), "presentment_money": dict(money)}


def _unsettled_set(amount, currency: str) -> dict:
    money = {"amount": text(amount, currency), "currency": currency}
    return {"presentment_money": dict(money), "shop_money": dict(money)}


def _ref(kind: str, obj) -> dict:
    return {"id": obj.id, "admin_graphql_api_id": gid(kind, obj.id)}


# --- orders ----------------------------------------------------------------------------

def customer_name(order) -> tuple[str, str]:
    """First and last name from the scenario's customer, else from the e-mail address."""
    customer = order.customer
    first = customer.get("first_name") or customer["email"].split("@")[0].split(".")[0].capitalize()
    return first, customer.get("last_name", "")


def address(order) -> dict:
    """The billing (and shipping) address; Icelandic shops collect the kennitala in `company`."""
    c = order.customer
    first, last = customer_name(order)
    country = c.get("country_code", "IS")
    return {
        "first_name": first, "last_name": last, "name": f"{first} {last}".strip(), "company": c.get("company"),
        "address1": c.get("address1", "Laugavegur 1"), "address2": c.get("address2"),
        "city": c.get("city", "Reykjavík"), "zip": c.get("zip", "101"), "province": c.get("province", ""),
        "province_code": c.get("province_code", ""), "country": _COUNTRY_NAMES.get(country, country),
        "country_code": country, "phone": c.get("phone", ""), "latitude": None, "longitude": None,
    }


def _customer(order) -> dict:
    first, last = customer_name(order)
    home = address(order)
    default_address = {k: v for k, v in home.items() if k not in ("latitude", "longitude")}
    default_address.update(id=order.address_id, customer_id=order.customer_id, default=True,
                           country_name=home["country"])
    return {
        "id": order.customer_id, "email": order.customer["email"], "created_at": None, "updated_at": None,
        "first_name": first, "last_name": last, "state": "disabled", "note": None, "verified_email": True,
        "multipass_identifier": None, "tax_exempt": False, "phone": order.customer.get("phone"),
        "currency": order.currency, "tax_exemptions": [], "admin_graphql_api_id": gid("Customer", order.customer_id),
        "default_address": default_address,
    }


def _tax_line(tax, rate, currency: str) -> dict:
    return {"channel_liable": False, "price": text(tax, currency), "price_set": money_set(tax, currency),
            "rate": float(rate / 100), "title": "VAT"}


def line_item(li) -> dict:
    cur = li.order.currency
    discount = li.discount
    return {
        "id": li.id, "admin_graphql_api_id": gid("LineItem", li.id), "attributed_staffs": [],
        "current_quantity": li.quantity - li.refunded_quantity, "fulfillable_quantity": 0,
        "fulfillment_service": "manual", "fulfillment_status": "fulfilled", "gift_card": False, "grams": 0,
        "name": li.title, "price": text(li.unit_price, cur), "price_set": money_set(li.unit_price, cur),
        "product_exists": True, "product_id": None, "properties": [], "quantity": li.quantity,
        "requires_shipping": True, "sales_line_item_group_id": None, "sku": li.sku, "taxable": li.tax_rate > 0,
        "title": li.title, "total_discount": text(discount, cur), "total_discount_set": money_set(discount, cur),
        "variant_id": None, "variant_inventory_management": None, "variant_title": None, "vendor": None,
        "tax_lines": [_tax_line(li.tax(), li.tax_rate, cur)], "duties": [],
        "discount_allocations": [{"amount": text(discount, cur), "amount_set": money_set(discount, cur),
                                  "discount_application_index": 0}] if discount else [],
    }


def _shipping_line(s) -> dict:
    cur = s.order.currency
    price = text(s.price, cur)
    return {
        "id": s.id, "carrier_identifier": None, "code": s.title, "current_discounted_price_set": money_set(s.price, cur),
        "discount_allocations": [], "discounted_price": price, "discounted_price_set": money_set(s.price, cur),
        "is_removed": False, "phone": None, "price": price, "price_set": money_set(s.price, cur),
        "requested_fulfillment_service_id": None, "source": "shopify", "title": s.title,
        "tax_lines": [_tax_line(s.tax(), s.tax_rate, cur)],
    }


def _order_tax_lines(order) -> list[dict]:
    by_rate: dict = {}
    for priced in [*order.line_items, *order.shipping_lines]:
        by_rate[priced.tax_rate] = by_rate.get(priced.tax_rate, ZERO) + priced.tax()
    return [_tax_line(tax, rate, order.currency) for rate, tax in by_rate.items()]


def order(o) -> dict:
    """orders/updated: the whole order as it is now; without Level-2 approval on the shop its
    names, e-mail, phone and addresses are redacted (null)."""
    body = _order(o)
    return body if o.shop.protected_customer_data else redacted(body)


# Keys of a REST payload that carry Level-2 data (name, e-mail, phone, address), redacted when
# the app is not approved for them (https://shopify.dev/docs/apps/launch/protected-customer-data:
# "unapproved fields will be redacted"). Same harsher choice as the GraphQL side: all of an
# address but its country.
_PERSONAL = frozenset({"email", "contact_email", "phone", "first_name", "last_name", "name", "company",
                       "address1", "address2", "city", "zip", "province", "province_code", "latitude",
                       "longitude"})
_PERSONAL_OBJECTS = ("customer", "billing_address", "shipping_address", "default_address")


def redacted(payload: dict) -> dict:
    """An order payload with its Level-2 fields null (the order's own `name`, #1001, stays)."""
    out = {k: (None if k in ("email", "contact_email", "phone") else v) for k, v in payload.items()}
    for key in _PERSONAL_OBJECTS:
        if isinstance(out.get(key), dict):
            out[key] = _redact_object(out[key])
    return out


def _redact_object(obj: dict) -> dict:
    out = {k: (None if k in _PERSONAL else v) for k, v in obj.items()}
    for key in _PERSONAL_OBJECTS:
        if isinstance(out.get(key), dict):
            out[key] = _redact_object(out[key])
    return out


def _order(o) -> dict:
    cur, zone, totals = o.currency, o.shop.timezone, o.totals()

    def amount(value):
        return text(value, cur)

    items_listed = sum((li.listed() for li in o.line_items), ZERO)
    discounts = o.discounts
    shipping_listed = sum((s.price for s in o.shipping_lines), ZERO)
    tax = sum((li.tax() for li in o.line_items), ZERO) + sum((s.tax() for s in o.shipping_lines), ZERO)
    token = hashlib.sha256(f"{o.shop.domain}/{o.id}".encode()).hexdigest()[:32]
    home = address(o)
    return {
        "id": o.id, "admin_graphql_api_id": gid("Order", o.id), "app_id": None, "browser_ip": None,
        "buyer_accepts_marketing": False, "cancel_reason": None, "cancelled_at": None, "cart_token": None,
        "checkout_token": None, "client_details": None, "closed_at": None, "company": None,
        "confirmation_number": None, "confirmed": True, "contact_email": o.customer["email"],
        "created_at": timestamp(o.created_at, zone), "currency": cur,
        "current_shipping_price_set": money_set(shipping_listed, cur),
        "current_subtotal_price": amount(items_listed), "current_subtotal_price_set": money_set(items_listed, cur),
        "current_total_additional_fees_set": None, "current_total_discounts": amount(discounts),
        "current_total_discounts_set": money_set(discounts, cur), "current_total_duties_set": None,
        "current_total_price": amount(totals.current), "current_total_price_set": money_set(totals.current, cur),
        "current_total_tax": amount(tax), "current_total_tax_set": money_set(tax, cur),
        "customer": _customer(o), "customer_locale": "is", "device_id": None, "discount_applications": [
            {"type": "automatic", "title": "Afsláttur", "description": "Afsláttur",
             "value": next(text(li.unit_discount, cur) for li in o.line_items if li.unit_discount),
             "value_type": "fixed_amount", "allocation_method": "each", "target_selection": "explicit",
             "target_type": "line_item"}] if discounts else [],
        "discount_codes": [], "duties_included": False, "email": o.customer["email"], "estimated_taxes": False,
        "financial_status": totals.financial_status.lower(), "fulfillment_status": "fulfilled",
        "fulfillments": [], "landing_site": None, "landing_site_ref": None, "line_item_groups": [],
        "line_items": [line_item(li) for li in o.line_items], "location_id": None,
        "merchant_business_entity_id": str(o.shop.id), "merchant_of_record_app_id": None, "name": o.name,
        "note": None, "note_attributes": [], "number": o.number - 1000, "order_number": o.number,
        "order_status_url": f"https://{o.shop.domain}/{o.shop.id}/orders/{token}/authenticate?key={token[:16]}",
        "original_total_additional_fees_set": None, "original_total_duties_set": None,
        "payment_gateway_names": [o.gateway], "payment_terms": None, "phone": None, "po_number": None,
        "presentment_currency": cur, "processed_at": timestamp(o.created_at, zone), "reference": None,
        "referring_site": None, "refunds": [], "returns": [], "billing_address": home, "shipping_address": dict(home),
        "shipping_lines": [_shipping_line(s) for s in o.shipping_lines], "source_identifier": None,
        "source_name": "web", "source_url": None, "subtotal_price": amount(items_listed),
        "subtotal_price_set": money_set(items_listed, cur), "tags": "", "tax_exempt": False,
        "tax_lines": _order_tax_lines(o), "taxes_included": o.taxes_included, "test": o.test, "token": token,
        "total_cash_rounding_payment_adjustment_set": money_set(ZERO, cur),
        "total_cash_rounding_refund_adjustment_set": money_set(ZERO, cur), "total_discounts": amount(discounts),
        "total_discounts_set": money_set(discounts, cur), "total_line_items_price": amount(items_listed + discounts),
        "total_line_items_price_set": money_set(items_listed + discounts, cur), "total_outstanding": amount(totals.outstanding),
        "total_price": amount(totals.original), "total_price_set": money_set(totals.original, cur),
        "total_shipping_price_set": money_set(shipping_listed, cur), "total_tax": amount(tax),
        "total_tax_set": money_set(tax, cur), "total_tip_received": amount(ZERO), "total_weight": 0,
        "updated_at": timestamp(o.updated_at, zone), "user_id": None,
    }


# --- money -----------------------------------------------------------------------------

def transaction(t) -> dict:
    """order_transactions/create."""
    return {**_transaction(t), "device_id": 1, "payment_details": _card()}


def _transaction(t) -> dict:
    """A transaction as refunds/create lists it."""
    o, cur = t.order, t.order.currency
    return {
        "id": t.id, "order_id": o.id, "kind": t.kind.lower(), "gateway": t.gateway, "status": t.status.lower(),
        "message": None, "created_at": timestamp(t.created_at, o.shop.timezone), "test": o.test,
        "authorization": f"{t.kind.lower()}_{t.id}",
        "location_id": None, "user_id": None, "parent_id": t.parent.id if t.parent else None,
        "processed_at": timestamp(t.processed_at, o.shop.timezone), "device_id": None, "error_code": None,
        "source_name": "web", "receipt": {}, "amount": text(t.amount, cur),
        "currency": cur, "payment_id": f"{o.name}.{o.transactions.index(t) + 1}",
        "total_unsettled_set": _unsettled_set(t.amount if t.status == "PENDING" else ZERO, cur),
        "manual_payment_gateway": t.gateway == "manual", "amount_rounding": None,
        "admin_graphql_api_id": gid("OrderTransaction", t.id),
    }


def _card() -> dict:
    return {"credit_card_bin": None, "avs_result_code": None, "cvv_result_code": None,
            "credit_card_number": "•••• •••• •••• 4242", "credit_card_company": "Visa", "buyer_action_info": None,
            "credit_card_name": None, "credit_card_wallet": None, "credit_card_expiration_month": None,
            "credit_card_expiration_year": None, "payment_method_name": "visa"}


def refund(r) -> dict:
    """refunds/create."""
    o, cur, zone = r.order, r.order.currency, r.order.shop.timezone
    adjustments = []
    if r.adjustment:
        adjustments.append({
            "id": r.adjustment_id, "order_id": o.id, "refund_id": r.id, "amount": text(r.adjustment, cur),
            "amount_set": money_set(r.adjustment, cur), "tax_amount": text(ZERO, cur),
            "tax_amount_set": money_set(ZERO, cur), "kind": "refund_discrepancy", "reason": "Refund discrepancy",
        })
    return {
        "id": r.id, "admin_graphql_api_id": gid("Refund", r.id), "order_id": o.id,
        "created_at": timestamp(r.created_at, zone), "processed_at": timestamp(r.created_at, zone),
        "note": r.note or "", "user_id": o.shop.id, "restock": r.ret is not None, "duties": [],
        "total_duties_set": money_set(ZERO, cur), "return": _ref("Return", r.ret) if r.ret else None,
        "refund_shipping_lines": [], "order_adjustments": adjustments,
        "refund_line_items": [_refund_line(rl) for rl in r.lines],
        "transactions": [_transaction(t) for t in r.transactions],
    }


def _refund_line(rl) -> dict:
    cur = rl.refund.order.currency
    return {
        "id": rl.id, "quantity": rl.quantity, "line_item_id": rl.line_item.id, "location_id": None,
        "restock_type": "return" if rl.refund.ret else "no_restock",
        "subtotal": float(rl.listed()), "subtotal_set": money_set(rl.listed(), cur),
        "total_tax": float(rl.tax()), "total_tax_set": money_set(rl.tax(), cur), "line_item": line_item(rl.line_item),
    }


# --- returns ---------------------------------------------------------------------------

def _return_head(ret) -> dict:
    return {**_ref("Return", ret), "status": ret.status.lower(), "order": _ref("Order", ret.order)}


def return_requested(ret) -> dict:
    return {**_return_head(ret), "name": None, "total_return_line_items": len(ret.lines), "return_line_items": [],
            "return_shipping_fees": [], "exchange_line_items": [],
            "total_exchange_line_items": len(ret.exchange_lines)}


def return_approved(ret) -> dict:
    cur = ret.order.currency
    fees = [] if ret.shipping_fee is None else [{
        "id": ret.shipping_fee_id, "admin_graphql_api_id": gid("ReturnShippingFee", ret.shipping_fee_id),
        "price": money_set(ret.shipping_fee, cur)}]
    exchanges = [{**_ref("ExchangeLineItem", e), "line_item": None} for e in ret.exchange_lines]
    return {**return_requested(ret), "return_shipping_fees": fees, "exchange_line_items": exchanges}


def return_declined(ret) -> dict:
    return {**_return_head(ret), "decline": {"reason": ret.decline["reason"].lower(), "note": ret.decline["note"]}}


def return_status(ret) -> dict:
    """returns/close, returns/reopen, returns/cancel: only ids and the status."""
    return {**_ref("Return", ret), "order_id": ret.order.id, "status": ret.status.lower()}


# --- the shop --------------------------------------------------------------------------

def shop(s) -> dict:
    """app/uninstalled: the shop object."""
    money_format = "{{amount_no_decimals}} kr" if s.currency == "ISK" else "{{amount}}"
    email = f"owner@{s.domain}"
    return {
        "id": s.id, "name": s.name, "email": email, "domain": s.domain, "province": "", "country": "IS",
        "address1": "Laugavegur 1", "zip": "101", "city": "Reykjavík", "source": None, "phone": "",
        "latitude": None, "longitude": None, "primary_locale": "is", "address2": None,
        "created_at": timestamp(s.created_at, s.timezone), "updated_at": timestamp(s.created_at, s.timezone),
        "country_code": "IS", "country_name": "Iceland", "currency": s.currency, "customer_email": email,
        "timezone": f"(GMT+00:00) {s.timezone}", "iana_timezone": s.timezone, "shop_owner": s.name,
        "money_format": money_format, "money_with_currency_format": f"{money_format} {s.currency}",
        "weight_unit": "kg", "province_code": "", "taxes_included": s.taxes_included,
        "auto_configure_tax_inclusivity": None, "tax_shipping": None, "county_taxes": None,
        "plan_display_name": "Basic", "plan_name": "basic", "has_discounts": False, "has_gift_cards": False,
        "myshopify_domain": s.domain, "google_apps_domain": None, "google_apps_login_enabled": None,
        "money_in_emails_format": money_format, "money_with_currency_in_emails_format": f"{money_format} {s.currency}",
        "eligible_for_payments": True, "requires_extra_payments_agreement": False, "password_enabled": False,
        "has_storefront": True, "finances": True, "primary_location_id": s.id + 1, "checkout_api_supported": True,
        "multi_location_enabled": False, "setup_required": False, "pre_launch_enabled": False,
        "enabled_presentment_currencies": [s.currency], "marketing_sms_consent_enabled_at_checkout": False,
        "transactional_sms_disabled": False,
    }


def scopes_update(s, id_: int, previous, current, moment) -> dict:
    """app/scopes_update, as https://shopify.dev/changelog/new-webhook-topic-app-scopes_update
    shows it, with the `shop_id` added in 2025-07
    (https://shopify.dev/changelog/add-shopid-to-appscopesupdate-webhook-payload)."""
    return {"id": id_, "previous": list(previous), "current": list(current),
            "updated_at": moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "shop_id": s.id}


def shop_redact(s) -> dict:
    return {"shop_id": s.id, "shop_domain": s.domain}


def customer_request(s, topic: str, orders, request_id: int) -> dict:
    """customers/redact or customers/data_request about the customer of `orders`."""
    first = orders[0]
    payload = {"shop_id": s.id, "shop_domain": s.domain,
               "customer": {"id": first.customer_id, "email": first.customer["email"],
                            "phone": first.customer.get("phone", "")}}
    ids = [o.id for o in orders]
    if topic == "customers/redact":
        return {**payload, "orders_to_redact": ids}
    return {**payload, "orders_requested": ids, "data_request": {"id": request_id}}
