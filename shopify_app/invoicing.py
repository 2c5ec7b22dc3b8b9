"""What a credit invoice looks like in Payday: reference, description and lines, built from a
claimed document. Pure: no I/O.

Payday has no credit endpoint (payday.md §6): a credit invoice is an ordinary invoice whose
credited lines carry a negative unit price with a positive quantity, as Payday's own plugins
send them. Charged lines (fees, exchange items) are positive."""
from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .decision import ADJUSTMENT, EXCHANGE_ITEM, ITEM, RESTOCKING_FEE, RETURN_SHIPPING_FEE, SHIPPING

# Gateways whose id does not read as their name once the underscores go, in the reader's
# language (the company's on a document, the merchant's in Settings).
GATEWAY_NAMES = {
    "is": {"bogus": "Bogus (prufugreiðsla)", "manual": "Handvirk greiðsla", "cash": "Reiðufé", "gift_card": "Gjafakort"},
    "da": {"bogus": "Bogus (testbetaling)", "manual": "Manuel betaling", "cash": "Kontant", "gift_card": "Gavekort"},
    "en": {"bogus": "Bogus (test payment)", "manual": "Manual payment", "cash": "Cash", "gift_card": "Gift card"},
}
UNIT_QUANTUM = Decimal("0.0001")  # Payday's money format: unit prices to 4 decimals (payday.md §2)

# The invoice is a bookkeeping document for an Icelandic company: its text is Icelandic.
LINE_LABELS = {
    SHIPPING: "Sendingarkostnaður: {title}",
    RETURN_SHIPPING_FEE: "Sendingargjald vegna skila",
    RESTOCKING_FEE: "Umsýslugjald vegna skila: {title}",
    ADJUSTMENT: "Leiðrétting: endurgreitt umfram eða undir vörulínum",
}
TRIGGER_TEXT = {
    "return_close": "Kreditreikningur vegna skila {ret} á pöntun {order}",
    "exchange_settled": "Reikningur vegna vöruskipta {ret} á pöntun {order}",
    "refund": "Kreditreikningur vegna endurgreiðslu á pöntun {order}",
    "manual": "Kreditreikningur skráður handvirkt á pöntun {order}",
    "correction": "Leiðrétting á reikningi vegna endurgreiðslu á pöntun {order}: greiðslan til viðskiptavinar "
                  "mistókst",
}


# A Danish shop's documents (e-conomic, Dinero, Billy) read in Danish; the adapters add their
# own words for shipping and fees.
WORDS = {
    "is": {"refund": "Endurgreiðsla", "correction": "Leiðrétting", "manual": "Handvirk kreditfærsla",
           "charged": "Greitt", "refunded": "Endurgreitt", "via": "með", "credits": "Kreditfærir reikning nr.",
           "dated": "dags.", "reason": "Ástæða skila", "note": "Athugasemd"},
    "da": {"refund": "Refusion", "correction": "Korrektion", "manual": "Manuel kreditering",
           "charged": "Betalt", "refunded": "Refunderet", "via": "via", "credits": "Krediterer faktura nr.",
           "dated": "af", "reason": "Returårsag", "note": "Bemærkning"},
}
TRIGGER_TEXT_DA = {
    "return_close": "Kreditnota for returnering {ret} af ordre {order}",
    "exchange_settled": "Ombytning {ret} af ordre {order}",
    "refund": "Kreditnota for refusion på ordre {order}",
    "manual": "Kreditnota oprettet manuelt på ordre {order}",
    "correction": "Korrektion af refusion på ordre {order}: betalingen til kunden mislykkedes",
}


def reference(order_name: str, doc_key: str, return_name: str | None, corrects: str | None = None,
              language: str = "is") -> str:
    """C7: the reference names the Shopify order and return, e.g. `#1001 / #1001-R1`, and reads as
    words on the customer's invoice. It must be unique (an invoice whose create had no answer is
    looked up by it), so a refund's own invoice adds the refund (`#1001 / Endurgreiðsla 88`): a
    refund has no name in Shopify, and its number is the one thing that tells two apart. A
    hand-made credit stands where a return would (`#1001 / #1001-H1`, its `return_name`), a
    reopened return's next close names the refund it begins with, and a correction (F3) names
    the invoice it corrects and the refund whose money failed."""
    words = WORDS[language]
    if corrects:
        return (f"{reference(order_name, corrects, return_name, language=language)} / "
                f"{words['correction']} {doc_key.split('-', 1)[1]}")
    parts = [order_name]
    if return_name:
        parts.append(return_name)
    kind, _, rest = doc_key.partition("-")
    if kind == "refund":
        parts.append(f"{words['refund']} {rest}")
    elif kind in ("return", "exchange") and "-" in rest:      # return-<id>-<refund id> (R9)
        parts.append(f"{words['refund']} {rest.split('-', 1)[1]}")
    elif kind == "manual" and not return_name:
        parts.append(f"{words['manual']} {rest}")
    elif kind not in ("return", "exchange", "manual"):
        parts.append(doc_key)
    return " / ".join(parts)


def _number(value: Decimal):
    """JSON number for Payday: an int when whole, else a float of at most 4 decimals."""
    return int(value) if value == value.to_integral_value() else float(value)


