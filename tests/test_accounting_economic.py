"""The e-conomic adapter against the e-conomic stand-in, over the wire (no mocks, no database):
a credit note is a draft with negative quantities, booked once, found again by its reference."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import requests

from shopify_app.accounting import AuthError, Buyer, Line, Note, Transient, Unbookable, ValidationError
from shopify_app.accounting import economic
from shopify_app.accounting.economic import EconomicAdapter
from shopify_app.sandbox.accounting.economic import EconomicStandin

SECRET, GRANT = "app-secret-token", "agreement-grant-token"


@pytest.fixture(scope="module")
def server():
    standin = EconomicStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def standin(server):
    server.reset()
    server.add_agreement(SECRET, GRANT)
    server.add_product("100", "Varer med moms", vat_rate=25)
    server.add_product("200", "Momsfrie varer", vat_rate=0)
    server.add_product("300", "Fragt", vat_rate=25)
    server.add_product("400", "Gebyrer", vat_rate=25)
    server.add_customer(name="Webshop-kunde")      # 1: the default customer
    economic._BUCKETS.clear()
    return server


def config(**over) -> dict:
    return {"app_secret_token": SECRET, "agreement_grant_token": GRANT, "layout_number": 19,
            "payment_terms_number": 1, "vat_zone_number": 1, "products": {"25": "100", "0": "200"},
            "shipping_product": "300", "fee_product": "400", "default_customer_number": 1,
            "customer_group_number": 1, **over}


@pytest.fixture
def adapter(standin):
    return EconomicAdapter(config(), standin.url, timeout=(2, 2), sleep=lambda s: None)


def note(*lines, reference="#1001 / #1001-R1", buyer=None, currency="DKK", order="#1001") -> Note:
    lines = lines or (Line("item", "Uldsweater", "SW-1", -1, Decimal("-499.95"), Decimal(25)),)
    return Note(reference=reference, order_name=order, currency=currency, date=date(2026, 11, 30),
                paid_date=None, gateway=None, buyer=buyer, lines=tuple(lines), text="Retur af ordre #1001")


def booked_docs(standin):
    return [d for d in standin.documents() if d["booked"]]


def test_a_credit_note_is_a_booked_draft_with_negative_quantities_and_our_reference(standin, adapter):
    result = adapter.send(note())
    docs = booked_docs(standin)
    assert len(docs) == 1
    doc = docs[0]
    assert (doc["reference"], doc["number"], doc["type"]) == ("#1001 / #1001-R1", result.number, "credit_note")
    assert doc["total"] == Decimal("-499.95")
    assert all(line["quantity"] < 0 for line in doc["lines"] if line["description"] != "Øreafrunding")
    assert not [d for d in standin.documents() if not d["booked"]]  # the draft is gone once booked


def test_every_write_carries_an_idempotency_key(standin, adapter):
    adapter.send(note())
    writes = [r for r in standin.requests if r["method"] != "GET"]
    assert writes and all(r["headers"].get("Idempotency-Key") for r in writes)


def test_a_repeated_send_makes_exactly_one_document(standin, adapter):
    first = adapter.send(note())
    again = adapter.send(note())
    assert first == again
    assert len(booked_docs(standin)) == 1
    assert adapter.find(note()) == first


def test_a_lost_booking_answer_is_found_by_reference_and_never_booked_twice(standin, adapter):
    standin.fail_after_commit_next(1, status=None, paths=("POST /invoices/booked",))
    with pytest.raises(Transient) as lost:
        adapter.send(note())
    assert lost.value.outcome_unknown
    found = adapter.find(note())
    assert found is not None and found.number == booked_docs(standin)[0]["number"]
    assert adapter.send(note()) == found
    assert len(booked_docs(standin)) == 1


def test_a_lost_draft_answer_without_idempotency_replay_books_the_draft_left_behind(standin, adapter):
    standin.configure(idempotency="ignored")
    standin.fail_after_commit_next(1, status=None, paths=("POST /invoices/drafts",))
    with pytest.raises(Transient) as lost:
        adapter.send(note())
    assert lost.value.outcome_unknown
    assert adapter.find(note()) is None                     # a draft is not a document yet
    adapter.send(note())
    assert len(booked_docs(standin)) == 1
    assert not [d for d in standin.documents() if not d["booked"]]


def test_a_draft_whose_answer_failed_is_booked_not_made_again(standin, adapter):
    standin.fail_after_commit_next(1, status=502, paths=("POST /invoices/drafts",))
    with pytest.raises(Transient):
        adapter.send(note())
    adapter.send(note())
    assert len(standin.documents()) == 1


def test_the_standin_replays_a_write_under_the_same_idempotency_key(standin):
    headers = {"X-AppSecretToken": SECRET, "X-AgreementGrantToken": GRANT, "Content-Type": "application/json",
               "Idempotency-Key": "k-1"}
    body = {"name": "Ny", "currency": "DKK", "customerGroup": {"customerGroupNumber": 1},
            "paymentTerms": {"paymentTermsNumber": 1}, "vatZone": {"vatZoneNumber": 1}}
    first = requests.post(f"{standin.url}/customers", json=body, headers=headers, timeout=5)
    again = requests.post(f"{standin.url}/customers", json=body, headers=headers, timeout=5)
    assert first.json() == again.json() and again.headers.get("X-ResultFromCache") == "true"
    standin.configure(idempotency="ignored")
    requests.post(f"{standin.url}/customers", json=body, headers=headers, timeout=5)
    assert len(standin.customers) == 3


def test_half_the_answers_lost_still_one_document_each(standin, adapter):
    standin.harshest()
    refs = [f"#10{n:02d} / #10{n:02d}-R1" for n in range(6)]
    for ref in refs:
        for _ in range(8):
            try:
                adapter.send(note(reference=ref))
                break
            except Transient as exc:
                assert exc.outcome_unknown
    assert sorted(d["reference"] for d in booked_docs(standin)) == sorted(refs)


def test_the_sale_invoice_is_named_when_it_exists(standin, adapter):
    sale = standin.add_sale_invoice("#1001", customer_number=1, lines=[("100", 1, "399.96")])
    result = adapter.send(note())
    assert result.credited_invoice == str(sale["bookedInvoiceNumber"])
    doc = next(d for d in booked_docs(standin) if d["reference"] == "#1001 / #1001-R1")
    assert f"faktura nr. {sale['bookedInvoiceNumber']}" in doc["notes"]["heading"]
    assert doc["credited_invoice"] is None        # e-conomic itself links nothing


def test_without_a_sale_invoice_nothing_is_named(standin, adapter):
    assert adapter.send(note()).credited_invoice is None


def test_an_unmapped_vat_rate_is_unbookable_before_any_call(standin, adapter):
    bad = note(Line("item", "Bog", None, -1, Decimal("-100"), Decimal(12)))
    with pytest.raises(Unbookable) as refused:
        adapter.send(bad)
    assert refused.value.code == "unsupported_vat_rate"
    assert refused.value.params == {"rate": "12", "item": "Bog"}
    assert standin.requests == []


def test_an_unconfigured_currency_is_unbookable_before_any_call(standin, adapter):
    with pytest.raises(Unbookable) as refused:
        adapter.send(note(currency="SEK"))
    assert refused.value.code == "unsupported_currency"
    assert standin.requests == []


@pytest.mark.parametrize("rounding", ["per_invoice", "per_line"])
def test_25_and_0_percent_lines_in_dkk_book_to_the_ore(standin, adapter, rounding):
    standin.configure(vat_rounding=rounding)
    lines = (Line("item", "Uldsweater", "SW-1", -3, Decimal("-1499.85"), Decimal(25)),
             Line("item", "Avis", None, -1, Decimal("-35.00"), Decimal(0)),
             Line("item", "Strømper", "ST-1", -2, Decimal("-100.02"), Decimal(25)),
             Line("shipping", "Fragt", None, 0, Decimal("-49.00"), Decimal(25)),
             Line("restocking_fee", "Returgebyr", None, 1, Decimal("25.01"), Decimal(25)))
    adapter.send(note(*lines))
    doc = booked_docs(standin)[0]
    assert doc["total"] == sum(line.amount for line in lines)
    rates = {line["vat_rate"] for line in doc["lines"]}
    assert rates == {Decimal(25), Decimal(0)}


def test_a_single_fee_or_shipping_product_is_the_25_percent_product_and_other_rates_use_their_own(standin, adapter):
    # A return fee split over goods at 25 % and 0 % (R5), and a 0 % share of shipping: e-conomic
    # takes VAT from the product's group, so a 0 % share on the 25 % fee product would not come
    # to the note's total (and below the øre margin would be booked with VAT nobody paid).
    lines = (Line("item", "Uldtrøje", "UT-1", -2, Decimal("-998.00"), Decimal(25)),
             Line("item", "Strikkemagasin", "MAG-1", -1, Decimal("-45.00"), Decimal(0)),
             Line("shipping", "PostNord", None, 0, Decimal("-30.00"), Decimal(25)),
             Line("shipping", "PostNord", None, 0, Decimal("-9.00"), Decimal(0)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("38.27"), Decimal(25)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal(0)))

    adapter.send(note(*lines))

    doc = booked_docs(standin)[0]
    assert doc["total"] == sum(line.amount for line in lines)
    ours = [ln for ln in doc["lines"] if ln["description"] != economic.ROUNDING_TEXT]
    assert [ln["vat_rate"] for ln in ours] == [Decimal(25), Decimal(0), Decimal(25), Decimal(0), Decimal(25), Decimal(0)]
    draft = standin.requests_to("/invoices/drafts", "POST")[0]["json"]
    assert [ln["product"]["productNumber"] for ln in draft["lines"]
            if ln["description"] != economic.ROUNDING_TEXT] == ["100", "200", "300", "200", "400", "200"]


def test_a_kind_s_line_at_a_rate_without_a_product_is_unbookable_before_any_call(standin):
    adapter = EconomicAdapter(config(products={"25": "100"}), standin.url, sleep=lambda s: None)
    lines = (Line("item", "Uldtrøje", "UT-1", -1, Decimal("-499.00"), Decimal(25)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal(0)))

    with pytest.raises(Unbookable) as refused:
        adapter.send(note(*lines))

    assert refused.value.params == {"rate": "0", "item": "Returfragt"}
    assert standin.requests == []


def test_rate_limit_429_is_transient_with_retry_after(standin, adapter):
    standin.fail_next(1, status=429, retry_after=7)
    with pytest.raises(Transient) as limited:
        adapter.send(note())
    assert limited.value.retry_after == 7


def test_a_spent_bucket_without_retry_after_waits_the_refill_window(standin, adapter):
    standin.spend_bucket()
    with pytest.raises(Transient) as limited:
        adapter.send(note())
    assert limited.value.retry_after == economic.DEFAULT_RETRY_AFTER
    assert booked_docs(standin) == []


def test_a_5xx_on_a_write_is_transient_with_an_unknown_outcome(standin, adapter):
    standin.fail_next(1, status=503, paths=("POST /invoices/booked",))
    with pytest.raises(Transient) as failed:
        adapter.send(note())
    assert failed.value.outcome_unknown
    adapter.send(note())
    assert len(booked_docs(standin)) == 1


def test_a_5xx_on_a_read_is_repeated_in_place(standin, adapter):
    standin.fail_next(1, status=500, paths=("GET /invoices/booked",))
    adapter.send(note())
    assert len(booked_docs(standin)) == 1


def test_a_timeout_is_transient(standin, adapter):
    standin.timeout_next(1, seconds=4, paths=("POST /invoices/booked",))
    with pytest.raises(Transient) as held:
        adapter.send(note())
    assert held.value.outcome_unknown


def test_refused_tokens_are_an_auth_error(standin):
    wrong = EconomicAdapter(config(agreement_grant_token="revoked"), standin.url, sleep=lambda s: None)
    with pytest.raises(AuthError):
        wrong.send(note())
    assert wrong.test_connection()["ok"] is False


def test_test_connection_lists_the_choices_in_economics_words(standin, adapter):
    answer = adapter.test_connection()
    assert answer["ok"] is True
    assert {"layouts", "paymentTerms", "vatZones", "products", "customerGroups"} <= set(answer["choices"])
    assert {"productNumber": "100", "name": "Varer med moms", "productGroup": 1} in answer["choices"]["products"]


def test_bookable_rates_are_the_mapped_ones(adapter):
    assert adapter.bookable_rates() == frozenset({Decimal(25), Decimal(0)})


def test_a_charge_is_one_invoice_with_the_returned_item_negative(standin, adapter):
    exchange = note(Line("item", "Sweater M", "SW-M", -1, Decimal("-400.00"), Decimal(25)),
                    Line("exchange_item", "Jakke M", "JA-M", 1, Decimal("650.00"), Decimal(25)),
                    reference="#1002 / #1002-R1", order="#1002")
    assert exchange.is_charge
    adapter.send(exchange)
    doc = booked_docs(standin)[0]
    assert (doc["type"], doc["total"]) == ("invoice", Decimal("250.00"))
    quantities = sorted(line["quantity"] for line in doc["lines"])
    assert quantities[0] < 0 < quantities[-1]
    assert doc["notes"]["heading"].startswith("Faktura")


def test_a_buyer_is_found_by_cvr_else_email_else_created(standin, adapter):
    known = standin.add_customer(name="Firma ApS", corporateIdentificationNumber="12345678")
    adapter.send(note(buyer=Buyer("Firma ApS", "indkob@firma.dk", national_id="DK 12345678")))
    adapter.send(note(reference="#1003 / #1003-R1", buyer=Buyer("Ny Kunde", "ny@kunde.dk")))
    adapter.send(note(reference="#1004 / #1004-R1", buyer=Buyer("Ny Kunde", "NY@kunde.dk")))
    customers = {d["reference"]: d["customer"] for d in booked_docs(standin)}
    assert customers["#1001 / #1001-R1"] == str(known["customerNumber"])
    assert customers["#1003 / #1003-R1"] == customers["#1004 / #1004-R1"] != "1"
    assert len(standin.customers) == 3


def test_no_buyer_goes_to_the_default_customer(standin, adapter):
    adapter.send(note())
    assert booked_docs(standin)[0]["customer"] == "1"


def test_a_reference_with_filter_characters_is_found_exactly(standin, adapter):
    tricky = "#1001 / #1001-R1 (del $1, [a]*)"
    adapter.send(note(reference=tricky))
    assert adapter.find(note(reference=tricky)) is not None
    assert adapter.find(note(reference=tricky.upper())) is None   # the filter is case-insensitive; we are not
    adapter.send(note(reference=tricky))
    assert len(booked_docs(standin)) == 1


def test_a_product_booking_another_rate_is_refused_and_its_draft_deleted(standin):
    wrong = EconomicAdapter(config(products={"25": "200", "0": "200"}), standin.url, sleep=lambda s: None)
    with pytest.raises(ValidationError):
        wrong.send(note())
    assert standin.documents() == []


def test_booked_documents_are_irreversible_in_the_standin(standin, adapter):
    number = adapter.send(note()).number
    headers = {"X-AppSecretToken": SECRET, "X-AgreementGrantToken": GRANT, "Content-Type": "application/json"}
    put = requests.put(f"{standin.url}/invoices/booked/{number}", json={"draftInvoice": {"draftInvoiceNumber": 1}},
                       headers=headers, timeout=5)
    delete = requests.delete(f"{standin.url}/invoices/booked/{number}", headers=headers, timeout=5)
    assert put.status_code == 400 and delete.status_code == 405
    assert booked_docs(standin)[0]["total"] == Decimal("-499.95")


def test_the_standin_refuses_a_draft_without_the_required_fields(standin):
    headers = {"X-AppSecretToken": SECRET, "X-AgreementGrantToken": GRANT, "Content-Type": "application/json"}
    answer = requests.post(f"{standin.url}/invoices/drafts", json={"currency": "DKK"}, headers=headers, timeout=5)
    assert answer.status_code == 400
    assert {"customer", "date", "layout", "paymentTerms", "recipient"} <= set(answer.json()["errors"])
    unauth = requests.get(f"{standin.url}/invoices/booked", timeout=5)
    assert unauth.status_code == 401


def test_the_base_url_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("ECONOMIC_BASE_URL", "http://127.0.0.1:9/")
    assert EconomicAdapter(config()).base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("ECONOMIC_BASE_URL")
    assert EconomicAdapter(config()).base_url == "https://restapi.e-conomic.com"
