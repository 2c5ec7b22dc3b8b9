"""The order's story, as the merchant reads it on a case's page: what happened to the order in
Shopify (a return requested, approved, closed; items refunded, and to where), and what Skilvís
made of it in Payday (a credit invoice, or an invoice when an exchange costs the customer more).

Two halves:
- `note` (in the pipeline's pass, beside the decision): the order's facts as Shopify has them now,
  against what the story already says; a line only for what changed since. Each return's line
  keeps the status it records and each refund's line the state of its money, so a pass that finds
  nothing new adds nothing, and a return reopened and closed again is told twice.
- `build` (when the page is read): the stored timeline rows as sentences. Payday's steps are named
  by the document they made (its number once Payday gave one); internal steps (each call to
  Payday, a status that did not change, a reason that did) are left out. Rows of kinds stored before
  the story existed still read sensibly."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from flask_babel import lazy_gettext, ngettext

from . import accounting, i18n, timeline
from .documents import MAX_ATTEMPTS

# --- what the pipeline notes ------------------------------------------------------------------

# Each return line records the Shopify status it tells of; the kind is the change it was.
RETURN_KINDS = ("return_requested", "return_opened", "return_approved", "return_closed", "return_reopened",
                "return_declined", "return_canceled")
# Each refund line records the state of its money: done, pending, failed, or none (items back, no money).
REFUND_KINDS = ("refunded", "refund_settled", "refund_failed")
STORY_KINDS = RETURN_KINDS + REFUND_KINDS
# The change from the status last told to Shopify's status now.
STATUS_CHANGE = {"OPEN": "return_approved", "CLOSED": "return_closed", "DECLINED": "return_declined",
                 "CANCELED": "return_canceled", "REQUESTED": "return_requested"}


def _refund_state(refund) -> str:
    moves = [t for t in refund.transactions if t.kind == "REFUND"]
    if not moves:
        return "none"
    if any(t.status == "SUCCESS" for t in moves):
        return "done"
    if all(t.status in ("FAILURE", "ERROR") for t in moves):
        return "failed"
    return "pending"


def _refund_money(refund, state: str) -> Decimal:
    # A failed refund tells what it tried to give back; the others what moved or is moving.
    counted = ("FAILURE", "ERROR") if state == "failed" else ("SUCCESS", "PENDING", "AWAITING_RESPONSE")
    return sum((t.amount for t in refund.transactions if t.kind == "REFUND" and t.status in counted), Decimal(0))


def _gateway(refund) -> str | None:
    return next((t.gateway for t in refund.transactions if t.kind == "REFUND" and t.gateway), None)


def _told(conn, order_id: int) -> tuple[dict[tuple[str, str], dict], datetime | None]:
    """What the story last said of each return and refund of the order, and the moment of the
    order's latest timeline row (one read of the order's rows: an order has a few dozen)."""
    told: dict[tuple[str, str], dict] = {}
    latest = None
    for row in conn.execute("""SELECT kind, CASE WHEN kind = ANY(%s) THEN detail END AS detail, at FROM timeline
                               WHERE order_id = %s ORDER BY at, id""", (list(STORY_KINDS), order_id)):
        latest = row["at"]
        detail = row["detail"] or {}
        if row["kind"] in RETURN_KINDS and detail.get("return"):
            told[("return", detail["return"])] = detail
        elif row["kind"] in REFUND_KINDS and detail.get("refund"):
            told[("refund", detail["refund"])] = detail
    return told, latest


def _return_lines(ret, last: dict | None, refunds: list) -> tuple[list, list]:
    """A return's new lines: those before its refunds (first seen, approved, reopened) and after
    them (closed, declined, canceled), each (kind, detail, moment or None)."""
    base = {"return": ret.id, "name": ret.name, "exchange": ret.is_exchange}
    before, after = [], []
    if last is None:
        first = "REQUESTED" if ret.status in ("REQUESTED", "DECLINED") else "OPEN"
        known = [m for m in [ret.closed_at] + [r.created_at for r in refunds] if m]
        before.append(("return_requested" if first == "REQUESTED" else "return_opened",
                       {**base, "status": first, "items": sum(line.quantity for line in ret.lines)},
                       min(known) if known else None))
        last = {"status": first}
    closed_at = ret.closed_at.isoformat() if ret.closed_at else None
    if last.get("status") == "CLOSED" and ret.status == "CLOSED" and closed_at and last.get("closed_at") \
            and last["closed_at"] != closed_at:
        # Reopened and closed again between two passes: both are told.
        before.append(("return_reopened", {**base, "status": "OPEN"}, None))
        last = {"status": "OPEN"}
    if ret.status != last.get("status") and ret.status in STATUS_CHANGE:
        reopened = ret.status == "OPEN" and last.get("status") == "CLOSED"
        line = ("return_reopened" if reopened else STATUS_CHANGE[ret.status],
                {**base, "status": ret.status, "closed_at": closed_at},
                ret.closed_at if ret.status == "CLOSED" else None)
        (before if ret.status in ("OPEN", "REQUESTED") else after).append(line)
    return before, after


def _refund_line(refund, last: dict | None, currency: str):
    """A refund's new line (kind, detail, moment), or None when its money is as last told."""
    state = _refund_state(refund)
    if last is not None and last.get("state") == state:
        return None
    items = sum(line.quantity for line in refund.lines)
    if last is None and state == "none" and not items:
        return None   # a refund of nothing: nothing to tell
    detail = {"refund": refund.id, "return": refund.return_id, "items": items, "amount": str(_refund_money(refund, state)),
              "currency": currency, "gateway": _gateway(refund), "state": state}
    if last is None:
        return "refunded", detail, refund.created_at
    kind = {"done": "refund_settled", "failed": "refund_failed"}.get(state)
    moved = max((t.processed_at for t in refund.transactions if t.kind == "REFUND" and t.processed_at), default=None)
    return (kind, detail, moved) if kind else None


