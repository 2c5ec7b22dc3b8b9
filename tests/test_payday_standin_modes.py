"""The Payday stand-in's modes for what nobody has confirmed about Payday (issue 9), its products
and stock, and the lookups that do not depend on `query`. Spoken to over raw HTTP, so these
tests hold whatever the app's client does; docs/PAYDAY_MODEL.md names the evidence for each."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from shopify_app.sandbox.accounting.payday import DEFAULT_MODES, HARSHEST_MODES, MSG_PAID_NEGATIVE, PaydayStandin
from tests.plugins.payday_standin import PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET


class Api:
    """Payday over plain HTTP, the way any client talks to it."""

    def __init__(self, payday):
        self.url = payday.url
        answer = requests.post(f"{self.url}/auth/token", json={"clientId": PAYDAY_CLIENT_ID,
                                                               "clientSecret": PAYDAY_CLIENT_SECRET},
                               headers={"Api-Version": "alpha"}, timeout=5)
        answer.raise_for_status()
        self.headers = {"Api-Version": "alpha", "Authorization": f"Bearer {answer.json()['accessToken']}"}

    def get(self, path, **params) -> requests.Response:
        return requests.get(self.url + path, params=params, headers=self.headers, timeout=5)

    def post(self, path, body) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers, timeout=5)

    def put(self, path, body) -> requests.Response:
        return requests.put(self.url + path, json=body, headers=self.headers, timeout=5)


@pytest.fixture
def api(payday):
    return Api(payday)


@pytest.fixture
def anna(payday):
    return payday.add_customer(name="Anna Jónsdóttir", email="anna@example.is")


@pytest.fixture
def card(payday):
    return payday.company().payment_types[0]["id"]


def line(**over) -> dict:
    return {"position": 1, "description": "Peysa, blá, M", "quantity": 1, "unitPriceIncludingVat": -4990,
            "vatPercentage": 24, "discountPercentage": 0, **over}


def body(customer: dict, reference: str = "#1001 / #1001-R1", lines=None, **extra) -> dict:
    return {"customer": {"id": customer["id"]}, "reference": reference,
            "description": "Kreditreikningur vegna skila #1001-R1", "invoiceDate": "2026-11-23",
            "dueDate": "2026-11-23", "currencyCode": "ISK", "status": "SENT",
            "lines": lines if lines is not None else [line()], **extra}


def create(api, customer, **kwargs) -> dict:
    answer = api.post("/invoices", body(customer, **kwargs))
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- the modes themselves ----------------------------------------------------------------


def test_defaults_are_the_documented_ones_and_a_reset_restores_them(payday):
    assert PaydayStandin().modes == DEFAULT_MODES
    assert payday.modes == DEFAULT_MODES
    payday.configure({"search": "number_and_name", "paid_negative": "refused", "lost_answers": 0.5})
    payday.max_pages = 3
    payday.today = date(2026, 12, 31)
    assert (payday.search, payday.paid_negative, payday.lost_answers, payday.max_pages) == (
        "number_and_name", "refused", 0.5, 3)
    payday.reset()
    assert payday.modes == DEFAULT_MODES and payday.today is None and payday.faults == {"lost_answers": 0}


def test_a_scenarios_payday_object_configures_it_and_unknown_modes_or_values_are_refused(payday):
    payday.configure({"search": "ignored", "paid_negative": "refused", "lost_answers": 0.25}, seed=9)
    assert (payday.search, payday.paid_negative, payday.lost_answers, payday.seed) == ("ignored", "refused", 0.25, 9)
    with pytest.raises(ValueError):
        payday.configure(search="description")
    with pytest.raises(ValueError):
        payday.configure(lost_answers=1.5)
    with pytest.raises(ValueError):
        payday.configure(idempotency="keys")
    with pytest.raises(ValueError):
        payday.paid_negative = "maybe"
    assert payday.search == "ignored"


def test_harshest_is_the_pessimistic_combination(payday):
    payday.harshest()
    assert payday.modes == HARSHEST_MODES
    assert (payday.search, payday.paid_negative, payday.lost_answers) == ("number_and_name", "refused", 0.5)


def test_a_stand_in_can_be_built_with_its_own_defaults():
    standin = PaydayStandin(modes={"search": "reference"})
    standin.search = "ignored"
    standin.reset()
    assert standin.search == "reference"


# --- GET /invoices?query= ----------------------------------------------------------------


@pytest.fixture
def three(api, payday, anna):
    bjorn = payday.add_customer(name="Björn Sigurðsson", email="bjorn@example.is")
    made = [create(api, anna, reference="#1001 / #1001-R1"), create(api, bjorn, reference="#1002 / #1002-R1"),
            create(api, anna, reference="#1003 / #1003-R1")]
    payday.issue_now()
    return made


def refs(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [inv["reference"] for inv in answer.json()["invoices"]]


def test_search_reference_matches_the_reference(api, payday, three):
    payday.search = "reference"
    assert refs(api.get("/invoices", query="#1002-R1")) == ["#1002 / #1002-R1"]


def test_search_number_and_name_never_finds_a_reference(api, payday, three):
    payday.search = "number_and_name"
    assert refs(api.get("/invoices", query="#1002 / #1002-R1")) == []
    assert refs(api.get("/invoices", query="björn")) == ["#1002 / #1002-R1"]
    assert refs(api.get("/invoices", query="3")) == ["#1003 / #1003-R1"]  # the invoice number


def test_search_ignored_answers_every_invoice_page_by_page(api, payday, three):
    payday.search = "ignored"
    first = api.get("/invoices", query="#1002 / #1002-R1", perpage=2).json()
    assert (first["total"], first["pages"], first["perPage"], len(first["invoices"])) == (3, 2, 2, 2)
    assert refs(api.get("/invoices", query="#1002 / #1002-R1", perpage=2, page=2)) == ["#1003 / #1003-R1"]


def test_lists_come_oldest_first_unless_told_and_perpage_is_capped(api, payday, three):
    assert refs(api.get("/invoices")) == ["#1001 / #1001-R1", "#1002 / #1002-R1", "#1003 / #1003-R1"]
    payday.list_order = "newest_first"
    assert refs(api.get("/invoices"))[0] == "#1003 / #1003-R1"
    assert api.get("/invoices", perpage=10_000).json()["perPage"] == 500


def test_max_pages_stops_the_list_though_it_still_counts_every_page(api, payday, three):
    payday.max_pages = 1
    second = api.get("/invoices", perpage=2, page=2).json()
    assert second["invoices"] == [] and second["total"] == 3 and second["pages"] == 2


def test_documented_filters_are_honoured_and_customer_id_is_not(api, payday, anna, three):
    create(api, anna, reference="#1004 / #1004-R1", invoiceDate="2026-11-25")
    assert refs(api.get("/invoices", dateFrom="2026-11-24", dateTo="2026-11-30")) == ["#1004 / #1004-R1"]
    assert len(refs(api.get("/invoices", customerId=anna["id"]))) == 4  # ignored: every customer's
    payday.filters = "all"
    assert len(refs(api.get("/invoices", customerId=anna["id"]))) == 3
    payday.filters = "ignored"
    assert len(refs(api.get("/invoices", dateFrom="2026-11-24"))) == 4


def test_exclude_status_and_order(api, payday, anna, card, three):
    create(api, anna, reference="#1005 / #1005-R1", status="PAID", paidDate="2026-11-23", paymentType=card)
    assert "#1005 / #1005-R1" not in refs(api.get("/invoices", excludeStatus="PAID,CANCELLED"))
    assert refs(api.get("/invoices", order="desc", orderBy="created"))[0] == "#1005 / #1005-R1"


# --- the lookup that does not depend on query ----------------------------------------------


def test_a_customers_own_invoices_whatever_the_search_mode(api, payday, anna, three):
    payday.configure(search="number_and_name", filters="ignored")
    answer = api.get(f"/customers/{anna['id']}/invoice", perpage=1, page=2, include="lines")
    assert answer.status_code == 200
    page = answer.json()
    assert (page["total"], page["pages"], page["page"]) == (2, 2, 2)
    [only] = page["invoices"]
    assert only["reference"] == "#1003 / #1003-R1" and only["lines"][0]["description"] == "Peysa, blá, M"
    assert "lines" not in api.get(f"/customers/{anna['id']}/invoice").json()["invoices"][0]


def test_the_plural_customer_invoices_path_and_an_unknown_customer_answer_404(api, payday, anna):
    assert api.get(f"/customers/{anna['id']}/invoices").status_code == 404
    assert api.get("/customers/00000000-0000-0000-0000-000000000000/invoice").status_code == 404


# --- PAID with a negative total, and marking paid afterwards -------------------------------


def test_paid_negative_is_accepted_by_default(api, payday, anna, card):
    created = create(api, anna, status="PAID", paidDate="2026-11-23", paymentType=card)
    assert created["status"] == "PAID" and created["amountIncludingVat"] == -4990.0


def test_paid_negative_refused_answers_a_400_validation_error_and_stores_nothing(api, payday, anna, card):
    payday.paid_negative = "refused"
    answer = api.post("/invoices", body(anna, status="PAID", paidDate="2026-11-23", paymentType=card))
    assert answer.status_code == 400 and answer.text == MSG_PAID_NEGATIVE
    assert payday.invoices == []
    # a positive paid invoice, and the same credit unpaid, are still taken
    assert create(api, anna, status="PAID", paidDate="2026-11-23", paymentType=card,
                  lines=[line(unitPriceIncludingVat=4990)])["status"] == "PAID"
    assert create(api, anna)["status"] == "SENT"


def test_a_credit_is_created_unpaid_and_then_marked_paid(api, payday, anna, card):
    payday.paid_negative = "refused"
    created = create(api, anna)
    answer = api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20", "paymentType": card})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["paidDate"], answer.json()["paymentType"]) == (
        "PAID", "2026-11-20", card)
    again = api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20", "paymentType": card})
    assert (again.status_code, again.text) == (400, "Invoice with status Paid cannot be updated to status PAID")


def test_marking_paid_needs_a_known_payment_type_and_a_paid_date(api, payday, anna, card):
    created = create(api, anna)
    assert api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20",
                                                  "paymentType": "nope"}).status_code == 400
    assert api.put(f"/invoices/{created['id']}", {"status": "PAID", "paymentType": card}).status_code == 400
    assert api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20T12:00:00Z",
                                                  "paymentType": card}).status_code == 200


def test_marking_paid_can_be_refused_for_a_negative_total_too(api, payday, anna, card):
    payday.mark_paid_negative = "refused"
    created = create(api, anna)
    answer = api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20", "paymentType": card})
    assert answer.status_code == 400 and api.get(f"/invoices/{created['id']}").json()["status"] == "SENT"


def test_an_invoice_not_yet_issued_cannot_change_status(api, payday, anna, card):
    payday.number_delay = 3600
    created = create(api, anna)
    paid = api.put(f"/invoices/{created['id']}", {"status": "PAID", "paidDate": "2026-11-20", "paymentType": card})
    cancel = api.put(f"/invoices/{created['id']}", {"status": "CANCELLED"})
    assert (paid.status_code, paid.text) == (400, "Invoice with status Pending cannot be updated to status PAID")
    assert (cancel.status_code, cancel.text) == (
        400, "Invoice with status Pending cannot be updated to status CANCELLED")
    payday.issue_now()
    assert api.put(f"/invoices/{created['id']}", {"status": "CANCELLED", "cancelledDate": "2026-11-24"}).json()[
        "status"] == "CANCELLED"
    payday.pending_updates = "accepted"
    other = create(api, anna, reference="#1002 / #1002-R1")
    assert api.put(f"/invoices/{other['id']}", {"status": "PAID", "paidDate": "2026-11-20",
                                                "paymentType": card}).status_code == 200


# --- answers lost after the commit -------------------------------------------------------


def lost_pattern(api, payday, anna, n: int) -> list[bool]:
    pattern = []
    for i in range(n):
        try:
            api.post("/invoices", body(anna, reference=f"#2000 / #2000-R{i}"))
            pattern.append(False)
        except requests.RequestException:
            pattern.append(True)
    return pattern


def test_lost_answers_are_committed_counted_and_repeatable_with_the_seed(api, payday, anna):
    payday.configure(lost_answers=0.5, seed=7)
    first = lost_pattern(api, payday, anna, 20)
    assert 0 < sum(first) < 20
    assert payday.faults == {"lost_answers": sum(first)}
    assert len(payday.invoices) == 20  # every create was committed, answered or not

    payday.reset()
    payday.add_client(PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET)
    anna = payday.add_customer(name="Anna Jónsdóttir", email="anna@example.is")
    payday.configure(lost_answers=0.5, seed=7)
    assert lost_pattern(Api(payday), payday, anna, 20) == first


def test_only_committed_invoice_creates_lose_their_answers(api, payday, anna):
    payday.lost_answers = 1.0
    assert api.post("/invoices", body(anna, lines=[])).status_code == 400  # refused: not committed
    assert api.get("/invoices").status_code == 200
    assert payday.faults["lost_answers"] == 0
    with pytest.raises(requests.RequestException):
        api.post("/invoices", body(anna))
    assert payday.faults["lost_answers"] == 1 and len(payday.invoices) == 1


def test_a_lost_invoice_is_found_among_the_customers_own_invoices(api, payday, anna):
    payday.configure(HARSHEST_MODES, lost_answers=1.0)
    with pytest.raises(requests.RequestException):
        api.post("/invoices", body(anna, reference="#1001 / #1001-R1"))
    assert refs(api.get("/invoices", query="#1001 / #1001-R1")) == []  # the search cannot see it
    found = [inv for inv in api.get(f"/customers/{anna['id']}/invoice").json()["invoices"]
             if inv["reference"] == "#1001 / #1001-R1" and inv["amountIncludingVat"] == -4990.0]
    assert len(found) == 1


# --- products and stock --------------------------------------------------------------------


def sku_line(sku="PEY-M", quantity=1, price=4990, **over) -> dict:
    return line(sku=sku, quantity=quantity, unitPriceIncludingVat=price, **over)


def test_a_sale_moves_stock_by_minus_quantity_when_the_invoice_is_issued(api, payday, anna):
    payday.add_product("PEY-M", 10, name="Peysa blá M")
    payday.number_delay = 3600
    create(api, anna, reference="#1001", lines=[sku_line(quantity=2)])
    assert payday.stock("PEY-M") == 10.0  # not issued yet: stock reads lag Payday's job
    payday.issue_now()
    assert payday.stock("PEY-M") == 8.0
    [sale, opening] = payday.movements("PEY-M")
    assert (sale["changeInQuantity"], sale["quantityAfterChange"]) == (-2.0, 8.0)
    assert sale["description"] == "Reikningur nr. 1 - Anna Jónsdóttir"
    assert opening["description"] == "Upphafsbirgðastaða" and opening["changeInQuantity"] == 10.0


def test_a_credit_line_with_positive_quantity_and_negative_price_takes_the_goods_out_again(api, payday, anna):
    payday.add_product("PEY-M", 10)
    create(api, anna, lines=[sku_line(quantity=2, price=-4990)])
    payday.issue_now()
    assert payday.stock("PEY-M") == 8.0


def test_negative_quantities_are_refused_by_default(api, payday, anna):
    payday.add_product("PEY-M", 10)
    answer = api.post("/invoices", body(anna, lines=[sku_line(quantity=-2)]))
    assert answer.status_code == 400 and "Quantity" in answer.json()
    assert payday.invoices == [] and payday.stock("PEY-M") == 10.0


def test_with_negative_quantities_accepted_a_return_an_exchange_and_a_correction_keep_stock_right(
        api, payday, anna):
    payday.negative_quantity = "accepted"
    payday.add_product("PEY-M", 10)
    payday.add_product("PEY-L", 5)
    create(api, anna, reference="#1001", lines=[sku_line(quantity=2)])                    # the sale
    create(api, anna, reference="#1001 / R1", lines=[sku_line(quantity=-1)])             # a return
    create(api, anna, reference="#1001 / R2", lines=[sku_line(quantity=-1),              # an exchange
                                                     sku_line("PEY-L", quantity=1, position=2)])
    create(api, anna, reference="#1001 / R2 leiðrétting",                                # its correction
           lines=[sku_line(quantity=1), sku_line("PEY-L", quantity=-1, position=2)])
    payday.issue_now()
    assert (payday.stock("PEY-M"), payday.stock("PEY-L")) == (9.0, 5.0)


def test_a_product_without_stock_and_a_draft_move_nothing(api, payday, anna):
    payday.add_product("VINNA", None, name="Vinna")
    payday.add_product("PEY-M", 10)
    create(api, anna, lines=[sku_line("VINNA", quantity=3)])
    create(api, anna, status="DRAFT", lines=[sku_line(quantity=3)])
    payday.issue_now()
    assert payday.stock("VINNA") is None and payday.movements("VINNA") == []
    assert payday.stock("PEY-M") == 10.0


def test_a_linked_line_gets_its_product_id_and_its_description_rewritten(api, payday, anna):
    product = payday.add_product("PEY-M", 10, name="Peysa blá M")
    created = create(api, anna, lines=[sku_line(description="Skilað: Peysa")])
    assert created["lines"][0]["productId"] == product["id"]
    assert created["lines"][0]["description"] == "PEY-M - Peysa blá M"
    payday.sku_description = "fill"
    kept = create(api, anna, lines=[sku_line(description="Skilað: Peysa")])
    assert kept["lines"][0]["description"] == "Skilað: Peysa"
    assert create(api, anna, lines=[sku_line(description=None)])["lines"][0]["description"] == "PEY-M - Peysa blá M"
    payday.sku_description = "keep"
    assert create(api, anna, lines=[sku_line(description=None)])["lines"][0]["description"] is None


def test_a_line_by_product_id_links_and_an_unknown_product_id_is_refused(api, payday, anna):
    product = payday.add_product("PEY-M", 10)
    created = create(api, anna, lines=[line(productId=product["id"], unitPriceIncludingVat=4990)])
    assert created["lines"][0]["sku"] == "PEY-M"
    assert api.post("/invoices", body(anna, lines=[line(productId="nope")])).status_code == 400


def test_an_unknown_sku_is_ignored_or_refused(api, payday, anna):
    created = create(api, anna, lines=[sku_line("ENGIN")])
    assert created["lines"][0]["productId"] is None and created["lines"][0]["description"] == "Peysa, blá, M"
    payday.unknown_sku = "refused"
    assert api.post("/invoices", body(anna, lines=[sku_line("ENGIN")])).status_code == 400


def test_products_and_their_movements_over_http(api, payday, anna):
    product = payday.add_product("PEY-M", 10, name="Peysa blá M")
    create(api, anna, lines=[sku_line(quantity=2)])
    found = api.get("/products/sku/", sku="PEY-M").json()
    assert found["id"] == product["id"] and found["quantity"] == 8.0
    assert api.get("/products/sku/", sku="ENGIN").status_code == 404
    assert [p["sku"] for p in api.get("/products", query="pey").json()["products"]] == ["PEY-M"]
    back = api.post(f"/products/{product['id']}/movements",
                    {"date": "2026-11-24", "description": "Skil #1001-R1", "changeInQuantity": 2})
    assert back.status_code == 200 and back.json()["quantityAfterChange"] == 10.0
    assert api.post(f"/products/{product['id']}/movements", {"changeInQuantity": 2}).json() == {
        "message": "Invalid data. Date is required."}
    page = api.get(f"/products/{product['id']}/movements").json()
    assert page["perPage"] == 100 and [m["changeInQuantity"] for m in page["productMovements"]] == [2.0, -2.0, 10.0]
    duplicate = api.post("/products", {"name": "Önnur", "sku": "PEY-M"})
    assert (duplicate.status_code, duplicate.text) == (
        400, "Unable to Create the product. Product already exists with the following SKU: PEY-M")


# --- customers, e-mail, dates, shapes -------------------------------------------------------


def test_two_workers_creating_one_kennitala_the_second_gets_400_and_a_lookup_finds_it(api, payday):
    payday.customer_race_next()
    answer = api.post("/customers", {"name": "Anna", "ssn": "1203894569"})
    assert answer.status_code == 400 and "already exists" in answer.text
    found = api.get("/customers/number/1203894569")
    assert found.status_code == 200 and found.json()["ssn"] == "1203894569"
    assert [c["ssn"] for c in payday.customers] == ["1203894569"]
    assert api.post("/customers", {"name": "Björn", "ssn": "0101302989"}).status_code == 200  # only once


def test_send_email_for_a_customer_without_an_address(api, payday, anna):
    nobody = payday.add_customer(name="Staðgreiðsluviðskiptavinur")
    answer = api.post("/invoices", body(nobody, sendEmail=True))
    assert answer.status_code == 400 and "email" in answer.text
    payday.email_without_address = "ignored"
    create(api, nobody, sendEmail=True)
    create(api, anna, sendEmail=True, reference="#1002 / #1002-R1")
    payday.issue_now()
    assert [(e["number"], e["to"]) for e in payday.sent_emails] == [(2, "anna@example.is")]


def test_paydays_today_is_reykjaviks_and_can_be_set(api, payday, anna):
    payday.today = date(2026, 12, 31)
    created = api.post("/invoices", {**body(anna), "invoiceDate": None, "dueDate": None}).json()
    assert (created["invoiceDate"], created["dueDate"], created["sentDate"]) == ("2026-12-31",) * 3
    payday.today = None
    assert payday.payday_today() == datetime.now(ZoneInfo("Atlantic/Reykjavik")).date()


def test_paid_date_before_the_invoice_date_is_taken(api, payday, anna, card):
    created = create(api, anna, status="PAID", paidDate="2026-11-20", paymentType=card,
                     lines=[line(unitPriceIncludingVat=4990)])
    assert (created["invoiceDate"], created["paidDate"]) == ("2026-11-23", "2026-11-20")


def test_shapes_wp_and_other_clients_send_are_taken(api, payday, anna):
    no_status = {k: v for k, v in body(anna).items() if k != "status"}
    assert api.post("/invoices", no_status).json()["status"] == "SENT"
    fee = {"position": 1, "description": "Gjald", "quantity": 1, "unitPriceIncludingVat": 500}
    created = create(api, anna, lines=[fee])
    assert created["lines"][0]["vatPercentage"] == 0.0 and created["amountIncludingVat"] == 500.0


def test_an_invoice_already_in_payday_can_be_seeded(api, payday, anna, card):
    sale = payday.add_invoice(customer={"id": anna["id"]}, status="PAID", paidDate="2026-11-01",
                              paymentType=card, invoiceDate="2026-11-01",
                              description="Vefverslun | Pöntunarnúmer: #1001 | Greiðslumáti: Greiðslukort",
                              lines=[line(unitPriceIncludingVat=4990)])
    payday.lost_answers = 1.0
    assert payday.faults["lost_answers"] == 0
    [listed] = api.get(f"/customers/{anna['id']}/invoice").json()["invoices"]
    assert listed["id"] == sale["id"] and listed["number"] == 1 and "Pöntunarnúmer: #1001" in listed["description"]
