"""Credit by hand (C6, issue 11): the preview is exactly what Payday receives, signs and labels
included, and nothing is made until the merchant confirms that preview; a plan that changed
since is refused with the new one to confirm."""
from __future__ import annotations

import re

import pytest

from shopify_app import db, orders, shops
from shopify_app.sandbox.player import SHOP as SANDBOX_SHOP, install_shop, run_worker_until_idle

from tests.test_merchant_pages import ORDER   # the same two-line order with shipping


@pytest.fixture
def credit_form(client, system, payday):
    """The order in the sandbox shop, and its credit page's form: a new form token each call."""
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = system.shopify.store.create_order(SANDBOX_SHOP, {**ORDER, "currency": "ISK", "taxes_included": True})
    orders.request_work(shops.get(SANDBOX_SHOP)["id"], order.id)
    run_worker_until_idle()
    [row] = rows("SELECT id FROM orders")
    token = system.shopify.id_token(SANDBOX_SHOP)

    def form():
        html = client.get(f"/orders/{row['id']}/credit", query_string={
            "embedded": "1", "shop": SANDBOX_SHOP, "id_token": token, "locale": "is"}).get_data(as_text=True)
        lines = dict(re.findall(r'name="qty-(\d+)"[^>]*max="(\d+)"', html))
        return re.search(r'data-token="([^"]+)"', html).group(1), {int(mx): line for line, mx in lines.items()}

    def post(path, body):
        return client.post(f"/api/orders/{row['id']}/credit{path}", json=body,
                           headers={"Authorization": f"Bearer {token}", "X-Skilvis-Locale": "is"})

    return form, post


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def test_the_preview_is_exactly_what_payday_receives_signs_and_labels_included(credit_form, payday):
    form, post = credit_form
    token, by_max = form()
    body = {"token": token, "quantities": {by_max[3]: 2}, "shipping": True}
    preview = post("/preview", body).json
    assert preview["ok"] and preview["total"] == "-4980" and preview["label"] == "#1001-H1"
    # As Payday's own plugins send a credit: positive quantity, negative unit price, the labelled shipping.
    assert [(l["description"], l["quantity"], l["unitPriceIncludingVat"]) for l in preview["lines"]] == [
        ("Krús", 2, -1990), ("Sendingarkostnaður: Pósturinn", 1, -1000)]
    html = preview["html"]
    assert html.count('data-testid="preview-line"') == 2 and "Sendingarkostnaður: Pósturinn" in html
    assert f'data-confirm="{preview["confirm"]}"' in html and "-4.980 kr." in html
    assert not re.search(r'format="numeric">-\d', html)   # no quantity shown with the credit's sign

    created = post("", {**body, "confirm": preview["confirm"]}).json
    assert created["ok"] and created["new"]
    run_worker_until_idle()
    [doc] = rows("SELECT status, request_body, reference FROM documents")
    sent = doc["request_body"]
    assert doc["status"] == "sent"
    assert sent["lines"] == preview["lines"]
    assert (sent["description"], sent["reference"]) == (preview["description"], preview["reference"])
    assert sent["reference"] == "#1001 / #1001-H1" and token not in sent["reference"]
    [invoice] = payday.invoices
    assert invoice["reference"] == preview["reference"]


def test_nothing_is_made_without_the_merchants_confirmation(credit_form):
    form, post = credit_form
    token, by_max = form()
    body = {"token": token, "quantities": {by_max[3]: 1}, "shipping": False}
    refused = post("", body)
    assert refused.status_code == 409 and refused.json["error"] == "confirmation_required"
    assert refused.json["message"] == "Skoðaðu forskoðunina og staðfestu hana: ekkert hefur verið stofnað enn."
    assert refused.json["preview"]["confirm"] == post("/preview", body).json["confirm"]
    forged = post("", {**body, "confirm": "0" * 32})
    assert forged.status_code == 409 and forged.json["error"] == "plan_changed"
    assert rows("SELECT id FROM documents") == [] and rows("SELECT id FROM cases") == []


