"""The Payday client against the Payday stand-in over real HTTP: login and token caching,
customers, invoices, and how every failure is classified."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

from decimal import Decimal

import pytest
import requests

from shopify_app import db
from shopify_app.accounting.payday.api import (
    BASE_URLS, MemoryTokenStore, PaydayAuthError, PaydayClient, PaydayNotFound, PaydayTransient,
    PaydayValidationError, PostgresTokenStore, credentials_hash,
)
from shopify_app.sandbox.accounting.payday import MSG_VAT
from tests.plugins.payday_standin import PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET

PRICE_MESSAGE = "Either unit price excluding VAT or unit price including VAT must be specified"


class Sleeps(list):
    """Stands in for time.sleep: records the pauses instead of taking them."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


def make_client(payday, sleeps, **kwargs) -> PaydayClient:
    kwargs.setdefault("timeout", (2, 2))
    return PaydayClient(payday.url, kwargs.pop("client_id", PAYDAY_CLIENT_ID),
                        kwargs.pop("client_secret", PAYDAY_CLIENT_SECRET), sleep=sleeps, **kwargs)


@pytest.fixture
def api(payday, sleeps):
    return make_client(payday, sleeps)


def line(**over) -> dict:
    return {"position": 1, "description": "Peysa, blá, M", "quantity": 1, "unitPriceIncludingVat": -4990,
            "vatPercentage": 24, "discountPercentage": 0, **over}


def invoice_body(customer_id: str, reference: str = "#1001 / #1001-R1", lines=None, **extra) -> dict:
    return {"customer": {"id": customer_id}, "reference": reference,
            "description": "Kreditreikningur vegna skila #1001-R1", "invoiceDate": "2026-11-23",
            "dueDate": "2026-11-23", "currencyCode": "ISK", "status": "SENT",
            "lines": lines if lines is not None else [line()], **extra}


@pytest.fixture
def customer_id(payday):
    return payday.add_customer(name="Anna Jónsdóttir", email="anna@example.is")["id"]


def token_calls(payday) -> list[dict]:
    return payday.requests_to("/auth/token", "POST")


# --- login and the token ---------------------------------------------------------------------


def test_one_login_serves_every_call_and_carries_only_the_credentials(api, payday, customer_id):
    api.payment_types()
    api.vat_rates()
    api.get_customer(customer_id)
    api.find_own_invoice(customer_id, "#1001 / #1001-R1", Decimal(-1))
    [login] = token_calls(payday)
    assert login["json"] == {"clientId": PAYDAY_CLIENT_ID, "clientSecret": PAYDAY_CLIENT_SECRET}
    assert "Authorization" not in login["headers"]
    data_calls = [r for r in payday.requests if r["path"] != "/auth/token"]
    assert len(data_calls) == 4
    assert {r["headers"]["Authorization"] for r in data_calls} == {f"Bearer {api._token[0]}"}


def test_every_request_carries_api_version_json_and_our_user_agent(api, payday, customer_id):
    api.payment_types()
    payday.expire_tokens()
    api.find_or_create_customer(email="nyr@example.is", name="Nýr Viðskiptavinur")
    api.create_invoice(invoice_body(customer_id))
    assert len(token_calls(payday)) == 2
    assert len(payday.requests) >= 6
    for recorded in payday.requests:
        assert recorded["headers"]["Api-Version"] == "alpha", recorded["path"]
        assert recorded["headers"]["Content-Type"] == "application/json"
        assert "skilvis" in recorded["headers"]["User-Agent"].lower()