def note(conn, shop_id: int, order_id: int, order, case_ids: dict[str, int]) -> int:
    """Add to the story what the order's facts say that it does not yet; returns how many lines.

    A line is dated when Shopify says it happened (a refund, a close), else now (a request, an
    approval: Shopify gives no time, and the webhook brought the pass at once). Lines come in
    the order things happen to a return (seen, approved, its refunds, closed), and never before
    a line already told: Shopify's times are whole seconds, ours are not."""
    if not order.returns and not order.refunds:
        return 0   # a sale alone: nothing to tell
    told, latest = _told(conn, order_id)
    now = datetime.now(timezone.utc)
    lines = []   # (kind, case_id, detail, moment)
    returns = {r.id for r in order.returns}
    refunds_of: dict[str | None, list] = {}   # by return; None: refunds outside any return
    for refund in order.refunds:
        refunds_of.setdefault(refund.return_id if refund.return_id in returns else None, []).append(refund)
    for ret in order.returns:
        case_id = case_ids.get(ret.id)
        before, after = _return_lines(ret, told.get(("return", ret.id)), refunds_of.get(ret.id, []))
        refunds = [line for r in refunds_of.get(ret.id, [])
                   if (line := _refund_line(r, told.get(("refund", r.id)), order.currency))]
        lines += [(kind, case_id, detail, moment) for kind, detail, moment in before + refunds + after]
    for refund in refunds_of.get(None, []):
        line = _refund_line(refund, told.get(("refund", refund.id)), order.currency)
        if line:
            lines.append((line[0], case_ids.get(refund.id), line[1], line[2]))
    at = latest
    for kind, case_id, detail, moment in lines:
        moment = min(moment or now, now)
        at = moment if at is None or moment > at else at
        timeline.add(conn, shop_id, order_id, case_id, kind, detail, at=at)
    return len(lines)


# --- what the page reads ----------------------------------------------------------------------

# Where refunded money went, by payment gateway; a gateway not named here is left unsaid rather
# than shown by its internal name.
CARD_GATEWAYS = frozenset({"shopify_payments", "stripe", "adyen", "rapyd", "teya", "saltpay", "valitor", "borgun",
                           "straumur", "bogus"})
