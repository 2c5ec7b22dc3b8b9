"""Issue 12 in Settings: each shop picks its accounting system; a Danish system's credentials and
mappings are kept encrypted, a blank secret keeps the saved one, the test connection logs in to
that system, and D3 in general form follows what the shop mapped."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from shopify_app import db, decision, shop_settings, shops
from shopify_app.sandbox.accounting.dinero import DineroStandin
from tests.helpers import SHOP
from tests.test_merchant_pages import page
from tests.test_security_limits_and_headers import bearer

ORG = 52001


@pytest.fixture(scope="module")
def dinero_server():
    server = DineroStandin().start()
    yield server
    server.stop()


@pytest.fixture
def dinero(dinero_server, monkeypatch):
    dinero_server.reset()
    dinero_server.add_client("skilvis-app", "app-secret")
    dinero_server.add_organization(ORG, api_key="merchant-key", name="Hygge Butik ApS")
    # Skilvís's own Dinero client comes from the environment, never from the merchant.
    monkeypatch.setenv("DINERO_CLIENT_ID", "skilvis-app")
    monkeypatch.setenv("DINERO_CLIENT_SECRET", "app-secret")
    monkeypatch.setenv("DINERO_BASE_URL", dinero_server.url)
    return dinero_server


@pytest.fixture
def shop(servers):
    return shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_x", scope="read_orders,read_returns"))


TYPED = {"api_key": "merchant-key", "organization_id": str(ORG), "accounts.25": "1000", "accounts.0": "1010",
         "shipping_account": "1100", "default_contact_guid": "c-1"}


def test_a_danish_shop_chooses_dinero_and_its_mappings_are_kept_encrypted(client, shop, dinero):
    resp = client.post("/api/settings", headers=bearer(), json={"accounting": "dinero", "accounting_config": TYPED})
    assert resp.json["ok"], resp.json
    saved = shop_settings.load(shop["id"])
    assert saved.accounting == "dinero" and saved.connected
    assert saved.accounting_config["accounts"] == {"25": "1000", "0": "1010"}
    assert saved.vat_rates == {Decimal(25), Decimal(0)} and saved.default_customer == "c-1"
    with db.transaction() as conn:
        stored = conn.execute("SELECT accounting_config_enc FROM shop_settings").fetchone()["accounting_config_enc"]
    assert b"merchant-key" not in bytes(stored)
    # A blank secret keeps the saved one; an emptied mapping is removed.
    client.post("/api/settings", headers=bearer(),
                json={"accounting": "dinero", "accounting_config": {**TYPED, "api_key": "", "accounts.0": ""}})
    again = shop_settings.load(shop["id"])
    assert again.accounting_config["api_key"] == "merchant-key" and again.vat_rates == {Decimal(25)}


def test_the_test_connection_logs_in_to_the_chosen_system(client, shop, dinero):
    ok = client.post("/api/settings/test-connection", headers=bearer(),
                     json={"accounting": "dinero", "accounting_config": TYPED}).json
    assert ok["ok"], ok
    refused = client.post("/api/settings/test-connection", headers=bearer(),
                          json={"accounting": "dinero", "accounting_config": {**TYPED, "api_key": "wrong"}}).json
    assert not refused["ok"] and refused["message"]


def test_automatic_processing_needs_the_chosen_system_connected(client, shop, dinero):
    resp = client.post("/api/settings", headers=bearer(),
                       json={"accounting": "billy", "accounting_config": {}, "auto_process": True})
    assert resp.status_code == 400 and shop_settings.load(shop["id"]).accounting == "payday"


def test_D3_general_the_rates_follow_the_shops_mapping():
    with decision.booking_rates({Decimal(25), Decimal(0)}):
        assert decision.vat_rate((Decimal(25),), "Uldtrøje") == 25
        assert decision.vat_rate((), "Gavekort") == 0
        with pytest.raises(decision.UnsupportedVat):
            decision.vat_rate((Decimal(24),), "Lopapeysa")
    assert decision.vat_rate((Decimal(24),), "Lopapeysa") == 24   # Payday's rates outside
    with pytest.raises(decision.UnsupportedVat):
        decision.vat_rate((Decimal(25),), "Uldtrøje")


def test_billy_posts_each_gateways_refunds_on_the_account_the_merchant_picks_in_settings(client, shop):
    # Billy registers the money a credit note moved as a bank payment (billy.py): the account is
    # asked per Shopify payment gateway the shop has used, in Billy's own words; a blank field
    # removes the mapping, and the credit note then stays unpaid for the bookkeeper.
    shop_settings.save(shop["id"], accounting="billy", accounting_config={"access_token": "t"})
    shop_settings.note_gateways(shop["id"], ["shopify_payments", "Peningar í kassa"])
    html = page(client, "/settings", locale="en").get_data(as_text=True)
    assert 'data-config-key="payment_accounts.shopify_payments"' in html
    assert "Billy account for payments through Shopify Payments" in html
    assert 'data-config-key="payment_accounts.Peningar í kassa"' in html
    typed = {"access_token": "", "payment_accounts.shopify_payments": "acc-bank", "payment_accounts.Peningar í kassa": ""}
    assert client.post("/api/settings", headers=bearer(), json={"accounting": "billy", "accounting_config": typed}).json["ok"]
    saved = shop_settings.load(shop["id"]).accounting_config
    assert saved["payment_accounts"] == {"shopify_payments": "acc-bank"} and saved["access_token"] == "t"
    client.post("/api/settings", headers=bearer(),
                json={"accounting": "billy", "accounting_config": {"payment_accounts.shopify_payments": ""}})
    assert shop_settings.load(shop["id"]).accounting_config["payment_accounts"] == {}


def test_a_danish_shops_settings_speak_of_its_system_and_a_cvr_number(client, shop):
    # The switches of Payday alone (e-mail, stock) are hidden; automatic processing follows the
    # chosen system's connection, not Payday's; the company field holds a CVR number.
    shop_settings.save(shop["id"], accounting="billy", accounting_config={"access_token": "t", "products": {"25": "p"}})
    html = page(client, "/settings", locale="en").get_data(as_text=True)
    assert "CVR number from the company field" in html and "kennitala from the company field" not in html
    assert "disabled" not in re.search(r'<s-switch id="auto-process"[^>]*>', html).group(0)
    assert re.search(r'<div data-system="payday" hidden>\s*<s-switch id="send-email"', html)
    assert "already entered in Billy by hand" in html


def test_a_danish_shops_status_filter_says_recorded_in_its_system(client, shop):
    shop_settings.save(shop["id"], accounting="billy", accounting_config={"access_token": "t"})
    html = page(client, "/", locale="en").get_data(as_text=True)
    assert "Recorded in Billy" in html and "Recorded in Payday" not in html
