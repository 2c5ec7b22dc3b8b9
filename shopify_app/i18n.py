"""Icelandic and English: the language Shopify admin asks for, money and dates as people write
them, and every reason and error the merchant can see in both languages.

Shopify sends `locale` (`is`, `is-IS`, `en-US`, ...) on document loads only; it is remembered on
the shop so the pages' fetches answer in the same language."""
from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from flask import g, has_request_context, request
from flask_babel import Babel, get_locale, gettext, lazy_gettext, refresh  # gettext: used as i18n.gettext

from . import db
from .money import minor_units

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LANGUAGES = ("is", "en")
DEFAULT = "is"
# Skilvís is for Icelandic companies and Iceland keeps UTC all year; the merchant reads
# Icelandic time whatever their browser says.
TIMEZONE = ZoneInfo("Atlantic/Reykjavik")


def normalize(value: str | None) -> str | None:
    """Shopify's locale → ours. Any other language gets English: whoever reads Skilvís in,
    say, German admin reads English more easily than Icelandic."""
    if not value:
        return None
    value = value.strip().lower().replace("_", "-")
    if not value:
        return None
    return "is" if value.split("-")[0] == "is" else "en"


def resolve(shop: dict | None) -> str:
    """The request's language: the `locale` parameter (remembered on the shop when it
    changed), else the shop's remembered one, else Icelandic."""
    asked = normalize(request.args.get("locale"))
    if asked and shop and shop.get("locale") != asked:
        with db.transaction() as conn:
            conn.execute("UPDATE shops SET locale = %s WHERE id = %s", (asked, shop["id"]))
    g.locale = asked or normalize(shop.get("locale") if shop else None) or DEFAULT
    refresh()
    return g.locale


def _select_locale() -> str:
    if has_request_context():
        return g.get("locale") or normalize(request.args.get("locale")) or DEFAULT
    return DEFAULT


def lang() -> str:
    locale = get_locale()
    return locale.language if locale else DEFAULT


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Build each messages.mo that is missing or older than its .po, so a fresh checkout works
    even where `make setup` did not run (the .mo files are committed as well)."""
    built = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as f:
            catalog = read_po(f, locale=po_path.parent.parent.name)
        # Several processes may start at once: write aside, then rename into place.
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        os.replace(tmp, mo_path)
        built.append(mo_path)
    return built


def init_app(app) -> Babel:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    try:
        compile_catalogs()
    except OSError:
        pass  # a read-only slug: the committed .mo files serve
    babel = Babel(app, locale_selector=_select_locale)
    app.jinja_env.filters.update(money=money, when=when, day=day)
    app.jinja_env.globals.update(reason_text=reason_text, error_text=error_text, status_label=status_label, kind_label=kind_label,
                                 status_tone=status_tone, timeline_text=timeline_text, lang=lang)
    return babel


# --- money and dates ---------------------------------------------------------------------

IS_MONTHS = ("jan.", "feb.", "mar.", "apr.", "maí", "jún.", "júl.", "ágú.", "sep.", "okt.", "nóv.", "des.")
# Babel's grouping and decimal symbols of each language: the list formats an amount per row, and
# Python's own formatting (half-even rounding, as babel's format_decimal) is ten times quicker.
SEPARATORS = {"is": {ord(","): ".", ord("."): ","}, "en": {ord(","): ",", ord("."): "."}}


def _grouped(value: Decimal, digits: int, language: str) -> str:
    """format_decimal(value, "#,##0" with `digits` decimals, locale=language), for value >= 0."""
    table = SEPARATORS.get(language)
    if table is None or not value.is_finite():
        return format_decimal(value, format=f"#,##0{'.' + '0' * digits if digits else ''}", locale=language)
    return f"{value:,.{digits}f}".translate(table)


def money(amount, currency: str | None = "ISK", language: str | None = None) -> str:
    """`5.000 kr.` / `-5.000 kr.` in Icelandic, `ISK 5,000` / `-ISK 5,000` in English."""
    if amount is None or amount == "":
        return ""
    language = language or lang()
    currency = (currency or "ISK").upper()
    value = Decimal(str(amount))
    digits = minor_units(currency)
    if language == "is":
        number = _grouped(abs(value), digits, "is")
        text = f"{number} kr." if currency == "ISK" else f"{number} {currency}"
        return f"-{text}" if value < 0 else text
    number = _grouped(abs(value), digits, "en")
    return f"{'-' if value < 0 else ''}{currency} {number}"


def _local(value) -> datetime | None:
    """A moment (a datetime, or ISO 8601 text; naive means UTC) in Iceland's time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):   # a calendar day (a Payday invoice's date) has no zone
        return datetime(value.year, value.month, value.day, tzinfo=TIMEZONE)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(TIMEZONE)


def day(value, language: str | None = None) -> str:
    """`21. nóv. 2026` in Icelandic, `21 Nov 2026` in English."""
    local = _local(value)
    if local is None:
        return ""
    if (language or lang()) == "is":
        return f"{local.day}. {IS_MONTHS[local.month - 1]} {local.year}"
    return f"{local.day} {local:%b %Y}"


