"""The Dinero adapter against the Dinero stand-in over real HTTP (no mocks, no database):
exactly one document per note, the link to the sale invoice, VAT through the mapped accounts,
Dinero's rate limit, its errors, the charge of an exchange, and the stand-in's booking rules.
docs/DINERO_MODEL.md names the evidence for each behaviour."""
from __future__ import annotations

import base64
import itertools
from datetime import date
from decimal import Decimal

import pytest
import requests

from shopify_app.accounting import AuthError, Booked, Buyer, Line, Note, Transient, Unbookable
from shopify_app.accounting.dinero import DineroAdapter
from shopify_app.sandbox.accounting.dinero import DineroStandin

CLIENT_ID, CLIENT_SECRET = "skilvis-personal", "s3cret"
_orgs = itertools.count(41000)


@pytest.fixture(scope="module")
def standin_server():
    server = DineroStandin().start()
    yield server
    server.stop()


@pytest.fixture
def dinero(standin_server):
    standin_server.reset()
    standin_server.add_client(CLIENT_ID, CLIENT_SECRET)
    return standin_server


@pytest.fixture
def org(dinero):
    """A fresh organisation per test: the adapter's per-organisation limiter starts empty too."""
    org_id = next(_orgs)
    organization = dinero.add_organization(org_id, api_key=f"key-{org_id}", name="Hygge Butik ApS")
    dinero.add_account(org_id, 1100, "Fragt m/moms", vat_rate=25)
    dinero.add_account(org_id, 1200, "Gebyrer m/moms", vat_rate=25)
    organization.default_contact = dinero.add_contact(org_id, Name="Webshop-kunder", CountryKey="DK")["ContactGuid"]
    return organization


def config(org, **over) -> dict:
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "api_key": org.api_key,
            "organization_id": org.id, "accounts": {"25": 1000, "0": 1010}, "shipping_account": 1100,
            "fee_account": 1200, "default_contact_guid": org.default_contact, **over}


@pytest.fixture
def adapter(dinero, org):
    return DineroAdapter(config(org), dinero.url)


def note(reference="skilvis-1001-R1", lines=None, buyer=None, currency="DKK", order="#1001") -> Note:
    return Note(reference=reference, order_name=order, currency=currency, date=date(2026, 11, 23),
                paid_date=date(2026, 11, 23), gateway="shopify_payments", buyer=buyer,
                lines=tuple(lines or (Line("item", "Uldtrøje, blå, M", "UT-1", -1, Decimal("-499.00"), Decimal(25)),)),
                text="Retur af ordre #1001")


def api_calls(dinero) -> list[dict]:
    return [r for r in dinero.requests if r["path"].startswith("/v1/")]


# --- exactly once ------------------------------------------------------------------------


def test_a_repeated_send_makes_one_credit_note(adapter, dinero):
    first = adapter.send(note())
    again = adapter.send(note())

    assert again.id == first.id and again.number == first.number
    docs = dinero.documents()
    assert [(d["type"], d["reference"], d["booked"]) for d in docs] == [("credit_note", "skilvis-1001-R1", True)]
    assert docs[0]["number"] == first.number


def test_a_create_whose_answer_was_lost_is_found_by_reference_and_booked_once(adapter, dinero):
    dinero.fail_after_commit_next(status=None, paths="POST /v1/*/sales/creditnotes")
    with pytest.raises(Transient) as lost:
        adapter.send(note())
    assert lost.value.outcome_unknown
    assert adapter.find(note()) is None        # only a draft so far: not a document yet

    booked = adapter.send(note())

    assert [d["booked"] for d in dinero.documents()] == [True]
    assert adapter.find(note()) == booked


def test_a_booking_whose_answer_was_lost_is_found_by_reference(adapter, dinero):
    dinero.fail_after_commit_next(status=502, paths="POST /v1/*/sales/creditnotes/*/book")
    with pytest.raises(Transient) as lost:
        adapter.send(note())
    assert lost.value.outcome_unknown

    found = adapter.find(note())

    assert isinstance(found, Booked) and found.number is not None
    assert adapter.send(note()).id == found.id
    assert len(dinero.documents()) == 1