def test_the_standin_refuses_requests_without_the_api_version_header(payday):
    credentials = {"clientId": PAYDAY_CLIENT_ID, "clientSecret": PAYDAY_CLIENT_SECRET}
    refused = requests.post(f"{payday.url}/auth/token", json=credentials, timeout=5)
    assert refused.status_code == 400
    accepted = requests.post(f"{payday.url}/auth/token", json=credentials, headers={"Api-Version": "alpha"}, timeout=5)
    assert accepted.status_code == 200 and accepted.json()["expiresIn"] == 86400
    token = accepted.json()["accessToken"]
    without = requests.get(f"{payday.url}/sales/paymenttypes", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert without.status_code == 400


def test_expired_token_is_renewed_once_and_the_call_repeated(api, payday):
    api.payment_types()
    first = api._token[0]
    payday.expire_tokens()
    assert len(api.payment_types()) == 2
    assert len(token_calls(payday)) == 2
    assert api._token[0] != first


def test_a_401_after_the_renewal_is_an_auth_error(api, payday):
    api.payment_types()
    payday.fail_next(2, status=401, body={"message": "Unauthorized"}, paths=["GET /sales/paymenttypes"])
    with pytest.raises(PaydayAuthError) as refused:
        api.payment_types()
    assert refused.value.status == 401
    assert len(token_calls(payday)) == 2  # the first login and exactly one renewal


def test_a_worker_uses_the_token_another_worker_renewed_instead_of_logging_in_again(payday, sleeps):
    store = MemoryTokenStore()
    a, b = make_client(payday, sleeps, token_store=store), make_client(payday, sleeps, token_store=store)
    a.payment_types()
    b.payment_types()
    assert len(token_calls(payday)) == 1
    payday.expire_tokens()
    a.payment_types()
    b.payment_types()
    assert len(token_calls(payday)) == 2


def test_token_is_shared_through_postgres_encrypted_and_keyed_by_the_credentials(servers, payday, sleeps):
    with db.transaction() as conn:
        shop_id = conn.execute("INSERT INTO shops (domain) VALUES ('a-shop.myshopify.com') RETURNING id").fetchone()["id"]
    make_client(payday, sleeps, token_store=PostgresTokenStore(shop_id)).payment_types()
    second = make_client(payday, sleeps, token_store=PostgresTokenStore(shop_id))
    second.payment_types()
    second.vat_rates()
    assert len(token_calls(payday)) == 1
    with db.transaction() as conn:
        row = conn.execute("SELECT * FROM payday_tokens WHERE shop_id = %s", (shop_id,)).fetchone()
    assert row["credentials_hash"] == credentials_hash(payday.url, PAYDAY_CLIENT_ID)
    assert second._token[0].encode() not in bytes(row["access_token_enc"])
    lifetime = row["expires_at"] - datetime.now(timezone.utc)
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)

    # Other credentials on the same shop never reuse that token.
    payday.add_client("other-client", "other-secret", company=PAYDAY_CLIENT_ID)
    make_client(payday, sleeps, client_id="other-client", client_secret="other-secret",
                token_store=PostgresTokenStore(shop_id)).payment_types()
    assert len(token_calls(payday)) == 2
    with db.transaction() as conn:
        row = conn.execute("SELECT credentials_hash FROM payday_tokens WHERE shop_id = %s", (shop_id,)).fetchone()
    assert row["credentials_hash"] == credentials_hash(payday.url, "other-client")


def test_a_renewal_through_postgres_replaces_the_stored_token(servers, payday, sleeps):
    with db.transaction() as conn:
        shop_id = conn.execute("INSERT INTO shops (domain) VALUES ('a-shop.myshopify.com') RETURNING id").fetchone()["id"]
    store = PostgresTokenStore(shop_id)
    client = make_client(payday, sleeps, token_store=store)
    client.payment_types()
    old = store.get(client.token_key)[0]
    payday.expire_tokens()
    client.payment_types()
    assert store.get(client.token_key)[0] not in (None, old)
    assert make_client(payday, sleeps, token_store=PostgresTokenStore(shop_id)).payment_types()
    assert len(token_calls(payday)) == 2


def test_wrong_credentials_are_an_auth_error_in_paydays_words(payday, sleeps):
    with pytest.raises(PaydayAuthError) as refused:
        make_client(payday, sleeps, client_secret="wrong").payment_types()
    assert str(refused.value) == "Client authentication failed"
    assert refused.value.code == "invalid_client" and refused.value.status == 401


