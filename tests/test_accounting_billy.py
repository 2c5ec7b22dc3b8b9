"""The Billy adapter against the Billy stand-in over real HTTP (no mocks): exactly once, the
link to the sale invoice, VAT through mapped products, Billy's faults and its booking rules.
The rules and their evidence: docs/BILLY_MODEL.md."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import requests

from shopify_app.accounting import AuthError, Buyer, Line, Note, Transient, Unbookable, ValidationError
from shopify_app.accounting.billy import BillyAdapter
from shopify_app.sandbox.accounting.billy import BillyStandin

TOKEN = "billy-token-1"
DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def server():
    standin = BillyStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def shop(server):
    """A Danish shop's Billy company: products for 25 % and 0 %, a default contact, a bank."""
    server.reset()
    server.add_organization(TOKEN, next_invoice_no=100)
    p25 = server.add_product("Varer 25 %", vat_rate=25)
    p0 = server.add_product("Momsfri varer", vat_rate=0)
    cash = server.add_contact("Kontantkunde")
    bank = server.add_payment_account("Bank")
    config = {"access_token": TOKEN, "products": {"25": p25["id"], "0": p0["id"]},
              "default_contact_id": cash["id"], "payment_accounts": {"shopify_payments": bank["id"]}}
    return {"standin": server, "config": config, "p25": p25, "p0": p0, "cash": cash, "bank": bank}


def adapter(shop, **config) -> BillyAdapter:
    return BillyAdapter({**shop["config"], **config}, shop["standin"].url, timeout=(2, 2), sleep=lambda s: None)


def note(reference="skv-1-r1", *, lines=None, order="#1001", buyer=None, currency="DKK", paid=None,
         gateway="shopify_payments") -> Note:
    lines = lines or (Line("item", "Kjole", "DRESS-1", -1, Decimal("-500.00"), Decimal("25")),)
    return Note(reference=reference, order_name=order, currency=currency, date=DAY, paid_date=paid,
                gateway=gateway, buyer=buyer, lines=tuple(lines), text="Retur af ordre #1001")


def creates(shop) -> list[dict]:
    return shop["standin"].requests_to("/v2/invoices", "POST")


def test_a_repeated_send_makes_exactly_one_credit_note(shop):
    billy = adapter(shop)
    first = billy.send(note())
    again = billy.send(note())
    docs = shop["standin"].documents()
    assert len(docs) == 1 and first.id == again.id and first.number == again.number == "100"
    assert docs[0]["type"] == "credit_note" and docs[0]["booked"] and docs[0]["total"] == Decimal("-500.00")
    assert len(creates(shop)) == 1


def test_a_lost_answer_is_found_by_reference_and_never_made_twice(shop):
    billy = adapter(shop)
    shop["standin"].fail_after_commit_next(status=None)
    with pytest.raises(Transient) as lost:
        billy.send(note())
    assert lost.value.outcome_unknown
    found = billy.find(note())
    assert found is not None and found.number == "100"
    assert billy.send(note()).id == found.id
    assert len(shop["standin"].documents()) == 1


def test_a_create_held_past_the_timeout_is_outcome_unknown_and_found_after(shop):
    billy = adapter(shop)
    shop["standin"].timeout_next(seconds=3, paths=("POST /v2/invoices",))
    with pytest.raises(Transient) as held:
        billy.send(note())
    assert held.value.outcome_unknown
    booked = billy.send(note())
    assert [d["number"] for d in shop["standin"].documents()] == [booked.number]


def test_a_billy_that_keeps_external_id_is_found_by_the_filter(shop):
    shop["standin"].configure(external_id="stored")
    billy = adapter(shop)
    booked = billy.send(note())
    assert billy.find(note()).id == booked.id
    assert shop["standin"].requests[-1]["query"].get("externalId") == "skv-1-r1"