def test_half_the_answers_lost_still_make_one_document_per_note(adapter, dinero):
    dinero.harshest()
    for n in range(6):
        for _ in range(20):
            try:
                adapter.send(note(reference=f"skilvis-100{n}-R1", order=f"#100{n}"))
                break
            except Transient as exc:
                assert exc.outcome_unknown or exc.retry_after is None
    references = sorted(d["reference"] for d in dinero.documents())
    assert references == [f"skilvis-100{n}-R1" for n in range(6)]
    assert all(d["booked"] for d in dinero.documents())
    assert dinero.faults["lost_answers"] > 0


# --- the sale invoice ---------------------------------------------------------------------


def test_the_credit_note_is_linked_to_the_sale_invoice_found_by_the_order_name(adapter, dinero, org):
    dinero.add_sale_invoice(org.id, "#1000", total=Decimal("120"))
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"))

    booked = adapter.send(note())

    assert booked.credited_invoice == str(sale["Number"])
    assert dinero.documents()[0]["credited_invoice"] == str(sale["Number"])


def test_a_sale_invoice_naming_the_order_in_its_description_is_found_too(adapter, dinero, org):
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"), where="Description")
    dinero.add_sale_invoice(org.id, "#10011", total=Decimal("80"), where="Description")

    assert adapter.send(note()).credited_invoice == str(sale["Number"])


def test_without_a_sale_invoice_the_credit_note_stands_alone(adapter, dinero):
    booked = adapter.send(note())

    assert booked.credited_invoice is None
    assert dinero.documents()[0]["credited_invoice"] is None


# --- VAT and currency ---------------------------------------------------------------------


def test_an_unmapped_vat_rate_is_unbookable_before_any_call(adapter, dinero):
    lines = [Line("item", "Bog", None, -1, Decimal("-100"), Decimal(25)),
             Line("item", "Avis", None, -1, Decimal("-20"), Decimal(12))]
    with pytest.raises(Unbookable) as refused:
        adapter.send(note(lines=lines))

    assert refused.value.code == "unsupported_vat_rate"
    assert refused.value.params == {"rate": "12", "item": "Avis"}
    assert dinero.requests == []


def test_a_currency_the_shop_does_not_book_in_dinero_is_unbookable_before_any_call(adapter, dinero):
    with pytest.raises(Unbookable) as refused:
        adapter.send(note(currency="EUR"))

    assert refused.value.code == "unsupported_currency"
    assert dinero.requests == []


def test_25_and_0_percent_lines_in_dkk_go_to_their_accounts(adapter, dinero):
    lines = [Line("item", "Uldtrøje", "UT-1", -2, Decimal("-998.00"), Decimal(25)),
             Line("item", "Gavekort", None, -1, Decimal("-200.00"), Decimal(0)),
             Line("shipping", "Standardfragt", None, 0, Decimal("-39.00"), Decimal(25))]

    adapter.send(note(lines=lines))

    doc = dinero.documents()[0]
    assert set(doc) == {"reference", "number", "type", "total", "currency", "customer", "credited_invoice",
                        "lines", "booked"}
    assert doc["currency"] == "DKK" and doc["total"] == Decimal("-1237.00")
    assert [(ln["quantity"], ln["unit_price_incl_vat"], ln["vat_rate"]) for ln in doc["lines"]] == [
        (-2, Decimal("499.00"), Decimal(25)), (-1, Decimal("200.00"), Decimal(0)), (-1, Decimal("39.00"), Decimal(25))]
    sent = dinero.requests_to("POST /v1/*/sales/creditnotes")[0]["json"]
    assert sent["ShowLinesInclVat"] is True
    assert [ln["AccountNumber"] for ln in sent["ProductLines"]] == [1000, 1010, 1100]
    assert all(ln["BaseAmountValue"] > 0 and ln["Quantity"] > 0 for ln in sent["ProductLines"])