def test_test_connection_logs_in_afresh_and_lists_the_payment_types(api, payday, sleeps):
    api.payment_types()
    result = api.test_connection()
    assert result["ok"] is True
    assert [t["title"] for t in result["payment_types"]] == ["Greiðslukort", "Millifærsla"]
    assert len(token_calls(payday)) == 2
    with pytest.raises(PaydayAuthError):
        make_client(payday, sleeps, client_secret="wrong").test_connection()


def test_base_urls_are_paydays():
    assert BASE_URLS == {"production": "https://api.payday.is", "test": "https://api.test.payday.is"}
    assert PaydayClient.for_environment("test", "id", "secret").base_url == "https://api.test.payday.is"


# --- customers -------------------------------------------------------------------------------


def test_customer_found_by_kennitala(api, payday):
    known = payday.add_customer(ssn="1201743399", name="Jón Jónsson", email="jon@example.is")
    found = api.find_or_create_customer(kennitala="120174-3399", email="annad@example.is", name="Jón J.")
    assert found == known["id"]
    assert payday.requests_to("/customers/number/1201743399", "GET")
    assert not payday.requests_to("/customers", "POST")


def test_unknown_kennitala_creates_the_customer_with_it(api, payday):
    payday.register_person("1201603389", "Guðrún Jónsdóttir", address="Laugavegur 1", zipCode="101", city="Reykjavík")
    made = api.find_or_create_customer(kennitala="120160-3389", email="gudrun@example.is", name="Gunna",
                                       contact="Gunna")
    [sent] = [r["json"] for r in payday.requests_to("/customers", "POST")]
    assert sent == {"ssn": "1201603389", "name": "Gunna", "email": "gudrun@example.is", "contact": "Gunna"}
    customer = api.get_customer(made)
    assert customer["ssn"] == "1201603389" and customer["name"] == "Guðrún Jónsdóttir"  # from Þjóðskrá


def test_customer_found_by_exact_email_whatever_its_case(api, payday, customer_id):
    assert api.find_or_create_customer(email=" Anna@Example.IS ", name="Anna") == customer_id
    assert payday.requests_to("/customers/search/", "GET")[0]["query"] == {"query": "Anna@Example.IS"}
    assert not payday.requests_to("/customers", "POST")


def test_a_near_miss_email_from_search_is_not_taken(api, payday):
    near = payday.add_customer(name="Janna", email="janna@example.is")
    assert [c["id"] for c in api.search_customers("anna@example.is")] == [near["id"]]  # search does return it
    made = api.find_or_create_customer(email="anna@example.is", name="Anna B.")
    assert made != near["id"]
    assert api.get_customer(made)["email"] == "anna@example.is"


def test_invalid_kennitala_falls_back_to_the_email(api, payday, customer_id):
    assert api.find_or_create_customer(kennitala="12345", email="anna@example.is", name="Anna") == customer_id
    assert not [r for r in payday.requests if r["path"].startswith("/customers/number/")]


def test_kennitala_failing_the_check_digit_is_asked_for_but_never_used_to_create(api, payday, customer_id):
    assert api.find_or_create_customer(kennitala="120174-3389", email="anna@example.is", name="Anna") == customer_id
    assert payday.requests_to("/customers/number/1201743389", "GET")
    assert not any(c["ssn"] == "1201743389" for c in payday.customers)


def test_kennitala_without_check_digit_that_payday_knows_is_used(api, payday):
    # Issued since 2026-02-18 without a check digit (Registers Iceland's test number).
    known = payday.add_customer(ssn="2811913049", name="Baldur Jónsson")
    assert api.find_or_create_customer(kennitala="281191-3049", name="Baldur") == known["id"]


def test_customer_without_kennitala_or_email_match_is_created_from_the_given_data(api, payday):
    made = api.find_or_create_customer(email="sigga@example.is", name="Sigríður Ólafsdóttir", address="Aðalstræti 2",
                                       zip_code="600", city="Akureyri", country="Ísland", phone="+3545551234",
                                       contact="Sigga")
    [sent] = [r["json"] for r in payday.requests_to("/customers", "POST")]
    assert sent == {"name": "Sigríður Ólafsdóttir", "email": "sigga@example.is", "address": "Aðalstræti 2",
                    "zipCode": "600", "city": "Akureyri", "country": "Ísland", "phone": "+3545551234",
                    "contact": "Sigga"}
    assert api.get_customer(made)["zipCode"] == "600"