def payday_lines(lines: list[dict], keeps_stock: bool = False) -> list[dict]:
    result = []
    for position, line in enumerate(lines, start=1):
        amount = Decimal(line["amount"])
        quantity = abs(int(line["quantity"])) or 1
        title = line.get("description") or ""
        if line["kind"] in (ITEM, EXCHANGE_ITEM):
            description = title
        else:
            description = LINE_LABELS[line["kind"]].format(title=title).rstrip(": ")
        unit = (amount / quantity).quantize(UNIT_QUANTUM, rounding=ROUND_HALF_UP)
        if unit * quantity != amount:
            # The total would not come out exact at 4 decimals: book the line as one unit.
            description, unit, quantity = f"{quantity} × {description}", amount, 1
        entry = {"position": position, "description": description[:1024], "quantity": quantity,
                 "unitPriceIncludingVat": _number(unit), "vatPercentage": _number(Decimal(line["vat_rate"])),
                 "discountPercentage": 0}
        # Payday moves a linked product's stock by -quantity when it issues the invoice, whatever
        # the price's sign (docs/PAYDAY_MODEL.md F1, F2): a credited line with its sku would take
        # the returned goods out a second time, so only goods going out (an exchange's new items)
        # are linked, and only where Payday keeps stock. Returned goods come back by stock.py.
        if keeps_stock and line["kind"] == EXCHANGE_ITEM and line.get("sku"):
            entry["sku"] = line["sku"]
        result.append(entry)
    return result


def gateway_name(gateway: str, language: str = "is") -> str:
    """How a customer reads Shopify's gateway id (`shopify_payments` → `Shopify Payments`). A
    manual payment method is already the merchant's own words (`Millifærsla`) and kept as it is."""
    named = GATEWAY_NAMES.get(language, GATEWAY_NAMES["en"])
    if gateway in named:
        return named[gateway]
    if re.fullmatch(r"[a-z0-9_]+", gateway):
        return gateway.replace("_", " ").strip().title()
    return gateway.strip()


def description(doc: dict, *, order_name: str, original_number: str | None = None,
                original_date: date | None = None, language: str = "is") -> str:
    """The invoice's text, in the company's language (Icelandic for Payday, Danish for the
    Danish systems): the order and return by their names, never an id of ours or Shopify's."""
    words = WORDS[language]
    texts = TRIGGER_TEXT if language == "is" else TRIGGER_TEXT_DA
    text = texts[doc["trigger"]].format(ret=doc.get("return_name") or "", order=order_name)
    if doc.get("gateway"):   # C4: which gateway moved the money, and which way
        charged = sum((Decimal(line["amount"]) for line in doc["lines"]), Decimal(0)) > 0
        text += f". {words['charged'] if charged else words['refunded']} {words['via']} {gateway_name(doc['gateway'], language)}"
    if original_number:
        text += f". {words['credits']} {original_number}"
        if original_date:
            text += f" {words['dated']} {original_date.day}.{original_date.month}.{original_date.year}"
    if doc.get("return_reason"):
        text += f". {words['reason']}: {doc['return_reason'][:200]}"
    if doc.get("note"):
        text += f". {words['note']}: {doc['note'][:300]}"   # the merchant's reason, as given in Shopify
    return text[:1024]


def note_json(note) -> dict:
    """What was handed to a Danish system's adapter, kept on the document as Payday's request
    body is (the case page shows its lines)."""
    return {"reference": note.reference, "text": note.text, "currency": note.currency, "date": note.date.isoformat(),
            "lines": [{"description": l.description, "quantity": l.quantity, "amount": str(l.amount),
                       "vat_rate": str(l.vat_rate), "kind": l.kind} for l in note.lines]}


def draft(doc: dict, *, order_name: str, original_number: str | None = None, original_date: date | None = None,
          keeps_stock: bool = False, language: str = "is") -> dict:
    """What Payday's customer reads on the invoice: its text, reference and lines, signs and
    labels as sent. The one source of both the invoice (invoice_body) and the hand credit's
    preview (manual.preview), so the merchant confirms exactly what is sent."""
    return {"description": description(doc, order_name=order_name, original_number=original_number,
                                       original_date=original_date, language=language),
            "reference": doc["reference"], "lines": payday_lines(doc["lines"], keeps_stock)}


def invoice_body(doc: dict, *, order_name: str, customer_id: str, today: date, payment_type: str | None,
                 send_email: bool, original_number: str | None = None, original_date: date | None = None,
                 keeps_stock: bool = False) -> dict:
    shown = draft(doc, order_name=order_name, original_number=original_number, original_date=original_date,
                  keeps_stock=keeps_stock)
    # Dated by what happened in Shopify (the close, the refund, the settlement), not by the day
    # Skilvís got to send it; paid on the day the money moved.
    dated = doc.get("document_date") or today
    paid = doc.get("paid_date") or dated
    body = {
        "customer": {"id": customer_id},
        "description": shown["description"],
        "reference": shown["reference"],
        "invoiceDate": dated.isoformat(),
        "dueDate": dated.isoformat(),
        "finalDueDate": dated.isoformat(),
        "currencyCode": doc["currency"],
        "sendEmail": bool(send_email),
        "lines": shown["lines"],
    }
    if payment_type:
        body.update(status="PAID", paidDate=paid.isoformat(), paymentType=payment_type)
    else:
        body["status"] = "SENT"
    return body