def test_a_plan_that_changed_since_its_preview_is_refused_with_the_new_one(credit_form):
    form, post = credit_form
    token, by_max = form()
    body = {"token": token, "quantities": {by_max[3]: 1}}
    stale = post("/preview", body).json
    # Meanwhile a colleague credits a plate by hand in another tab: this credit is now #1001-H2.
    other_token, _ = form()
    other = {"token": other_token, "quantities": {by_max[2]: 1}}
    assert post("", {**other, "confirm": post("/preview", other).json["confirm"]}).json["new"]

    changed = post("", {**body, "confirm": stale["confirm"]})
    assert changed.status_code == 409 and changed.json["error"] == "plan_changed"
    fresh = changed.json["preview"]
    assert fresh["label"] == "#1001-H2" and fresh["confirm"] != stale["confirm"]
    assert len(rows("SELECT id FROM documents")) == 1
    # Confirming the plan as it is now makes it, once, however often it is sent.
    first = post("", {**body, "confirm": fresh["confirm"]}).json
    again = post("", {**body, "confirm": fresh["confirm"]}).json
    assert first["new"] and not again["new"] and first["document_id"] == again["document_id"]
    assert [r["reference"] for r in rows("SELECT reference FROM documents ORDER BY id")] == [
        "#1001 / #1001-H1", "#1001 / #1001-H2"]


def test_picks_the_order_cannot_take_are_refused_before_any_confirmation(credit_form):
    form, post = credit_form
    token, by_max = form()
    too_many = post("", {"token": token, "quantities": {by_max[3]: 4}})
    assert too_many.status_code == 400 and too_many.json["error"] == "bad_quantity"


def test_a_danish_shop_credits_by_hand_into_its_own_system_in_danish(client, danish_system):
    # C6 for a shop on Dinero: the page and the answers name Dinero, the preview reads in Danish
    # as the document will, 25 % is a rate the shop mapped, and the credit note is booked there.
    install_shop(danish_system, currency="DKK", taxes_included=True, gateways=["shopify_payments"],
                 accounting="dinero")
    dk_order = {**ORDER, "currency": "DKK", "taxes_included": True,
                "lines": [{**line, "tax_rate": "25"} for line in ORDER["lines"]],
                "shipping": {**ORDER["shipping"], "tax_rate": "25"}}
    order = danish_system.shopify.store.create_order(SANDBOX_SHOP, dk_order)
    orders.request_work(shops.get(SANDBOX_SHOP)["id"], order.id)
    run_worker_until_idle()
    [row] = rows("SELECT id FROM orders")
    token = danish_system.shopify.id_token(SANDBOX_SHOP)
    html = client.get(f"/orders/{row['id']}/credit", query_string={
        "embedded": "1", "shop": SANDBOX_SHOP, "id_token": token, "locale": "en"}).get_data(as_text=True)
    assert "Create this credit invoice in Dinero" in html and 'data-testid="not-connected"' not in html
    form = re.search(r'data-token="([^"]+)"', html).group(1)
    line = dict((mx, ln) for ln, mx in re.findall(r'name="qty-(\d+)"[^>]*max="(\d+)"', html))["3"]

    def post(path, body):
        return client.post(f"/api/orders/{row['id']}/credit{path}", json=body,
                           headers={"Authorization": f"Bearer {token}", "X-Skilvis-Locale": "en"})
    body = {"token": form, "quantities": {line: 1}, "shipping": False}
    preview = post("/preview", body).json
    assert preview["ok"], preview
    assert preview["description"].startswith("Kreditnota oprettet manuelt på ordre #1001")
    created = post("", {**body, "confirm": preview["confirm"]}).json
    assert created["ok"] and created["message"] == "Credit invoice created; it is being sent to Dinero."
    run_worker_until_idle()
    [doc] = rows("SELECT status, reference, accounting FROM documents")
    assert (doc["status"], doc["accounting"]) == ("sent", "dinero") and doc["reference"] == preview["reference"]
    [booked] = danish_system.books("dinero").documents()
    assert (booked["type"], booked["total"], booked["reference"]) == ("credit_note", -1990, preview["reference"])