def test_a_billy_that_refuses_external_id_still_books_once(shop):
    shop["standin"].configure(external_id="refused")
    billy = adapter(shop)
    first = billy.send(note())
    assert not billy.send_external_id
    assert adapter(shop).send(note()).id == first.id   # a fresh adapter finds it by contactMessage
    assert len(shop["standin"].documents()) == 1


def test_a_credit_note_is_linked_to_the_sale_invoice_of_the_order(shop):
    standin = shop["standin"]
    buyer = standin.add_contact("Hansen ApS", registration_no="DK12345678")
    sale = standin.add_sale_invoice("#1001", buyer["id"], [(shop["p25"]["id"], 500, 2, "Kjole")])
    booked = adapter(shop).send(note())
    assert booked.credited_invoice == sale["invoiceNo"]
    doc = standin.documents()[0]
    assert doc["credited_invoice"] == sale["invoiceNo"] and doc["customer"] == "Hansen ApS"


def test_without_a_sale_invoice_the_credit_note_stands_alone(shop):
    booked = adapter(shop).send(note(order="#4040"))
    assert booked.credited_invoice is None
    assert shop["standin"].documents()[0]["customer"] == "Kontantkunde"


def test_a_withheld_buyer_s_credit_note_goes_to_the_sale_invoice_s_contact_linked_not_to_the_default(shop):
    # Shopify withholds the customer: the order's sale invoice, found by the order name, says
    # who the customer is in Billy, so no personal data is needed to credit the right contact.
    standin = shop["standin"]
    hansen = standin.add_contact("Hansen ApS", registration_no="DK12345678")
    sale = standin.add_sale_invoice("#1001", hansen["id"], [(shop["p25"]["id"], 500, 2, "Kjole")])

    booked = adapter(shop).send(note(buyer=None))

    doc = standin.documents()[0]
    assert (doc["type"], doc["customer"], doc["credited_invoice"]) == ("credit_note", "Hansen ApS", sale["invoiceNo"])
    assert doc["customer"] != shop["cash"]["name"] and booked.credited_invoice == sale["invoiceNo"]
    sent = creates(shop)[0]["json"]["invoice"]
    assert (sent["contactId"], sent["creditedInvoiceId"]) == (hansen["id"], sale["id"])
    assert standin.requests_to("/v2/contacts") == []     # no customer data looked up or written


def test_credits_beyond_the_sale_invoice_are_not_linked(shop):
    standin = shop["standin"]
    buyer = standin.add_contact("Hansen ApS")
    standin.add_sale_invoice("#1001", buyer["id"], [(shop["p25"]["id"], 300, 1, "Kjole")])
    booked = adapter(shop).send(note())  # 500 back on a 300 invoice: Billy would refuse the link
    assert booked.credited_invoice is None and booked.number


def test_an_unmapped_vat_rate_is_unbookable_before_any_call(shop):
    lines = (Line("item", "Bog", None, -1, Decimal("-100"), Decimal("12")),)
    with pytest.raises(Unbookable) as refused:
        adapter(shop).send(note(lines=lines))
    assert refused.value.code == "unsupported_vat_rate"
    assert refused.value.params == {"rate": "12", "item": "Bog"}
    assert shop["standin"].requests == []


def test_a_currency_the_shop_does_not_book_is_unbookable_before_any_call(shop):
    with pytest.raises(Unbookable) as refused:
        adapter(shop).send(note(currency="ISK"))
    assert refused.value.code == "unsupported_currency" and shop["standin"].requests == []