def test_a_create_answered_without_an_id_is_looked_up(api, payday):
    payday.empty_answer_next(1)
    made = api.find_or_create_customer(email="nyr@example.is", name="Nýr")
    [stored] = payday.customers
    assert made == stored["id"]


def test_two_companies_never_see_each_others_data(api, payday, sleeps):
    payday.add_client("other-client", "other-secret")
    other = make_client(payday, sleeps, client_id="other-client", client_secret="other-secret")
    mine = api.find_or_create_customer(kennitala="1201743399", name="Jón")
    assert other.get_customer_by_ssn("1201743399") is None
    with pytest.raises(PaydayNotFound):
        other.get_customer(mine)
    theirs = other.find_or_create_customer(kennitala="1201743399", name="Jón")
    assert theirs != mine
    payday.add_payment_type("Reiðufé", client_id="other-client")
    assert [t["title"] for t in other.payment_types()] == ["Reiðufé"]
    api.create_invoice(invoice_body(mine))
    other.create_invoice(invoice_body(theirs))
    assert [inv["number"] for inv in api.customer_invoices(mine)] == [1]
    assert [inv["number"] for inv in other.customer_invoices(theirs)] == [1]


# --- invoices --------------------------------------------------------------------------------


def test_credit_invoice_with_negative_unit_prices_is_accepted_and_totalled(api, payday, customer_id):
    lines = [line(),
             line(position=2, description="Sending til baka", unitPriceIncludingVat=-1000),
             line(position=3, description="Skilagjald", quantity=1, unitPriceIncludingVat=500),
             line(position=4, description="Bók", quantity=2, unitPriceIncludingVat=-3000, vatPercentage=11)]
    created = api.create_invoice(invoice_body(customer_id, lines=lines))
    assert created["id"] and created["status"] == "SENT"
    read = api.get_invoice(created["id"], include_lines=True)
    assert [ln["amountIncludingVat"] for ln in read["lines"]] == [-4990.0, -1000.0, 500.0, -6000.0]
    assert read["lines"][0]["amountExcludingVat"] == -4024.19 and read["lines"][0]["amountVat"] == -965.81
    assert read["lines"][3]["amountExcludingVat"] == -5405.41 and read["lines"][3]["amountVat"] == -594.59
    assert read["amountIncludingVat"] == -11490.0
    assert read["amountExcludingVat"] + read["amountVat"] == pytest.approx(-11490.0)
    assert "lines" not in api.get_invoice(created["id"])


def test_number_is_null_in_the_create_answer_and_assigned_later(api, payday, customer_id):
    first = api.create_invoice(invoice_body(customer_id))
    assert first["number"] is None
    assert api.get_invoice(first["id"])["number"] == 1
    second = api.create_invoice(invoice_body(customer_id, reference="#1002 / #1002-R1"))
    assert second["number"] is None
    assert api.get_invoice(second["id"])["number"] == 2

    payday.number_delay = 3600
    slow = api.create_invoice(invoice_body(customer_id, reference="#1003 / #1003-R1"))
    assert api.get_invoice(slow["id"])["number"] is None
    payday.issue_now()
    assert api.get_invoice(slow["id"])["number"] == 3