REFUNDED_TO = {
    "card": lazy_gettext("to the card"),
    "gift_card": lazy_gettext("to a gift card"),
    "cash": lazy_gettext("in cash"),
    "paypal": lazy_gettext("through PayPal"),
}


def refunded_to(gateway: str | None) -> str:
    """`to the card`, or '' when the gateway says nothing a merchant would recognise."""
    gateway = (gateway or "").strip().lower()
    way = "card" if gateway in CARD_GATEWAYS else gateway if gateway in REFUNDED_TO else None
    return str(REFUNDED_TO[way]) if way else ""


def _return_text(kind: str, exchange: bool, name: str, num: int) -> str:
    """A return's line; its first names how many items come back (ngettext: `1 item`, `2 items`)."""
    if kind == "return_requested":
        return (ngettext("Exchange %(name)s requested (%(num)d item back)",
                         "Exchange %(name)s requested (%(num)d items back)", num, name=name) if exchange
                else ngettext("Return %(name)s requested (%(num)d item)", "Return %(name)s requested (%(num)d items)",
                              num, name=name))
    if kind == "return_opened":
        return (ngettext("Exchange %(name)s opened (%(num)d item back)", "Exchange %(name)s opened (%(num)d items back)",
                         num, name=name) if exchange
                else ngettext("Return %(name)s opened (%(num)d item)", "Return %(name)s opened (%(num)d items)",
                              num, name=name))
    return _format(RETURN_CHANGE[kind][bool(exchange)], name=name)


RETURN_CHANGE = {   # (return, exchange)
    "return_approved": (lazy_gettext("Return %(name)s approved"), lazy_gettext("Exchange %(name)s approved")),
    "return_closed": (lazy_gettext("Return %(name)s closed"), lazy_gettext("Exchange %(name)s closed")),
    "return_reopened": (lazy_gettext("Return %(name)s reopened"), lazy_gettext("Exchange %(name)s reopened")),
    "return_declined": (lazy_gettext("Return %(name)s declined"), lazy_gettext("Exchange %(name)s declined")),
    "return_canceled": (lazy_gettext("Return %(name)s canceled"), lazy_gettext("Exchange %(name)s canceled")),
}
REFUNDED_MONEY = (lazy_gettext("Refunded %(amount)s %(to)s"), lazy_gettext("Refunded %(amount)s"))
REFUND_PENDING = lazy_gettext("Refund of %(amount)s started; waiting for it to go through")
REFUND_SETTLED = lazy_gettext("Refund of %(amount)s went through")
REFUND_FAILED = lazy_gettext("Refund of %(amount)s failed: no money was returned")


def _refunded_items(num: int, amount: str, to: str) -> str:
    if to:
        return ngettext("Refunded %(num)d item: %(amount)s %(to)s", "Refunded %(num)d items: %(amount)s %(to)s",
                        num, amount=amount, to=to)
    return ngettext("Refunded %(num)d item: %(amount)s", "Refunded %(num)d items: %(amount)s", num, amount=amount)


def _taken_back(num: int) -> str:
    return ngettext("%(num)d item taken back without a refund", "%(num)d items taken back without a refund", num)


# A document by what it is to the customer: a credit invoice gives money back, an invoice (an
# exchange that costs them more, a correction) charges them. Both are masculine in Icelandic, so
# the sentences below agree with either.
DOCUMENT = {
    (False, True): lazy_gettext("Credit invoice %(number)s"),
    (False, False): lazy_gettext("Credit invoice for %(name)s"),
    (True, True): lazy_gettext("Invoice %(number)s"),
    (True, False): lazy_gettext("Invoice for %(name)s"),
}
KIND_LABEL = {False: lazy_gettext("Credit invoice"), True: lazy_gettext("Invoice")}
DOCUMENT_TEXT = {
    "document_claimed": lazy_gettext("%(document)s of %(total)s prepared"),
    "manual_credit": lazy_gettext("%(document)s of %(total)s prepared by hand"),
    "payday_invoice_created": lazy_gettext("%(document)s made in Payday"),
    "payday_payment_refused": lazy_gettext(
        "%(document)s: Payday would not record its payment; record it in Payday (%(error)s)"),
    "retry": lazy_gettext("%(document)s: trying again, as asked"),
    "payday_error": lazy_gettext("%(document)s not made in Payday: %(error)s"),
    "payday_retrying": lazy_gettext("%(document)s not made in Payday yet; Skilvís tries again: %(error)s"),
}
PAID_BACK = (lazy_gettext("Recorded in Payday as paid back %(to)s"), lazy_gettext("Recorded in Payday as paid back"))
PAID = lazy_gettext("Recorded in Payday as paid")
BOOKED_ELSEWHERE = lazy_gettext("%(document)s booked in %(system)s")