def test_25_and_0_percent_lines_in_dkk_book_through_their_products(shop):
    lines = (Line("item", "Kjole", None, -2, Decimal("-1000.00"), Decimal("25")),
             Line("item", "Avis", None, -1, Decimal("-40.00"), Decimal("0")),
             Line("shipping", "Standard", None, -1, Decimal("-49.00"), Decimal("25")))
    billy = adapter(shop)
    assert billy.bookable_rates() == {Decimal(25), Decimal(0)}
    billy.send(note(lines=lines))
    doc = shop["standin"].documents()[0]
    assert doc["currency"] == "DKK" and doc["total"] == Decimal("-1089.00")
    assert [(ln["quantity"], ln["unit_price_incl_vat"], ln["vat_rate"]) for ln in doc["lines"]] == [
        (Decimal(-2), Decimal(500), Decimal(25)), (Decimal(-1), Decimal(40), Decimal(0)),
        (Decimal(-1), Decimal(49), Decimal(25))]
    assert doc["lines"][2]["description"] == "Fragt: Standard"
    sent = creates(shop)[0]["json"]["invoice"]
    assert sent["taxMode"] == "incl" and all("taxRate" not in ln and "taxRateId" not in ln for ln in sent["lines"])
    invoice = shop["standin"].invoices()[0]
    assert Decimal(str(invoice["tax"])) == Decimal("209.80")  # 200 + 0 + 9.80


def test_a_single_fee_or_shipping_product_is_the_25_percent_product_and_other_rates_use_their_own(shop):
    # A return fee split over goods at 25 % and 0 % (R5), and a 0 % share of shipping: Billy takes
    # VAT from the product's ruleset, so the 0 % shares belong on the 0 % product.
    standin = shop["standin"]
    shipping = standin.add_product("Fragt", vat_rate=25)
    fees = standin.add_product("Gebyrer", vat_rate=25)
    lines = (Line("item", "Kjole", None, -2, Decimal("-1000.00"), Decimal("25")),
             Line("item", "Avis", None, -1, Decimal("-40.00"), Decimal("0")),
             Line("shipping", "Standard", None, -1, Decimal("-30.00"), Decimal("25")),
             Line("shipping", "Standard", None, -1, Decimal("-9.00"), Decimal("0")),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("38.27"), Decimal("25")),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal("0")))

    adapter(shop, shipping_product=shipping["id"], fee_product=fees["id"]).send(note(lines=lines))

    credit, charge = standin.documents()
    assert [ln["vat_rate"] for ln in credit["lines"]] == [Decimal(25), Decimal(0), Decimal(25), Decimal(0)]
    assert [ln["vat_rate"] for ln in charge["lines"]] == [Decimal(25), Decimal(0)]
    sent = [[ln["productId"] for ln in r["json"]["invoice"]["lines"]] for r in creates(shop)]
    p25, p0 = shop["p25"]["id"], shop["p0"]["id"]
    assert sent == [[p25, p0, shipping["id"], p0], [fees["id"], p0]]


def test_a_kind_s_line_at_a_rate_without_a_product_is_unbookable_before_any_call(shop):
    fees = shop["standin"].add_product("Gebyrer", vat_rate=25)
    billy = adapter(shop, products={"25": shop["p25"]["id"]}, fee_product=fees["id"])
    lines = (Line("item", "Kjole", None, -1, Decimal("-500.00"), Decimal("25")),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal("0")))

    with pytest.raises(Unbookable) as refused:
        billy.send(note(lines=lines))

    assert refused.value.params == {"rate": "0", "item": "Returfragt"}
    assert shop["standin"].requests == []


def test_credit_note_lines_go_positive_because_the_type_carries_the_sign(shop):
    adapter(shop).send(note())
    sent = creates(shop)[0]["json"]["invoice"]
    assert sent["type"] == "creditNote"
    assert all(ln["unitPrice"] > 0 and ln["quantity"] > 0 for ln in sent["lines"])


def test_the_stand_in_refuses_a_credit_note_of_the_other_sign(shop):
    body = {"invoice": {"type": "creditNote", "contactId": shop["cash"]["id"], "entryDate": "2026-11-20",
                        "currencyId": "DKK", "paymentTermsDays": 0, "state": "approved",
                        "lines": [{"productId": shop["p25"]["id"], "unitPrice": -100, "quantity": 1}]}}
    resp = requests.post(shop["standin"].url + "/v2/invoices", json=body, headers={"X-Access-Token": TOKEN}, timeout=5)
    assert resp.status_code == 422 and "credit note" in resp.json()["errorMessage"]