def test_invoice_pages_reads_the_dated_list_page_one_then_from_the_last_page_back(api, payday, customer_id):
    from datetime import date
    for n, day in enumerate(["2026-11-20", "2026-11-21", "2026-11-21", "2026-11-22", "2026-11-21"]):
        api.create_invoice(invoice_body(customer_id, reference=f"#10{n:02} / R", invoiceDate=day))
    before = len(payday.requests)
    pages = list(api.invoice_pages(date(2026, 11, 21), date(2026, 11, 21), perpage=2))
    assert [[inv["reference"] for inv in invoices] for invoices, _, _ in pages] == [
        ["#1001 / R", "#1002 / R"], ["#1004 / R"]]
    assert [(count, total) for _, count, total in pages] == [(2, 3), (2, 3)]
    asked = [r["query"] for r in payday.requests[before:] if r["path"] == "/invoices"]
    assert asked == [{"dateFrom": "2026-11-21", "dateTo": "2026-11-21", "perpage": "2", "page": str(page)}
                     for page in (1, 2)]
    one_a_page = api.invoice_pages(date(2026, 11, 21), date(2026, 11, 21), perpage=1)
    assert [invoices[0]["reference"] for invoices, _, _ in one_a_page] == ["#1001 / R", "#1004 / R", "#1002 / R"]
    # Read only as far as asked: the caller stops when it has what it needs.
    before = len(payday.requests)
    next(api.invoice_pages(date(2026, 11, 20), date(2026, 11, 22), perpage=1))
    assert len([r for r in payday.requests[before:] if r["path"] == "/invoices"]) == 1


def test_vat_outside_0_11_24_is_refused_in_paydays_words(api, payday, customer_id):
    with pytest.raises(PaydayValidationError) as refused:
        api.create_invoice(invoice_body(customer_id, lines=[line(vatPercentage=25.5)]))
    assert str(refused.value) == MSG_VAT.format(pos=1, rate=25.5)
    assert refused.value.status == 400
    assert payday.invoices == []


@pytest.mark.parametrize("prices", [
    {"unitPriceIncludingVat": -4990, "unitPriceExcludingVat": -4024.19},
    {"unitPriceIncludingVat": None},
])
def test_a_line_needs_exactly_one_unit_price(api, payday, customer_id, prices):
    with pytest.raises(PaydayValidationError) as refused:
        api.create_invoice(invoice_body(customer_id, lines=[line(**prices)]))
    assert PRICE_MESSAGE in str(refused.value)
    assert str(refused.value).startswith("Invoice line with ID '' in position '1' is not valid.")


def test_paid_invoice_needs_a_known_payment_type(api, payday, customer_id):
    card = api.payment_types()[0]["id"]
    paid = api.create_invoice(invoice_body(customer_id, status="PAID", paidDate="2026-11-23", paymentType=card))
    assert paid["status"] == "PAID" and paid["paymentType"] == card
    with pytest.raises(PaydayValidationError):
        api.create_invoice(invoice_body(customer_id, status="PAID", paidDate="2026-11-23", paymentType="nope"))
    with pytest.raises(PaydayValidationError):
        api.create_invoice(invoice_body(customer_id, status="PAID", paymentType=card))


def test_unknown_customer_or_no_lines_is_refused(api, payday, customer_id):
    with pytest.raises(PaydayValidationError):
        api.create_invoice(invoice_body("00000000-0000-0000-0000-000000000000"))
    with pytest.raises(PaydayValidationError):
        api.create_invoice(invoice_body(customer_id, lines=[]))
    with pytest.raises(PaydayValidationError):
        api.create_invoice(invoice_body(customer_id, lines=[line(quantity=None)]))


def test_electronic_invoice_refusal_keeps_paydays_error_code(api, payday, customer_id):
    with pytest.raises(PaydayValidationError) as refused:
        api.create_invoice(invoice_body(customer_id, createElectronicInvoice=True))
    assert refused.value.code == 21018
    assert "electronic" in str(refused.value)


def test_company_without_system_setup_is_an_auth_error_without_logging_in_again(api, payday, customer_id):
    payday.require_system_setup()
    with pytest.raises(PaydayAuthError) as refused:
        api.create_invoice(invoice_body(customer_id))
    assert refused.value.setup_required
    assert "complete the required system setup" in str(refused.value)
    assert len(token_calls(payday)) == 1