OTHER_TEXT = {
    "status": lazy_gettext("Status: %(from)s → %(to)s"),
    "read_error": lazy_gettext("The order could not be read from Shopify: %(error)s"),
    "stock_returned": lazy_gettext("%(quantity)s × %(sku)s put back into stock in Payday"),
    "stock_skipped": lazy_gettext("%(sku)s is not a product with stock in Payday: its stock was left as it is"),
    "stock_failed": lazy_gettext(
        "%(quantity)s × %(sku)s could not be put back into stock in Payday (%(error)s): add it to the product’s "
        "stock in Payday by hand"),
}
UNKNOWN_EVENT = lazy_gettext("Event: %(kind)s")

# Rows that are steps of Skilvís's own work, not part of the story: each call to Payday (what
# came of it has its own row), a reason that changed under an unchanged status, and the webhooks
# (triggers, never facts) older versions kept.
HIDDEN = frozenset({"payday_call", "reason_changed", "webhook"})


def is_charge(total) -> bool:
    """Whether a document charges the customer (a positive total) rather than credits them."""
    try:
        return Decimal(str(total)) > 0
    except (ArithmeticError, ValueError, TypeError):
        return False


def kind_label(total) -> str:
    """`Credit invoice` or `Invoice`, as the documents list names each document."""
    return str(KIND_LABEL[is_charge(total)])


def document_name(doc: dict | None) -> str:
    """`Credit invoice 42`, `Invoice for #1001-R1`: the number once Payday has given one."""
    doc = doc or {}
    number, charge = doc.get("number"), is_charge(doc.get("total"))
    if not number and not doc.get("name"):
        return str(KIND_LABEL[charge])
    return str(DOCUMENT[(charge, bool(number))]) % {"number": number or "", "name": doc.get("name") or ""}


def _format(template, **params) -> str:
    try:
        return str(template) % params
    except (KeyError, ValueError, TypeError):
        return str(template)


def text(kind: str, detail: dict | None, currency: str | None = "ISK") -> str:
    """One row as a sentence in the merchant's language. `detail` as stored, with the document
    it names (`document`: number, total, name) when the row is about one (build adds it)."""
    detail = dict(detail or {})
    currency = detail.get("currency") or currency or "ISK"
    if kind in RETURN_KINDS:
        return _return_text(kind, bool(detail.get("exchange")), str(detail.get("name") or ""),
                            int(detail.get("items") or 0))
    if kind in REFUND_KINDS:
        return _refund_text(kind, detail, currency)
    if kind == "payday_invoice_created" or kind in DOCUMENT_TEXT or kind == "payday_payment_registered":
        return _document_text(kind, detail, currency)
    if kind == "status":
        params = {"from": i18n.status_label(detail["from"]) if detail.get("from") else "–",
                  "to": i18n.status_label(detail.get("to") or "")}
        why = i18n.reason_text(detail.get("reason"))
        line = _format(OTHER_TEXT["status"], **params)
        return f"{line} ({why})" if why else line
    template = OTHER_TEXT.get(kind)
    if template is None:
        return _format(UNKNOWN_EVENT, kind=kind)
    params = {k: ("" if v is None else str(v)) for k, v in detail.items() if not isinstance(v, (dict, list))}
    if "error" in params:
        params["error"] = i18n.error_text(params["error"])
    for name in ("error", "sku", "quantity"):
        params.setdefault(name, "")
    return _format(template, **params)