def when(value, language: str | None = None) -> str:
    """`23. nóv. 2026 kl. 14:05` in Icelandic, `23 Nov 2026, 14:05` in English."""
    local = _local(value)
    if local is None:
        return ""
    if (language or lang()) == "is":
        return f"{day(local, 'is')} kl. {local:%H:%M}"
    return f"{day(local, 'en')}, {local:%H:%M}"


# --- what the merchant reads -----------------------------------------------------------------

STATUSES = {
    "open": lazy_gettext("Open"),
    "pending_settlement": lazy_gettext("Pending settlement"),
    "processing": lazy_gettext("Processing"),
    "created": lazy_gettext("Created"),
    "none_needed": lazy_gettext("None needed"),
    "failed": lazy_gettext("Failed"),
}
TONES = {"open": "neutral", "pending_settlement": "warning", "processing": "info", "created": "success",
         "none_needed": "neutral", "failed": "critical"}
KINDS = {
    "return": lazy_gettext("Return"),
    "exchange": lazy_gettext("Exchange"),
    "refund": lazy_gettext("Refund"),
    "manual": lazy_gettext("By hand"),
}

# Every code decision.py and status.py can put in `cases.reason` (tests/test_i18n.py greps the
# code to prove none is missing). Amounts arrive as `amount` + `currency` and are formatted here.
REASONS = {
    "waiting_for_close": lazy_gettext("Waiting for the return to be closed in Shopify"),
    "customer_owes": lazy_gettext("Waiting for the customer to pay %(amount)s"),
    "refund_pending": lazy_gettext("Waiting for a refund of %(amount)s to go through"),
    "payment_pending": lazy_gettext("Waiting for a payment of %(amount)s to settle"),
    "refund_owed": lazy_gettext("Waiting for %(amount)s to be refunded to the customer"),
    "nothing_refunded": lazy_gettext("No money was refunded, so no credit invoice is needed"),
    "refund_failed": lazy_gettext("The refund failed and no money was returned"),
    "return_declined": lazy_gettext("The return was declined"),
    "return_canceled": lazy_gettext("The return was canceled"),
    "unsupported_vat_rate": lazy_gettext(
        "VAT of %(rate)s%% on “%(item)s” is not a rate Payday accepts (0, 11 or 24%%)"),
    "payday_validation": lazy_gettext("Payday refused the invoice: %(error)s"),
    "payday_auth": lazy_gettext("Payday refused the connection; check the client ID and secret in Settings: %(error)s"),
    "payday_transient": lazy_gettext("Payday could not be reached after many attempts: %(error)s"),
    "payday_data": lazy_gettext("The order's data could not be put on an invoice: %(error)s"),
    "payday_error": lazy_gettext("Payday reported an error: %(error)s"),
    "payday_unconfirmed": lazy_gettext(
        "Payday's answer was lost and Skilvís could not confirm whether the invoice was made (%(error)s). "
        "Look for it in Payday; if it is not there, press Retry"),
    "retrying": lazy_gettext("Payday did not answer; trying again %(when)s (attempt %(attempts)s): %(error)s"),
    "automatic_processing_off": lazy_gettext(
        "Automatic processing is off: turn it on in Settings, or create the credit invoice by hand"),
    "payday_not_connected": lazy_gettext("Payday is not connected: connect it in Settings"),
    "default_customer_missing": lazy_gettext(
        "Shopify does not share the customer's details with Skilvís: choose the Payday customer for such "
        "invoices under Settings → Payday"),
    "test_order": lazy_gettext("A test order: it is never sent to Payday"),
    "payday_app_credits": lazy_gettext(
        "Payday's own Shopify app makes credit invoices for returns and refunds too: to avoid crediting "
        "twice, Skilvís waits until they are off there (Settings → Payday's Shopify app)"),
    # Orders a pass could not read (pipeline._finish): listed on the home page.
    "order_too_large": lazy_gettext(
        "Skilvís cannot read this order: it has more refunds, payments or lines in one return than Skilvís "
        "reads at once. Make its credit invoices in Payday by hand"),
    "order_gone": lazy_gettext("Shopify no longer shows this order"),
    "order_outside_window": lazy_gettext(
        "Shopify shows Skilvís only the last 60 days of orders, and this order is older. Skilvís reads it "
        "as soon as Shopify approves access to all orders; if the credit invoice cannot wait, make it in Payday"),
    "shopify_access_denied": lazy_gettext(
        "Shopify refused Skilvís access (a permission is missing). Open Skilvís from your Shopify admin and "
        "accept its permissions; Skilvís tries again by itself"),
    "shopify_query_refused": lazy_gettext(
        "Shopify refused the way Skilvís asks for this order. Skilvís tries again by itself; if this stays, "
        "contact Skilvís support and make the credit invoice in Payday meanwhile"),
    "shop_frozen": lazy_gettext(
        "Shopify has frozen the store (an unpaid Shopify bill), so nothing can be read. Skilvís carries on "
        "once the store is open again"),
    "shop_locked": lazy_gettext("Shopify has locked the store, so nothing can be read. Skilvís carries on once "
                                "the store is open again"),
    "shop_not_found": lazy_gettext("Shopify does not find the store. Skilvís tries again by itself"),
    "history_bulk_running": lazy_gettext("Shopify is still collecting the orders"),
    "shopify_auth": lazy_gettext(
        "Shopify refused Skilvís access to the order; opening Skilvís from your Shopify admin renews it"),
    "shopify_unavailable": lazy_gettext("Shopify did not answer"),
    "before_start": lazy_gettext(
        "Before %(date)s, when Skilvís began invoicing: create the credit invoice by hand if it is needed"),
}
UNKNOWN_REASON = lazy_gettext("Reason: %(code)s")