def test_missing_invoice_is_not_found(api, payday):
    with pytest.raises(PaydayNotFound):
        api.get_invoice("00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("body, message, code", [
    ("Unable to Create the product. Product already exists with the following SKU: X",
     "Unable to Create the product. Product already exists with the following SKU: X", None),
    ({"message": "Invalid data. Date is required."}, "Invalid data. Date is required.", None),
    ({"errorCode": 21001, "errorMessage": "Deleting customer is not allowed"}, "Deleting customer is not allowed", 21001),
    ({"error": "invalid_request", "error_description": "Bad request"}, "Bad request", "invalid_request"),
    ({"title": "One or more validation errors occurred.", "errors": {"Lines[0].Quantity": ["Required"]}},
     "One or more validation errors occurred. Lines[0].Quantity: Required", None),
])
def test_every_error_body_shape_reaches_the_merchant_verbatim(api, payday, body, message, code):
    payday.fail_next(1, status=400, body=body, paths=["GET /sales/paymenttypes"])
    with pytest.raises(PaydayValidationError) as refused:
        api.payment_types()
    assert str(refused.value) == message
    assert refused.value.code == code


# --- transient failures ----------------------------------------------------------------------


def test_503_on_a_create_is_transient_and_never_repeated(api, payday, customer_id, sleeps):
    api.payment_types()
    payday.fail_next(1, status=503, paths=["POST /invoices"])
    with pytest.raises(PaydayTransient) as failed:
        api.create_invoice(invoice_body(customer_id))
    assert failed.value.status == 503 and failed.value.outcome_unknown
    assert len(payday.requests_to("/invoices", "POST")) == 1 and sleeps == []
    assert api.find_own_invoice(customer_id, "#1001 / #1001-R1", Decimal(-5970)) is None  # so it is safe to send again


def test_429_carries_retry_after(api, payday, customer_id, sleeps):
    api.payment_types()
    payday.fail_next(1, status=429, retry_after=7, paths=["POST /invoices"])
    with pytest.raises(PaydayTransient) as failed:
        api.create_invoice(invoice_body(customer_id))
    assert failed.value.retry_after == 7 and failed.value.status == 429
    assert not failed.value.outcome_unknown
    assert sleeps == []


def test_reads_ride_out_a_short_failure_with_the_injected_sleep(api, payday, sleeps):
    api.payment_types()
    payday.fail_next(1, status=503, paths=["GET /sales/paymenttypes"])
    payday.fail_next(1, status=429, retry_after=2, paths=["GET /general/vat"])
    assert len(api.payment_types()) == 2
    assert api.vat_rates() == [0.0, 11.0, 24.0]
    assert sleeps == [1.0, 2.0]


def test_a_long_retry_after_is_handed_back_instead_of_waited_for(api, payday, sleeps):
    api.payment_types()
    payday.fail_next(1, status=429, retry_after=120, paths=["GET /sales/paymenttypes"])
    with pytest.raises(PaydayTransient) as failed:
        api.payment_types()
    assert failed.value.retry_after == 120 and sleeps == []


def test_reads_give_up_after_their_attempts(api, payday, sleeps):
    api.payment_types()
    payday.fail_next(5, status=500, paths=["GET /sales/paymenttypes"])
    with pytest.raises(PaydayTransient) as failed:
        api.payment_types()
    assert failed.value.status == 500 and not failed.value.outcome_unknown
    assert len(payday.requests_to("/sales/paymenttypes")) == 1 + 3
    assert sleeps == [1.0, 2.0]


def test_a_create_that_times_out_is_transient_with_unknown_outcome(payday, sleeps, customer_id):
    api = make_client(payday, sleeps, timeout=(2, 0.3))
    api.payment_types()
    payday.timeout_next(1, seconds=30, paths=["POST /invoices"])
    with pytest.raises(PaydayTransient) as failed:
        api.create_invoice(invoice_body(customer_id))
    assert failed.value.outcome_unknown and sleeps == []


def test_a_read_that_times_out_is_tried_again(payday, sleeps):
    api = make_client(payday, sleeps, timeout=(2, 0.3))
    api.payment_types()
    payday.timeout_next(1, seconds=30, paths=["GET /sales/paymenttypes"])
    assert len(api.payment_types()) == 2
    assert sleeps == [1.0]