def _refund_text(kind: str, detail: dict, currency: str) -> str:
    amount = i18n.money(detail.get("amount") or "0", currency)
    if kind == "refund_settled":
        return _format(REFUND_SETTLED, amount=amount)
    if kind == "refund_failed" or detail.get("state") == "failed":
        return _format(REFUND_FAILED, amount=amount)
    if detail.get("state") == "pending":
        return _format(REFUND_PENDING, amount=amount)
    items = int(detail.get("items") or 0)
    if detail.get("state") == "none":
        return _taken_back(items)
    to = refunded_to(detail.get("gateway"))
    if items:
        return _refunded_items(items, amount, to)
    return _format(REFUNDED_MONEY[0 if to else 1], amount=amount, to=to)


def _document_text(kind: str, detail: dict, currency: str) -> str:
    doc = detail.get("document") or {}
    name = document_name(doc)
    if kind == "payday_payment_registered":
        return _paid_text(doc)
    error = i18n.error_text(str(detail.get("error") or ""))
    if kind == "payday_error" and detail.get("kind") == "transient" and int(detail.get("attempt") or 0) < MAX_ATTEMPTS:
        kind = "payday_retrying"   # the last attempt's row says it failed for good
    total = i18n.money(doc.get("total") if doc.get("total") is not None else detail.get("total") or "0", currency)
    if kind == "payday_invoice_created" and detail.get("system", "payday") != "payday":
        return _format(BOOKED_ELSEWHERE, document=name, system=accounting.NAMES.get(detail["system"], detail["system"]))
    return _format(DOCUMENT_TEXT[kind], document=name, total=total, error=error)


def _paid_text(doc: dict) -> str:
    if is_charge(doc.get("total")):
        return str(PAID)
    to = refunded_to(doc.get("gateway"))
    return _format(PAID_BACK[0], to=to) if to else str(PAID_BACK[1])


def build(rows: list[dict], documents: dict[str, dict], currency: str | None = "ISK") -> list[dict]:
    """The page's story from the order's stored timeline rows (in time order) and its documents
    by key (`number`, `total`, `name`, `status`, `gateway`, `paid`: made in Payday as paid, `trigger`).
    Each entry: `at`, `kind`, `case_id`, `detail` (with the document it names) and `text`."""
    told_anew = any(row["kind"] in STORY_KINDS for row in rows)
    entries: list[dict] = []
    for row in rows:
        kind, detail = row["kind"], dict(row["detail"] or {})
        if kind in HIDDEN:
            continue
        if kind == "status":
            if detail.get("from") == detail.get("to") or detail.get("to") == "processing":
                continue   # nothing changed, or a document on its way (its own lines tell it)
            if told_anew and (detail.get("to") in ("created", "open") or str(
                    (detail.get("reason") or {}).get("code") or "").startswith("payday_")):
                continue   # the story's own lines say it: made in Payday, the return reopened, Payday's error
        doc = documents.get(detail.get("doc_key") or "")
        if doc is not None:
            detail["document"] = doc
            # A document that made it to Payday is told by that; a hand credit by its own line.
            if kind == "document_claimed" and (doc.get("status") == "sent" or doc.get("trigger") == "manual"):
                continue
        elif kind in DOCUMENT_TEXT:
            detail["document"] = {"total": detail.get("total")}   # never our internal key
        line = text(kind, detail, currency)
        if entries and entries[-1]["text"] == line:
            continue   # the same thing again (a read that failed pass after pass)
        entries.append({"at": row["at"], "kind": kind, "case_id": row.get("case_id"), "detail": detail,
                        "text": line})
        if kind == "payday_invoice_created" and doc is not None and doc.get("paid"):
            entries.append({"at": row["at"], "kind": "payday_paid", "case_id": row.get("case_id"),
                            "detail": detail, "text": _paid_text(doc)})
    return entries


def timeline_text(kind: str, detail: dict | None, currency: str | None = "ISK") -> str:
    """One stored row as a sentence (the `timeline_text` template global)."""
    if kind == "payday_paid":
        return _paid_text((detail or {}).get("document") or {})
    return text(kind, detail, currency)
