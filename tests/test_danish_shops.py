"""Danish shops through the whole system (issue 12, points 4-6): D3 in its general form for a
Danish system, and the sandbox's Danish demo shop on Dinero. The Danish scenarios themselves
(tests/scenarios/dk_*.json, each played for e-conomic, Dinero and Billy) are in test_scenarios."""
from __future__ import annotations

import random

import pytest

from shopify_app import db, shop_settings
from shopify_app.sandbox import demo
from shopify_app.sandbox.accounting import danish
from shopify_app.sandbox.player import SHOP, Player, install_shop, run_worker_until_idle

RATE_KEYS = {"economic": "products", "dinero": "accounts", "billy": "products"}


@pytest.mark.parametrize("accounting", danish.SYSTEMS)
def test_a_rate_the_shop_mapped_to_nothing_is_failed_with_the_reason(danish_system, accounting):
    # D3, general form: the shop's config maps only 0 % to a product/account, so a 25 % line
    # cannot be booked; the case fails with the reason (decision._unbookable: Payday's fixed
    # rates give unsupported_vat_rate, a Danish shop's mapping unbookable_vat_rate, which says
    # what is mapped), and nothing reaches the system.
    shop_id = install_shop(danish_system, currency="DKK", taxes_included=True, gateways=["shopify_payments"],
                           accounting=accounting)
    config = shop_settings.load(shop_id).accounting_config
    config[RATE_KEYS[accounting]] = {"0": config[RATE_KEYS[accounting]]["0"]}
    shop_settings.save(shop_id, accounting_config=config)
    store = danish_system.shopify.store
    order = store.create_order(SHOP, {"name": "#1001", "currency": "DKK", "taxes_included": True,
                                      "customer": {"email": "mette@example.dk"},
                                      "lines": [{"sku": "UT-1", "title": "Uldtrøje", "price": "499.00", "quantity": 1,
                                                 "tax_rate": "25"}],
                                      "payment": {"gateway": "shopify_payments", "status": "success"}})
    store.apply(order, {"do": "refund", "lines": [{"sku": "UT-1", "quantity": 1}]})
    Player(danish_system)._deliver({}, random.Random(1), shop_id)

    with db.transaction() as conn:
        cases = conn.execute("SELECT status, reason FROM cases WHERE shop_id = %s", (shop_id,)).fetchall()
        sent = conn.execute("SELECT count(*) AS n FROM documents WHERE shop_id = %s AND accounting_id IS NOT NULL",
                            (shop_id,)).fetchone()["n"]
    assert [(c["status"], c["reason"]["code"]) for c in cases] == [("failed", "unbookable_vat_rate")]
    assert (str(cases[0]["reason"]["params"]["rate"]), cases[0]["reason"]["params"]["rates"]) == ("25", "0%")
    assert sent == 0 and danish_system.books(accounting).documents() == []


def test_the_sandbox_has_a_danish_demo_shop_on_dinero_beside_the_icelandic_one(shopify, payday, dinero_standin,
                                                                               danish_books, live_app):
    sandbox = demo.Sandbox(shopify=shopify, payday=payday, dinero=dinero_standin)
    sandbox.install(live_app.url)
    want = sandbox.tell()
    run_worker_until_idle()

    settings = shop_settings.load(_shop_id(demo.DK_SHOP))
    assert (settings.accounting, settings.vat_rates) == ("dinero", frozenset({0, 25}))
    danish_orders = {sandbox.orders[s["order"]["name"]].id for s in demo.DK_STORIES}
    assert {k: v for k, v in demo.case_statuses(danish_orders).items()} == {k: want[k] for k in danish_orders}
    assert shop_settings.load(_shop_id(demo.SHOP)).accounting == "payday"
    booked = dinero_standin.documents()
    assert booked and all(d["booked"] and d["currency"] == "DKK" for d in booked)
    returned = next(d for d in booked if d["reference"].startswith("#2001"))
    assert (returned["type"], returned["total"]) == ("credit_note", -499) and returned["credited_invoice"]


def _shop_id(domain: str) -> int:
    with db.transaction() as conn:
        return conn.execute("SELECT id FROM shops WHERE domain = %s", (domain,)).fetchone()["id"]