def test_a_single_fee_or_shipping_account_is_the_25_percent_account_and_other_rates_use_their_own(adapter, dinero):
    # A return fee split over goods at 25 % and 0 % (R5), and a 0 % share of shipping: the one
    # fee/shipping account carries 25 % VAT, so the 0 % shares belong on the 0 % sales account.
    lines = [Line("item", "Uldtrøje", "UT-1", -2, Decimal("-998.00"), Decimal(25)),
             Line("item", "Strikkemagasin", "MAG-1", -1, Decimal("-45.00"), Decimal(0)),
             Line("shipping", "PostNord", None, 0, Decimal("-30.00"), Decimal(25)),
             Line("shipping", "PostNord", None, 0, Decimal("-9.00"), Decimal(0)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("38.27"), Decimal(25)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal(0))]

    adapter.send(note(lines=lines))

    credit, charge = dinero.documents()
    assert [ln["vat_rate"] for ln in credit["lines"]] == [Decimal(25), Decimal(0), Decimal(25), Decimal(0)]
    assert [ln["vat_rate"] for ln in charge["lines"]] == [Decimal(25), Decimal(0)]
    sent = {r["path"].rsplit("/", 1)[-1]: [ln["AccountNumber"] for ln in r["json"]["ProductLines"]]
            for r in dinero.requests if r["method"] == "POST" and r["path"].endswith(("creditnotes", "invoices"))}
    assert sent == {"creditnotes": [1000, 1010, 1100, 1010], "invoices": [1200, 1010]}


def test_a_kind_s_line_at_a_rate_without_a_sales_account_is_unbookable_before_any_call(dinero, org):
    adapter = DineroAdapter(config(org, accounts={"25": 1000}), dinero.url)
    lines = [Line("item", "Uldtrøje", "UT-1", -1, Decimal("-499.00"), Decimal(25)),
             Line("return_shipping_fee", "Returfragt", None, 1, Decimal("1.73"), Decimal(0))]

    with pytest.raises(Unbookable) as refused:
        adapter.send(note(lines=lines))

    assert refused.value.params == {"rate": "0", "item": "Returfragt"}
    assert dinero.requests == []


def test_an_amount_that_does_not_divide_by_the_quantity_is_one_line_of_the_whole(adapter, dinero):
    adapter.send(note(lines=[Line("item", "Sokker", None, -3, Decimal("-100.00"), Decimal(25))]))

    doc = dinero.documents()[0]
    assert doc["total"] == Decimal("-100.00")
    assert doc["lines"][0]["description"].startswith("3 × ")


def test_bookable_rates_are_the_mapped_ones(adapter):
    assert adapter.bookable_rates() == frozenset({Decimal(25), Decimal(0)})


# --- customers ----------------------------------------------------------------------------


def test_a_company_buyer_is_found_by_cvr_or_created_once(adapter, dinero, org):
    buyer = Buyer(name="Fjord Design ApS", email="indkob@fjord.dk", national_id="12345678")

    adapter.send(note(reference="r1", buyer=buyer))
    adapter.send(note(reference="r2", buyer=buyer))

    made = [c for c in dinero.contacts(org.id) if c["VatNumber"] == "12345678"]
    assert len(made) == 1 and made[0]["Name"] == "Fjord Design ApS"
    assert {d["customer"] for d in dinero.documents()} == {"Fjord Design ApS"}


def test_a_withheld_customer_goes_to_the_default_contact(adapter, dinero):
    adapter.send(note(buyer=None))

    assert dinero.documents()[0]["customer"] == "Webshop-kunder"


def test_a_withheld_buyer_s_credit_note_goes_to_the_contact_of_the_sale_invoice_it_credits(adapter, dinero, org):
    hansen = dinero.add_contact(org.id, Name="Hansen ApS", CountryKey="DK", VatNumber="12345678")
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"), contact_guid=hansen["ContactGuid"])

    booked = adapter.send(note(buyer=None))

    doc = dinero.documents()[0]
    assert (doc["customer"], doc["credited_invoice"]) == ("Hansen ApS", str(sale["Number"]))
    assert booked.credited_invoice == str(sale["Number"])
    sent = dinero.requests_to("POST /v1/*/sales/creditnotes")[0]["json"]
    assert (sent["ContactGuid"], sent["CreditNoteFor"]) == (hansen["ContactGuid"], sale["Guid"])
    assert dinero.requests_to("/v1/*/contacts*") == []     # no customer data looked up or written