def test_billys_429_is_transient_with_its_retry_after(shop):
    shop["standin"].fail_next(1, status=429, retry_after=30, paths=("POST /v2/invoices",))
    with pytest.raises(Transient) as limited:
        adapter(shop).send(note())
    assert limited.value.retry_after == 30 and not limited.value.outcome_unknown
    assert shop["standin"].documents() == []


def test_the_stand_ins_rate_limit_answers_429_with_retry_after(shop):
    shop["standin"].configure(rate_limit=(3, 60))
    with pytest.raises(Transient) as limited:
        adapter(shop).send(note())
    assert limited.value.retry_after and limited.value.retry_after > 10
    assert shop["standin"].faults["rate_limited"] >= 1


def test_a_5xx_is_transient_and_a_create_s_outcome_unknown(shop):
    shop["standin"].fail_next(1, status=503, paths=("POST /v2/invoices",))
    with pytest.raises(Transient) as failed:
        adapter(shop).send(note())
    assert failed.value.outcome_unknown
    shop["standin"].fail_next(2, status=502, paths=("GET /v2/invoices",))
    assert adapter(shop).send(note()).number == "100"   # reads are repeated in place


def test_a_refused_access_token_is_an_auth_error(shop):
    with pytest.raises(AuthError):
        adapter(shop, access_token="wrong").send(note())
    result = adapter(shop, access_token="wrong").test_connection()
    assert result["ok"] is False and result["choices"] == {}


def test_billys_refusal_keeps_its_words(shop):
    with pytest.raises(ValidationError) as refused:
        adapter(shop, default_contact_id="no-such-contact").send(note())
    assert "Contact was not found" in refused.value.detail


def test_a_charge_becomes_an_invoice_beside_the_credit_note(shop):
    lines = (Line("item", "Kjole S", None, -1, Decimal("-500"), Decimal("25")),
             Line("exchange_item", "Kjole M", None, 1, Decimal("650"), Decimal("25")))
    charge = note(lines=lines)
    assert charge.is_charge
    billy = adapter(shop)
    booked = billy.send(charge)
    docs = shop["standin"].documents()
    assert [(d["type"], d["total"], d["reference"]) for d in docs] == [
        ("credit_note", Decimal("-500"), "skv-1-r1"), ("invoice", Decimal("650"), "skv-1-r1:charge")]
    assert len(booked.ids) == 2 and billy.find(charge).ids == booked.ids
    assert billy.send(charge).ids == booked.ids and len(shop["standin"].documents()) == 2


def test_a_pure_charge_is_one_invoice(shop):
    lines = (Line("restocking_fee", "Kjole", None, 1, Decimal("50"), Decimal("25")),)
    adapter(shop).send(note(lines=lines))
    [doc] = shop["standin"].documents()
    assert doc["type"] == "invoice" and doc["lines"][0]["description"] == "Returgebyr: Kjole"


def test_booked_documents_are_irreversible_in_the_stand_in(shop):
    booked = adapter(shop).send(note())
    url, headers = shop["standin"].url + f"/v2/invoices/{booked.id}", {"X-Access-Token": TOKEN}
    change = requests.put(url, json={"invoice": {"lines": [{"productId": shop["p0"]["id"], "unitPrice": 1}]}},
                          headers=headers, timeout=5)
    back = requests.put(url, json={"invoice": {"state": "draft"}}, headers=headers, timeout=5)
    delete = requests.delete(url, headers=headers, timeout=5)
    assert (change.status_code, back.status_code, delete.status_code) == (422, 422, 422)
    assert shop["standin"].documents()[0]["booked"] and shop["standin"].documents()[0]["number"] == "100"