def _params(params: dict) -> dict:
    out = {k: ("" if v is None else str(v)) for k, v in (params or {}).items()}
    if "amount" in out:
        out["amount"] = money(out["amount"], out.get("currency") or "ISK")
    if "date" in out:
        out["date"] = day(out["date"])
    if "next_attempt_at" in out:
        out["when"] = when(out["next_attempt_at"])
    out.setdefault("when", "")
    out.setdefault("error", "")
    return out


def error_text(error: str | None) -> str:
    """A stored error: a reason code in the merchant's language, or the error as it was."""
    return reason_text({"code": error}) if error in REASONS else (error or "")


def reason_text(reason: dict | None) -> str:
    if not reason:
        return ""
    code = reason.get("code") or ""
    template = REASONS.get(code)
    params = _params(reason.get("params") or {})
    if template is None:
        return str(UNKNOWN_REASON) % {"code": code}
    try:
        return str(template) % params
    except (KeyError, ValueError):
        return str(template)


def status_label(status: str) -> str:
    return str(STATUSES.get(status, status))


def status_tone(status: str) -> str:
    return TONES.get(status, "neutral")


def kind_label(kind: str) -> str:
    return str(KINDS.get(kind, kind))


TIMELINE = {
    "webhook": lazy_gettext("Shopify reported: %(topic)s"),
    "status": lazy_gettext("Status: %(from)s → %(to)s"),
    "document_claimed": lazy_gettext("Credit invoice %(doc_key)s decided: %(lines)s lines, %(total)s"),
    "payday_call": lazy_gettext("Sent to Payday: %(doc_key)s (attempt %(attempt)s)"),
    "payday_invoice_created": lazy_gettext("Payday created invoice %(doc_key)s"),
    "payday_invoice_found": lazy_gettext("Invoice %(doc_key)s found in Payday by its reference"),
    "payday_payment_registered": lazy_gettext("Payment of %(doc_key)s registered in Payday"),
    "payday_payment_refused": lazy_gettext(
        "Payday would not register the payment of %(doc_key)s; register it in Payday: %(error)s"),
    "payday_error": lazy_gettext("Payday error on %(doc_key)s: %(error)s"),
    "read_error": lazy_gettext("The order could not be read from Shopify: %(error)s"),
    "manual_credit": lazy_gettext("Credit invoice made by hand: %(total)s"),
    "retry": lazy_gettext("Retry asked for %(doc_key)s"),
    "stock_returned": lazy_gettext("%(quantity)s × %(sku)s put back into stock in Payday"),
    "stock_skipped": lazy_gettext("%(sku)s is not a product with stock in Payday: its stock was left as it is"),
    "stock_failed": lazy_gettext(
        "%(quantity)s × %(sku)s could not be put back into stock in Payday (%(error)s): add it to the product’s "
        "stock in Payday by hand"),
}
UNKNOWN_EVENT = lazy_gettext("Event: %(kind)s")


def timeline_text(kind: str, detail: dict | None, currency: str | None = "ISK") -> str:
    detail = dict(detail or {})
    if kind == "payday_invoice_created" and detail.get("found_by_reference"):
        kind = "payday_invoice_found"
    params = {k: ("" if v is None else str(v)) for k, v in detail.items() if not isinstance(v, (dict, list))}
    if kind == "status":
        params["from"] = status_label(detail.get("from")) if detail.get("from") else "–"
        params["to"] = status_label(detail.get("to") or "")
        why = reason_text(detail.get("reason"))
        text = str(TIMELINE["status"]) % params
        return f"{text} ({why})" if why else text
    if "total" in params:
        params["total"] = money(params["total"], currency)
    if "error" in params:
        params["error"] = error_text(params["error"])
    template = TIMELINE.get(kind)
    if template is None:
        return str(UNKNOWN_EVENT) % {"kind": kind}
    for name in ("doc_key", "lines", "attempt", "error", "topic", "total", "sku", "quantity"):
        params.setdefault(name, "")
    try:
        return str(template) % params
    except (KeyError, ValueError):
        return str(template)