def test_a_withheld_buyer_s_exchange_invoice_goes_to_the_sale_invoice_s_contact_too(adapter, dinero, org):
    hansen = dinero.add_contact(org.id, Name="Hansen ApS", CountryKey="DK")
    dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"), contact_guid=hansen["ContactGuid"])
    lines = [Line("item", "Uldtrøje, M", "UT-M", -1, Decimal("-499.00"), Decimal(25)),
             Line("exchange_item", "Uldtrøje deluxe, M", "UTD-M", 1, Decimal("649.00"), Decimal(25))]

    adapter.send(note(lines=lines, buyer=None))

    assert [(d["type"], d["customer"]) for d in dinero.documents()] == [
        ("credit_note", "Hansen ApS"), ("invoice", "Hansen ApS")]


def test_a_linked_credit_note_goes_to_the_sale_invoice_s_contact_even_when_the_buyer_is_known_apart(adapter, dinero,
                                                                                                   org):
    dinero.add_contact(org.id, Name="Mette Jensen", CountryKey="DK", Email="mette@example.dk")
    shop_contact = dinero.add_contact(org.id, Name="Webshop: Mette", CountryKey="DK")
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"), contact_guid=shop_contact["ContactGuid"])

    adapter.send(note(buyer=Buyer(name="Mette Jensen", email="mette@example.dk")))

    doc = dinero.documents()[0]
    assert (doc["customer"], doc["credited_invoice"]) == ("Webshop: Mette", str(sale["Number"]))


# --- limits and errors --------------------------------------------------------------------


def test_a_429_is_transient_with_dineros_retry_after(adapter, dinero):
    dinero.fail_next(status=429, retry_after=7, paths="GET /v1/*/sales/creditnotes")
    with pytest.raises(Transient) as limited:
        adapter.send(note())

    assert limited.value.retry_after == 7


def test_dineros_own_limit_of_a_minute_holds_the_whole_organisation_back(adapter, dinero, org):
    dinero.rate_limit = (3, 60.0)
    with pytest.raises(Transient) as limited:
        adapter.send(note())
    assert limited.value.retry_after == 60     # Dinero sends no Retry-After: "wait a minute"
    calls = len(api_calls(dinero))

    other = DineroAdapter(config(org), dinero.url)
    with pytest.raises(Transient):
        other.send(note())
    assert len(api_calls(dinero)) == calls     # held back in the process, not sent


def test_the_client_keeps_to_the_limit_per_organisation(dinero, org):
    first = DineroAdapter(config(org), dinero.url, rate_limit=(4, 60.0), max_inline_wait=0)
    second = DineroAdapter(config(org), dinero.url, rate_limit=(4, 60.0), max_inline_wait=0)
    first.find(note(reference="a"))            # one list call
    first.find(note(reference="b"))
    second.find(note(reference="c"))
    second.find(note(reference="d"))

    with pytest.raises(Transient) as waiting:
        second.find(note(reference="e"))

    assert 0 < waiting.value.retry_after <= 60
    assert len(api_calls(dinero)) == 4


def test_a_5xx_is_transient(adapter, dinero):
    dinero.fail_next(status=503, paths="GET /v1/*/sales/creditnotes")
    with pytest.raises(Transient) as failed:
        adapter.send(note())
    assert not failed.value.outcome_unknown

    dinero.fail_next(status=500, paths="POST /v1/*/sales/creditnotes")
    with pytest.raises(Transient) as unknown:
        adapter.send(note())
    assert unknown.value.outcome_unknown       # a create's 5xx may follow a commit
    adapter.send(note())
    assert len(dinero.documents()) == 1


def test_a_timeout_is_transient(dinero, org):
    adapter = DineroAdapter(config(org), dinero.url, timeout=(2, 0.5))
    dinero.timeout_next(seconds=3, paths="POST /v1/*/sales/creditnotes")
    with pytest.raises(Transient) as held:
        adapter.send(note())
    assert held.value.outcome_unknown


def test_refused_credentials_are_an_auth_error(dinero, org):
    adapter = DineroAdapter(config(org, client_secret="wrong"), dinero.url)
    with pytest.raises(AuthError) as refused:
        adapter.send(note())
    assert not refused.value.setup_required
    assert adapter.test_connection()["ok"] is False