def test_a_refused_connection_is_transient(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = PaydayClient(f"http://127.0.0.1:{port}", "id", "secret", sleep=sleeps, timeout=(1, 1))
    with pytest.raises(PaydayTransient):
        api.payment_types()


@pytest.mark.parametrize("search", ["reference", "number_and_name", "ignored"])
@pytest.mark.parametrize("status", [502, None], ids=["5xx", "dropped connection"])
def test_outcome_unknown_create_is_found_among_the_customers_invoices_whatever_the_search_does(
        api, payday, customer_id, status, search):
    payday.search = search
    near = api.create_invoice(invoice_body(customer_id, reference="#1001 / #1001-R10"))
    payday.fail_after_commit_next(1, status=status)
    with pytest.raises(PaydayTransient) as failed:
        api.create_invoice(invoice_body(customer_id, reference="#1001 / #1001-R1"))
    assert failed.value.outcome_unknown
    [stored] = [inv for inv in payday.invoices if inv["reference"] == "#1001 / #1001-R1"]
    found = api.find_own_invoice(customer_id, "#1001 / #1001-R1", Decimal(str(stored["amountIncludingVat"])))
    assert found["id"] == stored["id"] != near["id"]
    assert payday.requests_to("/invoices", "GET") == []   # no search was trusted


def test_the_lookup_reads_the_first_page_then_from_the_last_back(api, payday, customer_id, monkeypatch):
    from shopify_app.accounting.payday import api as payday_api

    monkeypatch.setattr(payday_api, "LOOKUP_PERPAGE", 2)
    ids = [api.create_invoice(invoice_body(customer_id, reference=f"#2001 / {n}"))["id"] for n in range(7)]
    found = api.find_own_invoice(customer_id, "#2001 / 6", Decimal(str(payday.invoices[-1]["amountIncludingVat"])))
    assert found["id"] == ids[-1]
    pages = [r["query"].get("page") for r in payday.requests if r["path"].endswith("/invoice")]
    assert pages == ["1", "4"]   # the newest invoice is on the last page: two reads, not four


def test_a_customer_with_more_invoices_than_the_lookup_reads_is_unconfirmed_not_guessed(
        api, payday, customer_id, monkeypatch):
    from shopify_app.accounting.payday import api as payday_api
    from shopify_app.accounting.payday.api import PaydayUnconfirmed

    monkeypatch.setattr(payday_api, "LOOKUP_PERPAGE", 1)
    monkeypatch.setattr(payday_api, "LOOKUP_PAGES", 2)
    for n in range(3):
        api.create_invoice(invoice_body(customer_id, reference=f"#2001 / {n}"))
    with pytest.raises(PaydayUnconfirmed):
        api.find_own_invoice(customer_id, "#9999 / gone", Decimal(-1))


def test_send_email_only_where_payday_has_an_address(payday):
    from shopify_app.accounting.payday.api import PaydayClient
    from tests.plugins.payday_standin import PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET

    api = PaydayClient(payday.url, PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET)
    payday.add_customer(client_id=PAYDAY_CLIENT_ID, name="Fyrirtæki ehf.", ssn="1203894569")   # no e-mail on file
    known = api.match_customer(kennitala="1203894569", email="buyer@example.is", name="Fyrirtæki ehf.")
    assert (known.by, known.has_email) == ("kennitala", False)
    made = api.match_customer(email=None, name="Gestur")
    assert (made.by, made.has_email) == ("created", False)


def test_a_customer_another_worker_just_made_is_found_by_one_lookup_not_a_failure(payday):
    from shopify_app.accounting.payday.api import PaydayClient
    from tests.plugins.payday_standin import PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET

    api = PaydayClient(payday.url, PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET)
    payday.customer_race_next(1)   # the create is refused: "already exists"
    match = api.match_customer(kennitala="1201603389", email="fyrirtaeki@example.is", name="Fyrirtæki ehf.")
    assert match.by == "created" and match.id
    assert [c["id"] for c in payday.customers if c.get("ssn") == "1201603389"] == [match.id]
