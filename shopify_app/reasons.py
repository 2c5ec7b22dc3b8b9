"""Why a case stands where it stands, in the merchant's words: for every reason code the code
can store (`cases.reason`, `orders.last_error`, a document's error kind), what happened, what
to do next (with a link where one helps, and whether Retry is the way on), and the technical
detail kept apart, for support only.

A merchant who meets "POST /invoices: HTTP 503" or "check the client ID" when Payday wants its
setup finished is stuck; the detail still matters to whoever helps them, so it is folded away
(templates/_reason.html), never dropped."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from flask import has_request_context
from flask_babel import lazy_gettext

from .accounting import NAMES
from .accounting.payday import api as payday

PAYDAY_URLS = {"production": "https://app.payday.is", "test": "https://app.test.payday.is"}
# The Danish systems' web apps, where the merchant logs in.
SYSTEM_URLS = {"economic": "https://secure.e-conomic.com", "dinero": "https://app.dinero.dk",
               "billy": "https://app.billy.dk"}
# Where the merchant acts: Skilvís's settings, Payday's web app, the order or the store's bill
# in Shopify admin (shopify:// links are opened by App Bridge around the app).
SETTINGS, PAYDAY, ORDER, BILLING = "settings", "payday", "order", "billing"


@dataclass(frozen=True)
class Reason:
    what: object                  # a lazy string: what happened, one sentence
    next_step: object             # a lazy string: what the merchant does now (or that nothing is needed)
    link: str | None = None       # SETTINGS | PAYDAY | ORDER | BILLING
    retry: bool = False           # Retry is the way on once the next step is done
    detail: bool = False          # params["error"] is technical detail for support


NOTHING_TO_DO = lazy_gettext("Nothing to do: no credit invoice is needed")
CARRIES_ON = lazy_gettext("Nothing to do: Skilvís carries on by itself")

# Every code decision.py, status.py, shop_settings.py, pipeline.py, reconcile.py and the
# documents can store (tests/test_i18n.py greps the code to prove none is missing). Amounts
# arrive as `amount` + `currency`, days as `date`, a retry's moment as `next_attempt_at`.
TABLE: dict[str, Reason] = {
    "waiting_for_close": Reason(
        lazy_gettext("Waiting for the return to be closed in Shopify"),
        lazy_gettext("Close the return in Shopify once the goods are back; Skilvís then makes the credit invoice "
                     "by itself"), ORDER),
    "customer_owes": Reason(
        lazy_gettext("Waiting for the customer to pay %(amount)s"),
        lazy_gettext("Nothing to do in Skilvís: the invoice is made once the customer’s payment has gone through "
                     "in Shopify"), ORDER),
    "refund_pending": Reason(
        lazy_gettext("Waiting for a refund of %(amount)s to go through"),
        lazy_gettext("Nothing to do: Skilvís makes the credit invoice once Shopify reports the refund as "
                     "completed")),
    "payment_pending": Reason(
        lazy_gettext("Waiting for a payment of %(amount)s to settle"),
        lazy_gettext("Nothing to do: Skilvís makes the invoice once Shopify reports the payment as settled")),
    "refund_owed": Reason(
        lazy_gettext("Waiting for %(amount)s to be refunded to the customer"),
        lazy_gettext("Refund the customer in Shopify; Skilvís makes the credit invoice once the refund is made"),
        ORDER),
    "nothing_refunded": Reason(
        lazy_gettext("No money was refunded, so no credit invoice is needed"),
        lazy_gettext("Nothing to do. If money was returned outside Shopify, create the credit invoice by hand")),
    "refund_failed": Reason(
        lazy_gettext("The refund failed and no money was returned"),
        lazy_gettext("If the customer is still owed the money, refund it again in Shopify; Skilvís invoices the "
                     "refund that goes through"), ORDER),
    "return_declined": Reason(lazy_gettext("The return was declined"), NOTHING_TO_DO),
    "return_canceled": Reason(lazy_gettext("The return was canceled"), NOTHING_TO_DO),
    "unsupported_vat_rate": Reason(
        lazy_gettext("VAT of %(rate)s%% on “%(item)s” is not a rate Payday accepts (0, 11 or 24%%)"),
        lazy_gettext("Correct the VAT of “%(item)s” in Shopify to 0, 11 or 24%%, then press Retry. If the order "
                     "cannot be changed, make its credit invoice in Payday by hand"), ORDER, retry=True),
    "payday_setup_required": Reason(
        lazy_gettext("Payday will not make invoices until the company’s setup in Payday is finished"),
        lazy_gettext("Log in to Payday, finish the required system setup there, then press Retry"),
        PAYDAY, retry=True, detail=True),
    "payday_validation": Reason(
        lazy_gettext("%(system)s refused the invoice"),
        lazy_gettext("Correct what %(system)s names, in %(system)s or in Shopify, then press Retry. If it is unclear, "
                     "send the details below to Skilvís support"), PAYDAY, retry=True, detail=True),
    "payday_auth": Reason(
        lazy_gettext("Payday did not accept Skilvís’s client ID and secret"),
        lazy_gettext("Check the client ID and secret under Settings → Payday and press Test connection, then "
                     "press Retry"), SETTINGS, retry=True, detail=True),
    # A Danish system's refused credentials: its connection in Settings has no client ID and secret.
    "accounting_auth": Reason(
        lazy_gettext("%(system)s did not accept the connection’s credentials"),
        lazy_gettext("Check the %(system)s connection under Settings and test it, then press Retry"), SETTINGS,
        retry=True, detail=True),
    "payday_transient": Reason(
        lazy_gettext("%(system)s did not answer, even after many attempts over several hours"),
        lazy_gettext("Check that you can log in to %(system)s, then press Retry"), PAYDAY, retry=True, detail=True),
    "payday_data": Reason(
        lazy_gettext("The order’s data could not be put on an invoice"),
        lazy_gettext("Make this credit invoice in %(system)s by hand, and send the details below to Skilvís support"),
        PAYDAY, detail=True),
    "payday_error": Reason(
        lazy_gettext("%(system)s reported an error"),
        lazy_gettext("Press Retry. If it fails again, send the details below to Skilvís support"),
        retry=True, detail=True),
    "payday_unconfirmed": Reason(
        lazy_gettext("%(system)s’s answer was lost, so Skilvís cannot tell whether the invoice was made"),
        lazy_gettext("Look for the invoice in %(system)s. If it is not there, press Retry; if it is, leave it, as "
                     "Retry would make a second one"), PAYDAY, retry=True, detail=True),
    "retrying": Reason(
        lazy_gettext("%(system)s is not answering; Skilvís tries again by itself at %(when)s"),
        lazy_gettext("Nothing to do meanwhile: Skilvís keeps trying for several hours before it asks you to step in"),
        detail=True),
    "automatic_processing_off": Reason(
        lazy_gettext("Automatic processing is off"),
        lazy_gettext("Turn it on in Settings, or create the credit invoice by hand"), SETTINGS),
    "accounting_not_connected": Reason(
        lazy_gettext("The accounting system is not connected"),
        lazy_gettext("Connect it in Settings; Skilvís then makes the credit note by itself"), SETTINGS),
    "unbookable_vat_rate": Reason(
        lazy_gettext("VAT of %(rate)s%% on “%(item)s” has no product or account for it in Settings"),
        lazy_gettext("Map %(rate)s%% to a product or account under Settings (mapped now: %(rates)s), or correct the "
                     "VAT of “%(item)s” in Shopify, then press Retry"), SETTINGS, retry=True),
    "payday_not_connected": Reason(
        lazy_gettext("Payday is not connected"),
        lazy_gettext("Connect Payday in Settings; Skilvís then makes the credit invoice by itself"), SETTINGS),
    "default_customer_missing": Reason(
        lazy_gettext("Shopify does not share the customer’s details with Skilvís, and no %(system)s customer is "
                     "chosen for such invoices"),
        lazy_gettext("Choose the %(system)s customer for such invoices under Settings → %(system)s"), SETTINGS),
    "test_order": Reason(lazy_gettext("A test order: it is never sent to %(system)s"), NOTHING_TO_DO),
    "payday_app_credits": Reason(
        lazy_gettext("Payday’s own Shopify app makes credit invoices for returns and refunds too, so Skilvís waits "
                     "rather than credit anything twice"),
        lazy_gettext("Turn credit invoices off in Payday’s Shopify app, then say so under Settings → Payday’s "
                     "Shopify app"), SETTINGS),
    "order_too_large": Reason(
        lazy_gettext("This order has more refunds, payments or lines in one return than Skilvís can read at once"),
        lazy_gettext("Make its credit invoices in %(system)s by hand"), PAYDAY),
    "order_gone": Reason(
        lazy_gettext("Shopify no longer shows this order"),
        lazy_gettext("Nothing to do, unless the order should still be there: then look for it in Shopify")),
    "order_outside_window": Reason(
        lazy_gettext("Shopify shows Skilvís only the last 60 days of orders, and this order is older"),
        lazy_gettext("Skilvís reads it as soon as Shopify approves access to all orders; if the credit invoice "
                     "cannot wait, make it in %(system)s"), PAYDAY),
    "shopify_access_denied": Reason(
        lazy_gettext("Shopify refused Skilvís access: a permission is missing"),
        lazy_gettext("Open Skilvís from your Shopify admin and accept its permissions; Skilvís then tries again "
                     "by itself")),
    "shopify_query_refused": Reason(
        lazy_gettext("Shopify refused the way Skilvís asks for this order"),
        lazy_gettext("Skilvís tries again by itself. If this stays, contact Skilvís support and make the credit "
                     "invoice in %(system)s meanwhile")),
    "shop_frozen": Reason(
        lazy_gettext("Shopify has frozen the store over an unpaid Shopify bill, so nothing can be read"),
        lazy_gettext("Pay the bill in Shopify; Skilvís carries on by itself once the store is open again"), BILLING),
    "shop_locked": Reason(
        lazy_gettext("Shopify has locked the store, so nothing can be read"),
        lazy_gettext("Skilvís carries on by itself once Shopify opens the store again; Shopify’s support can tell "
                     "you why it is locked")),
    "shop_not_found": Reason(
        lazy_gettext("Shopify does not find the store"),
        lazy_gettext("Skilvís tries again by itself. If this stays, contact Skilvís support")),
    "history_bulk_running": Reason(lazy_gettext("Shopify is still collecting the orders"), CARRIES_ON),
    "shopify_auth": Reason(
        lazy_gettext("Shopify refused Skilvís access to the order"),
        lazy_gettext("Open Skilvís from your Shopify admin: that renews its access, and Skilvís tries again by "
                     "itself")),
    "shopify_unavailable": Reason(lazy_gettext("Shopify did not answer"), CARRIES_ON),
    "before_start": Reason(
        lazy_gettext("From before %(date)s, when Skilvís began invoicing"),
        lazy_gettext("If it still needs a credit invoice, create it by hand, or move the start of invoicing back "
                     "under Settings → Invoices"), SETTINGS),
}
UNKNOWN = Reason(lazy_gettext("Skilvís stopped for a reason it does not know"),
                 lazy_gettext("Send the details below to Skilvís support"), detail=True)

# What each code says happened: the one line where a line is all there is room for.
REASONS = {code: reason.what for code, reason in TABLE.items()}
UNKNOWN_REASON = UNKNOWN.what
# Payday's own words, when they are words: shown with the refusal rather than only folded away.
PAYDAY_SAID = lazy_gettext("%(system)s refused the invoice: %(error)s")
LINK_LABELS = {
    SETTINGS: lazy_gettext("Open Settings"),
    PAYDAY: lazy_gettext("Open %(system)s"),
    BILLING: lazy_gettext("Open billing in Shopify"),
}
ORDER_LINK = lazy_gettext("Open order %(name)s in Shopify")
ORDER_LINK_UNNAMED = lazy_gettext("Open the order in Shopify")


class Link(NamedTuple):
    url: str
    label: str


@dataclass(frozen=True)
class Explanation:
    code: str            # for the page's data attributes and tests; never shown
    what: str
    next_step: str
    link: Link | None
    retry: bool
    detail: str | None   # HTTP status, Payday's message, ...: for support, folded away


# An HTTP status line, a request line, an exception's name or JSON: text for support, not the merchant.
TECHNICAL = re.compile(r"HTTP \d{3}|\b(GET|POST|PUT|PATCH|DELETE) /|[{}<>]|\w+(Error|Exception|Timeout)\b|"
                       r"Traceback|\b[a-z]+_[a-z_]+\b")


def plain_words(text: str | None) -> bool:
    """Whether a message (Payday's, say) reads as words a merchant can act on."""
    text = (text or "").strip()
    return bool(text) and len(text) <= 300 and not TECHNICAL.search(text)


def needs_payday_setup(code: str, params: dict) -> bool:
    """A Payday refusal that means the company's setup in Payday is unfinished. Documents store
    only `auth` and Payday's message; the message says which refusal it was (payday.py)."""
    return (code.startswith("payday_") and code != "payday_not_connected"
            and payday.is_setup_refusal(params.get("error")))


def _resolve(reason: dict | str | None, params: dict | None) -> tuple[str, Reason, dict, dict] | None:
    """The reason's code (a Payday setup refusal told apart), its table entry, its raw params
    and their formatted values."""
    if not reason:
        return None
    if isinstance(reason, str):
        reason = {"code": reason}
    code = str(reason.get("code") or "")
    raw = {**(reason.get("params") or {}), **(params or {})}
    if needs_payday_setup(code, raw):
        code = "payday_setup_required"
    if code == "payday_auth" and i18n.shop_accounting() != "payday":
        code = "accounting_auth"
    return code, TABLE.get(code, UNKNOWN), raw, _params(raw)


def _what(code: str, spec: Reason, raw: dict, values: dict) -> str:
    if code == "payday_validation" and plain_words(raw.get("error")):
        return _fill(PAYDAY_SAID, values)
    return _fill(spec.what, values)


def explain(reason: dict | str | None, params: dict | None = None) -> Explanation | None:
    """A reason (`{"code", "params"}`, or a code) → what happened, the next step, a link, whether
    to offer Retry, and the detail for support. `params` adds to the reason's own: besides the
    reason's, `order_legacy_id` and `order_name` (the order's link in Shopify admin) and
    `payday_environment` (which Payday to link to)."""
    resolved = _resolve(reason, params)
    if resolved is None:
        return None
    code, spec, raw, values = resolved
    error = str(raw.get("error") or "").strip() or None
    if spec is UNKNOWN:
        detail = code or None
    else:
        detail = error if spec.detail else None
    return Explanation(code=code, what=_what(code, spec, raw, values), next_step=_fill(spec.next_step, values),
                       link=_link(spec.link, raw), retry=spec.retry, detail=detail)


def reason_text(reason: dict | None) -> str:
    """One line: what happened (the home list's row, a status line)."""
    resolved = _resolve(reason, None)
    return _what(*resolved) if resolved else ""


def error_text(error: str | None) -> str:
    """A stored error: a reason code in the merchant's language, or the error as it was."""
    return reason_text({"code": error}) if error in TABLE else (error or "")


def _params(params: dict) -> dict:
    out = {k: ("" if v is None else str(v)) for k, v in (params or {}).items()}
    if "amount" in out:
        out["amount"] = i18n.money(out["amount"], out.get("currency") or "ISK")
    if "date" in out:
        out["date"] = i18n.day(out["date"])
    if "next_attempt_at" in out:
        out["when"] = i18n.when(out["next_attempt_at"])
    out.setdefault("when", "")
    out.setdefault("error", "")
    out.setdefault("rates", "–")
    out.setdefault("system", NAMES[i18n.shop_accounting()])   # the reasons that name Payday name the shop's system
    return out


def _fill(template, values: dict) -> str:
    try:
        return str(template) % values
    except (KeyError, ValueError):
        return str(template)


def _link(kind: str | None, params: dict) -> Link | None:
    if kind == PAYDAY:
        system = i18n.shop_accounting()
        url = (PAYDAY_URLS["test" if params.get("payday_environment") == "test" else "production"]
               if system == "payday" else SYSTEM_URLS[system])
        return Link(url, _fill(LINK_LABELS[PAYDAY], {"system": NAMES[system]}))
    if kind == ORDER:
        legacy_id = params.get("order_legacy_id")
        if not legacy_id:
            return None
        name = params.get("order_name")
        label = str(ORDER_LINK) % {"name": name} if name else str(ORDER_LINK_UNNAMED)
        return Link(f"shopify://admin/orders/{legacy_id}", label)
    if kind == BILLING:
        return Link("shopify://admin/settings/billing", str(LINK_LABELS[BILLING]))
    if kind == SETTINGS:
        url = _settings_url()
        return Link(url, str(LINK_LABELS[SETTINGS])) if url else None
    return None


def _settings_url() -> str | None:
    """The app's Settings page, carrying Shopify's parameters, when there is a request to carry
    them from (a worker or a bare test app has none)."""
    if not has_request_context():
        return None
    from werkzeug.routing import BuildError

    from .home import page_url
    try:
        return page_url("home.settings_page")
    except (AttributeError, BuildError, RuntimeError, KeyError):   # no shop on this request
        return None


from . import i18n  # noqa: E402  (i18n re-exports this module's names: imported last, either may load first)