def test_an_organisation_without_dinero_pro_needs_setup(adapter, dinero, org):
    dinero.set_pro(org.id, False)
    with pytest.raises(AuthError) as refused:
        adapter.send(note())
    assert refused.value.setup_required


def test_an_expired_token_is_renewed_once(adapter, dinero):
    adapter.find(note())
    dinero.expire_tokens()

    adapter.send(note())

    assert len(dinero.requests_to("POST /dineroapi/oauth/token")) == 2


def test_an_outdated_timestamp_is_read_again_and_booked(adapter, dinero):
    dinero.fail_next(status=400, body={"code": 58, "message": "Timestamp outdated"},
                     paths="POST /v1/*/sales/creditnotes/*/book")

    booked = adapter.send(note())

    assert booked.number is not None and dinero.documents()[0]["booked"]


def test_a_timestamp_outdated_twice_is_transient(adapter, dinero):
    dinero.fail_next(n=2, status=400, body={"code": 58, "message": "Timestamp outdated"},
                     paths="POST /v1/*/sales/creditnotes/*/book")
    with pytest.raises(Transient):
        adapter.send(note())
    adapter.send(note())
    assert len(dinero.documents()) == 1


# --- charges ------------------------------------------------------------------------------


def test_an_exchange_costing_more_is_a_credit_note_and_an_invoice(adapter, dinero, org):
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"))
    lines = [Line("item", "Uldtrøje, M", "UT-M", -1, Decimal("-499.00"), Decimal(25)),
             Line("exchange_item", "Uldtrøje deluxe, M", "UTD-M", 1, Decimal("649.00"), Decimal(25))]
    exchange = note(reference="skilvis-1001-X1", lines=lines)
    assert exchange.is_charge

    booked = adapter.send(exchange)
    again = adapter.send(exchange)

    docs = dinero.documents()
    assert [(d["type"], d["reference"], d["total"]) for d in docs] == [
        ("credit_note", "skilvis-1001-X1", Decimal("-499.00")),
        ("invoice", "skilvis-1001-X1/charge", Decimal("649.00"))]
    assert docs[0]["credited_invoice"] == str(sale["Number"]) and docs[1]["credited_invoice"] is None
    assert len(booked.ids) == 2 and again == booked and adapter.find(exchange) == booked


def test_a_charge_with_nothing_coming_back_is_one_invoice(adapter, dinero):
    charge = note(reference="skilvis-1001-C1",
                  lines=[Line("adjustment", "Prisforskel", None, 1, Decimal("50.00"), Decimal(25))])

    booked = adapter.send(charge)

    docs = dinero.documents()
    assert [(d["type"], d["total"], d["booked"]) for d in docs] == [("invoice", Decimal("50.00"), True)]
    assert booked.number == docs[0]["number"]


# --- the stand-in's booking rules ---------------------------------------------------------


class Api:
    def __init__(self, dinero, org):
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        answer = requests.post(f"{dinero.url}/dineroapi/oauth/token", headers={"Authorization": f"Basic {basic}"},
                               data={"grant_type": "password", "scope": "read write", "username": org.api_key,
                                     "password": org.api_key}, timeout=5)
        answer.raise_for_status()
        self.base = f"{dinero.url}/v1/{org.id}"
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def __call__(self, method, path, body=None) -> requests.Response:
        return requests.request(method, self.base + path, json=body, headers=self.headers, timeout=5)


def test_a_booked_credit_note_cannot_be_changed_deleted_or_booked_again(adapter, dinero, org):
    booked = adapter.send(note())
    api = Api(dinero, org)
    current = api("GET", f"/sales/creditnotes/{booked.id}").json()

    changed = api("PUT", f"/sales/creditnotes/{booked.id}", {**current, "Timestamp": current["TimeStamp"]})
    deleted = api("DELETE", f"/sales/creditnotes/{booked.id}")
    rebooked = api("POST", f"/sales/creditnotes/{booked.id}/book", {"Timestamp": current["TimeStamp"]})

    assert [changed.status_code, deleted.status_code, rebooked.status_code] == [400, 400, 400]
    assert deleted.json()["message"] == "The creditnote cannot be deleted if booked."
    assert dinero.documents()[0]["number"] == booked.number and dinero.documents()[0]["booked"]


