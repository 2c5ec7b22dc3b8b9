"""The company's time (issue 12, point 4): a document is dated by the day of what happened in
Shopify where the books are kept, and the merchant reads times in it — Copenhagen's for a
Danish system, Reykjavik's for Payday."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from flask import g

from shopify_app import accounting, db, i18n
from shopify_app.sandbox.player import SHOP, Player, install_shop


def test_a_moment_near_midnight_falls_on_the_companys_own_day():
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
    assert accounting.local_day("payday", late) == date(2026, 11, 30)   # Iceland keeps UTC
    assert {accounting.local_day(system, late) for system in ("economic", "dinero", "billy")} == {date(2026, 12, 1)}
    summer = datetime(2026, 6, 30, 22, 30, tzinfo=timezone.utc)            # CEST, two hours ahead
    assert accounting.local_day("dinero", summer) == date(2026, 7, 1)


@pytest.mark.parametrize(("system_name", "days_later"), [("payday", 0), ("dinero", 1)])
def test_a_refund_made_late_in_the_evening_is_dated_by_the_books_day(danish_system, system_name, days_later):
    now = datetime.now(timezone.utc)
    late = (now + timedelta(hours=1)).replace(hour=23, minute=30, second=0, microsecond=0)   # after the install
    shop_id = install_shop(danish_system, currency="DKK" if system_name == "dinero" else "ISK", taxes_included=True,
                           gateways=["shopify_payments"], accounting=system_name)
    store = danish_system.shopify.store
    order = store.create_order(SHOP, {"name": "#1001", "currency": "DKK" if system_name == "dinero" else "ISK",
                                      "taxes_included": True, "customer": {"email": "mette@example.dk"},
                                      "lines": [{"sku": "UT-1", "title": "Uldtrøje", "price": "499.00", "quantity": 1,
                                                 "tax_rate": "25" if system_name == "dinero" else "24"}],
                                      "payment": {"gateway": "shopify_payments", "status": "success"}})
    store.clock = lambda: late
    try:
        store.apply(order, {"do": "refund", "lines": [{"sku": "UT-1", "quantity": 1}]})
    finally:
        store.clock = lambda: datetime.now(timezone.utc)
    Player(danish_system)._deliver({}, random.Random(1), shop_id)

    with db.transaction() as conn:
        dated = conn.execute("SELECT document_date FROM documents WHERE shop_id = %s", (shop_id,)).fetchone()
    assert dated["document_date"] == late.date() + timedelta(days=days_later)


@pytest.mark.parametrize(("system_name", "shown"), [("payday", "30. nóv. 2026 kl. 23:30"),
                                                     ("dinero", "1. des. 2026 kl. 00:30")])
def test_the_merchant_reads_times_in_the_companys_time(danish_system, app, system_name, shown):
    install_shop(danish_system, currency="DKK", taxes_included=True, gateways=["shopify_payments"],
                 accounting=system_name)
    with app.test_request_context("/"):
        g.shop = SHOP
        assert i18n.when(datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc), "is") == shown