def test_a_create_billy_leaves_a_draft_is_approved_and_numbered_then(shop):
    shop["standin"].configure(approve_on_create="ignored")
    booked = adapter(shop).send(note())
    assert booked.number == "100" and shop["standin"].documents()[0]["booked"]
    assert shop["standin"].requests_to(f"/v2/invoices/{booked.id}", "PUT")


def test_the_buyer_is_found_by_cvr_or_created_with_the_e_mail(shop):
    standin = shop["standin"]
    known = standin.add_contact("Hansen ApS", registration_no="DK12345678")
    adapter(shop).send(note(buyer=Buyer("Hansen", None, national_id="12345678")))
    adapter(shop).send(note("skv-2-r1", buyer=Buyer("Jens Jensen", "jens@example.dk")))
    adapter(shop).send(note("skv-3-r1", buyer=Buyer("Jens J.", "JENS@example.dk")))
    customers = [d["customer"] for d in standin.documents()]
    assert customers == [known["name"], "Jens Jensen", "Jens Jensen"]
    assert len(standin.requests_to("/v2/contacts", "POST")) == 1


def test_a_paid_note_posts_one_bank_payment_even_when_sent_again(shop):
    billy = adapter(shop)
    paid = note(paid=DAY)
    billy.send(paid)
    billy.send(paid)
    payments = shop["standin"].requests_to("/v2/bankPayments", "POST")
    assert len(payments) == 1
    body = payments[0]["json"]["bankPayment"]
    assert body["cashSide"] == "credit" and body["cashAmount"] == 500 and body["cashAccountId"] == shop["bank"]["id"]
    assert shop["standin"].invoices()[0]["isPaid"]


def test_an_unmapped_gateway_posts_no_payment(shop):
    adapter(shop).send(note(paid=DAY, gateway="manual"))
    assert shop["standin"].requests_to("/v2/bankPayments", "POST") == []


def test_the_connection_test_lists_billys_choices(shop):
    result = adapter(shop).test_connection()
    assert result["ok"]
    choices = result["choices"]
    assert {(p["name"], p["vat_rate"]) for p in choices["products"]} == {("Varer 25 %", "25"), ("Momsfri varer", "0")}
    assert [a["id"] for a in choices["payment_accounts"]] == [shop["bank"]["id"]]
    assert shop["cash"]["id"] in [c["id"] for c in choices["contacts"]]


def test_the_base_url_comes_from_billy_base_url_when_none_is_given(shop, monkeypatch):
    monkeypatch.setenv("BILLY_BASE_URL", shop["standin"].url + "/v2")
    assert BillyAdapter(shop["config"]).base_url == shop["standin"].url
    monkeypatch.delenv("BILLY_BASE_URL")
    assert BillyAdapter(shop["config"]).base_url == "https://api.billysbilling.com"


def test_under_the_harshest_modes_retried_sends_make_one_document_per_note(shop):
    shop["standin"].harshest().configure(rate_limit=None, seed=7)
    billy = adapter(shop)
    notes = [note(f"skv-{n}-r1", paid=DAY, lines=(
        Line("item", "Kjole", None, -1, Decimal("-500"), Decimal("25")),
        Line("exchange_item", "Bluse", None, 1, Decimal("200"), Decimal("25")))) for n in range(6)]
    for each in notes:
        for _ in range(20):
            try:
                booked = billy.send(each)
                break
            except Transient:
                continue
        assert billy.find(each).ids == booked.ids
    docs = shop["standin"].documents()
    assert sorted(d["reference"] for d in docs) == sorted(
        r for n in range(6) for r in (f"skv-{n}-r1", f"skv-{n}-r1:charge"))
    assert all(d["booked"] and d["number"] for d in docs)
    assert shop["standin"].faults["lost_answers"] > 0
    assert len(shop["standin"].requests_to("/v2/bankPayments", "POST")) >= 12
    assert all(i["isPaid"] for i in shop["standin"].invoices())
