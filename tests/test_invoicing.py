"""What Payday receives for a credit invoice (pure: built from a claimed document)."""
from __future__ import annotations

from datetime import date

from shopify_app import accounting, invoicing


def doc(lines, trigger="return_close", key="return-1", return_name="#1001-R1", gateway="shopify_payments"):
    return {"trigger": trigger, "doc_key": key, "return_name": return_name, "gateway": gateway, "currency": "ISK",
            "reference": invoicing.reference("#1001", key, return_name), "lines": lines}


ITEM = {"kind": "item", "description": "Krús", "sku": "KRUS", "quantity": -3, "amount": "-5970", "vat_rate": "24"}
FEE = {"kind": "return_shipping_fee", "description": "Return shipping", "sku": None, "quantity": 1, "amount": "500", "vat_rate": "24"}


def test_C7_reference_names_the_order_and_the_return():
    assert invoicing.reference("#1001", "return-77", "#1001-R1") == "#1001 / #1001-R1"
    assert invoicing.reference("#1001", "exchange-77", "#1001-R1") == "#1001 / #1001-R1"


def test_C7_a_refunds_own_invoice_has_its_own_reference_in_words():
    # Unique (an unanswered create is looked up by it), and read by the customer: no key of ours.
    assert invoicing.reference("#1001", "refund-88", "#1001-R1") == "#1001 / #1001-R1 / Endurgreiðsla 88"
    assert invoicing.reference("#1001", "refund-88", None) == "#1001 / Endurgreiðsla 88"
    # R9: a reopened return's next close is not the first close's reference again.
    assert invoicing.reference("#1001", "return-77-99", "#1001-R1") == "#1001 / #1001-R1 / Endurgreiðsla 99"
    assert invoicing.reference("#1001", "correction-88", "#1001-R1", corrects="refund-88") == \
        "#1001 / #1001-R1 / Endurgreiðsla 88 / Leiðrétting 88"
    # A hand credit is named like a return: `#1001-H2`, not the form's token.
    assert invoicing.reference("#1001", "manual-zTyJJ7E2698tp59pBRPYvmI8", "#1001-H2") == "#1001 / #1001-H2"


def test_credited_lines_have_positive_quantity_and_negative_unit_price_no_sku_and_fees_are_charges():
    # No sku: Payday would move the product's stock out again (docs/PAYDAY_MODEL.md, stock).
    body = invoicing.invoice_body(doc([ITEM, FEE]), order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type=None, send_email=False)
    assert body["lines"] == [
        {"position": 1, "description": "Krús", "quantity": 3, "unitPriceIncludingVat": -1990, "vatPercentage": 24,
         "discountPercentage": 0},
        {"position": 2, "description": "Sendingargjald vegna skila", "quantity": 1, "unitPriceIncludingVat": 500,
         "vatPercentage": 24, "discountPercentage": 0}]
    assert body["reference"] == "#1001 / #1001-R1" and body["customer"] == {"id": "c1"}
    assert body["status"] == "SENT" and "paymentType" not in body


def test_where_payday_keeps_stock_only_an_exchanges_new_items_carry_their_sku():
    # F1/F2: Payday takes a linked line's quantity out of stock whatever its price; the new items
    # of an exchange do go out, the credited ones come back by a product movement (stock.py).
    new_item = {"kind": "exchange_item", "description": "Skyrta M", "sku": "SKYRTA-M", "quantity": 2,
                "amount": "10000", "vat_rate": "24"}
    lines = invoicing.payday_lines([ITEM, new_item], keeps_stock=True)
    assert "sku" not in lines[0] and lines[1]["sku"] == "SKYRTA-M"
    assert all("sku" not in line for line in invoicing.payday_lines([ITEM, new_item]))


def test_C7_the_sale_invoice_is_named_with_its_number_and_date():
    body = invoicing.invoice_body(doc([ITEM]), order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type=None, send_email=False, original_number="1042",
                                  original_date=date(2026, 10, 5))
    assert "Kreditfærir reikning nr. 1042 dags. 5.10.2026" in body["description"]


def test_every_line_reads_in_icelandic_on_the_invoice():
    restocking = {"kind": "restocking_fee", "description": "Bolur M", "sku": None, "quantity": 1, "amount": "250",
                  "vat_rate": "24"}
    body = invoicing.invoice_body(doc([ITEM, restocking]), order_name="#1001", customer_id="c1",
                                  today=date(2026, 11, 23), payment_type=None, send_email=False)
    assert [line["description"] for line in body["lines"]] == ["Krús", "Umsýslugjald vegna skila: Bolur M"]


def test_booked_as_paid_with_the_mapped_payment_type():
    body = invoicing.invoice_body(doc([ITEM]), order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type="pt-1", send_email=True)
    assert (body["status"], body["paidDate"], body["paymentType"], body["sendEmail"]) == ("PAID", "2026-11-23", "pt-1", True)


def test_a_total_that_does_not_divide_exactly_is_booked_as_one_unit():
    line = {**ITEM, "quantity": -3, "amount": "-1000"}
    [sent] = invoicing.payday_lines([line])
    assert (sent["quantity"], sent["unitPriceIncludingVat"]) == (1, -1000)
    assert sent["description"].startswith("3 × ")


def test_C4_the_description_names_the_gateway_and_the_credited_sale_invoice():
    body = invoicing.invoice_body(doc([ITEM]), order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type=None, send_email=False, original_number="1042")
    # The customer reads the gateway's name, not Shopify's id for it.
    assert "Shopify Payments" in body["description"] and "shopify_payments" not in body["description"]
    assert "1042" in body["description"]
    assert "#1001-R1" in body["description"] and "#1001" in body["description"]


def test_the_invoice_is_dated_by_its_trigger_and_paid_on_the_day_the_money_moved():
    body = invoicing.invoice_body({**doc([ITEM]), "document_date": date(2026, 11, 20), "paid_date": date(2026, 11, 21)},
                                  order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type="pt-1", send_email=False)
    assert (body["invoiceDate"], body["dueDate"], body["paidDate"]) == ("2026-11-20", "2026-11-20", "2026-11-21")


def test_a_day_is_iceland_s_whatever_the_servers_zone():
    from datetime import datetime, timedelta, timezone

    late = datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=-5)))   # New York, late evening
    assert accounting.local_day("payday", late) == date(2026, 11, 21)


def test_the_merchants_refund_note_is_carried_to_the_invoice():
    body = invoicing.invoice_body({**doc([ITEM]), "note": "Of lítil"}, order_name="#1001", customer_id="c1",
                                  today=date(2026, 11, 23), payment_type=None, send_email=False)
    assert body["description"].endswith("Athugasemd: Of lítil")


def test_the_return_reason_is_on_the_credit_invoice():
    body = invoicing.invoice_body({**doc([ITEM]), "return_reason": "Of lítið, Gallað", "note": "Skipt í L"},
                                  order_name="#1001", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type=None, send_email=False)
    # The reason comes before the merchant's note, which stays last.
    assert body["description"].endswith(". Ástæða skila: Of lítið, Gallað. Athugasemd: Skipt í L")
    assert "Ástæða skila" not in invoicing.invoice_body(doc([ITEM]), order_name="#1001", customer_id="c1",
                                                        today=date(2026, 11, 23), payment_type=None,
                                                        send_email=False)["description"]