def test_the_number_is_given_at_booking_and_needs_the_newest_timestamp(dinero, org):
    api = Api(dinero, org)
    made = api("POST", "/sales/creditnotes", {
        "ContactGuid": org.default_contact, "Date": "2026-11-23", "ShowLinesInclVat": True,
        "ProductLines": [{"Description": "Uldtrøje", "Quantity": 1, "AccountNumber": 1000, "BaseAmountValue": 499}]})
    assert made.status_code == 201
    draft = api("GET", f"/sales/creditnotes/{made.json()['Guid']}").json()
    assert draft["Number"] is None and draft["Status"] == "Draft"

    stale = api("POST", f"/sales/creditnotes/{draft['Guid']}/book", {"Timestamp": "0000000000000000"})
    booked = api("POST", f"/sales/creditnotes/{draft['Guid']}/book", {"Timestamp": draft["TimeStamp"]})

    assert stale.status_code == 400 and stale.json()["code"] == 58
    assert booked.status_code == 200 and booked.json()["Number"] is not None


def test_a_line_on_an_unknown_account_or_a_malformed_date_is_refused(dinero, org):
    api = Api(dinero, org)
    line = {"Description": "Uldtrøje", "Quantity": 1, "AccountNumber": 9999, "BaseAmountValue": 499}

    unknown_account = api("POST", "/sales/creditnotes", {"Date": "2026-11-23", "ProductLines": [line]})
    bad_date = api("POST", "/sales/creditnotes",
                   {"Date": "23.11.2026", "ProductLines": [{**line, "AccountNumber": 1000}]})

    assert unknown_account.status_code == 400 and bad_date.status_code == 400
    assert dinero.documents() == []


def test_the_standin_refuses_a_credit_note_for_an_invoice_of_another_contact(dinero, org):
    sale = dinero.add_sale_invoice(org.id, "#1001", total=Decimal("499"))
    api = Api(dinero, org)
    body = {"Date": "2026-11-23", "ShowLinesInclVat": True, "CreditNoteFor": sale["Guid"], "ProductLines": [
        {"Description": "Uldtrøje", "Quantity": 1, "AccountNumber": 1000, "BaseAmountValue": 499}]}

    other = api("POST", "/sales/creditnotes", {**body, "ContactGuid": org.default_contact})
    same = api("POST", "/sales/creditnotes", {**body, "ContactGuid": sale["ContactGuid"]})

    assert other.status_code == 400 and "CreditNoteFor" in other.json()["validationErrors"]
    assert same.status_code == 201


def test_a_voucher_without_a_contact_cannot_be_booked(dinero, org):
    api = Api(dinero, org)
    made = api("POST", "/sales/creditnotes", {"ProductLines": [
        {"Description": "Uldtrøje", "Quantity": 1, "AccountNumber": 1000, "BaseAmountValue": 499}]}).json()

    refused = api("POST", f"/sales/creditnotes/{made['Guid']}/book", {"Timestamp": made["TimeStamp"]})

    assert refused.status_code == 400
    assert [d["booked"] for d in dinero.documents()] == [False]


def test_a_token_reaches_only_its_own_organisation(dinero, org):
    other = dinero.add_organization(next(_orgs), api_key="other-key")
    api = Api(dinero, org)

    answer = requests.get(f"{dinero.url}/v1/{other.id}/invoices", headers=api.headers, timeout=5)

    assert answer.status_code == 403


# --- settings -----------------------------------------------------------------------------


def test_the_connection_test_lists_organisations_and_accounts_in_dineros_words(adapter, org):
    answer = adapter.test_connection()

    assert answer["ok"] is True
    assert answer["choices"]["organizations"] == [{"id": org.id, "name": "Hygge Butik ApS", "pro": True}]
    assert {"number": 1000, "name": "Salg af varer/ydelser m/moms", "vat_code": "U25"} in answer["choices"]["accounts"]
