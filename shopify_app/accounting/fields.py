"""What Settings asks of a shop on a Danish system: each adapter's config keys, named as the
system names them (the merchant copies them from that system's own screens). A key ending in
`.<rate>` fills the rate's entry of a map (`accounts.25` → config["accounts"]["25"])."""
from __future__ import annotations

from flask_babel import lazy_gettext

# (key, label, secret)
FIELDS = {
    "economic": (
        ("agreement_grant_token", lazy_gettext("Agreement Grant Token (e-conomic: Settings → Apps)"), True),
        ("layout_number", lazy_gettext("Layout number"), False),
        ("payment_terms_number", lazy_gettext("Payment terms number"), False),
        ("vat_zone_number", lazy_gettext("VAT zone number (1: domestic)"), False),
        ("products.25", lazy_gettext("Product number for goods with 25% VAT"), False),
        ("products.0", lazy_gettext("Product number for VAT-exempt goods (0%)"), False),
        ("shipping_product", lazy_gettext("Product number for shipping (25% VAT)"), False),
        ("fee_product", lazy_gettext("Product number for return fees (25% VAT)"), False),
        ("customer_group_number", lazy_gettext("Customer group for new customers"), False),
        ("default_customer_number", lazy_gettext("Customer number used when Shopify withholds the customer"), False),
    ),
    "dinero": (
        ("api_key", lazy_gettext("API key (Dinero: Settings → Integrations)"), True),
        ("organization_id", lazy_gettext("Organization ID"), False),
        ("accounts.25", lazy_gettext("Sales account for goods with 25% VAT"), False),
        ("accounts.0", lazy_gettext("Sales account for VAT-exempt goods (0%)"), False),
        ("shipping_account", lazy_gettext("Sales account for shipping (25% VAT)"), False),
        ("fee_account", lazy_gettext("Sales account for return fees (25% VAT)"), False),
        ("default_contact_guid", lazy_gettext("Contact used when Shopify withholds the customer and the sale invoice "
                                              "is not found"), False),
    ),
    "billy": (
        ("access_token", lazy_gettext("Access token (Billy: Settings → Access tokens)"), True),
        ("products.25", lazy_gettext("Product for goods with 25% VAT"), False),
        ("products.0", lazy_gettext("Product for VAT-exempt goods (0%)"), False),
        ("shipping_product", lazy_gettext("Product for shipping (25% VAT)"), False),
        ("fee_product", lazy_gettext("Product for return fees (25% VAT)"), False),
        ("default_contact_id", lazy_gettext("Contact used when Shopify withholds the customer and the sale invoice "
                                            "is not found"), False),
    ),
}
# A map keyed by Shopify's payment gateway, one field per gateway the shop has used: where the
# system posts the money a document moved (Billy: a payment-enabled account, billy.py).
GATEWAY_MAPS = {"billy": "payment_accounts"}
# Skilvís's own credentials as a registered app, from the environment, never the merchant's to type.
APP_CREDENTIALS = {
    "economic": {"app_secret_token": "ECONOMIC_APP_SECRET_TOKEN"},
    "dinero": {"client_id": "DINERO_CLIENT_ID", "client_secret": "DINERO_CLIENT_SECRET"},
}


def value(config: dict, key: str):
    name, _, rate = key.partition(".")
    return (config.get(name) or {}).get(rate) if rate else config.get(name)


def merged(system: str, saved: dict, typed: dict, environ) -> dict:
    """The saved config with what the merchant typed (a blank secret keeps the saved one), and
    the app's own credentials from the environment."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()}
    per_gateway = f"{GATEWAY_MAPS[system]}." if system in GATEWAY_MAPS else None
    keys = [(key, secret) for key, _label, secret in FIELDS[system]]
    keys += [(key, False) for key in typed if per_gateway and key.startswith(per_gateway) and key != per_gateway]
    for key, secret in keys:
        if key not in typed:
            continue
        text = str(typed[key] or "").strip()
        if secret and not text:
            continue
        name, _, rate = key.partition(".")
        if rate:
            entries = config.setdefault(name, {})
            if text:
                entries[rate] = text
            else:
                entries.pop(rate, None)
        elif text:
            config[name] = text
        else:
            config.pop(name, None)
    for name, variable in APP_CREDENTIALS.get(system, {}).items():
        if environ.get(variable):
            config[name] = environ[variable]
    return config
