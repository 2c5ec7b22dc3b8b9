"""Issue 12, point 1: one neutral credit note, four systems. Payday sits behind the same
adapter interface as e-conomic, Dinero and Billy, and documents.py keeps one state machine."""
from __future__ import annotations

import inspect
import random

from shopify_app import accounting, documents, shop_settings
from shopify_app.accounting.payday.adapter import PaydayAdapter
from shopify_app.sandbox.player import SHOP, Player, install_shop


def test_every_system_is_an_adapter_of_the_one_interface(settings):
    for system in accounting.SYSTEMS:
        shop = shop_settings.ShopSettings(shop_id=1, accounting=system, payday_client_id="c",
                                          payday_client_secret="s", accounting_config={})
        adapter = accounting.for_shop(shop)
        assert adapter.system == system
        for name in ("send", "find", "test_connection", "bookable_rates", "record_booked", "follow_up"):
            assert callable(getattr(adapter, name)), (system, name)
        assert list(inspect.signature(adapter.send).parameters) == ["note", "journal"]
        assert list(inspect.signature(adapter.find).parameters) == ["note", "sent"]


def test_documents_know_no_system_by_name():
    # The state machine hands every system the same note; what is Payday's lives in accounting/payday.
    source = inspect.getsource(documents)
    assert "payday." not in source and "PaydayClient" not in source and "stock" not in source


def test_a_payday_shops_credit_invoice_goes_through_its_adapter(system, payday, monkeypatch):
    notes, journals = [], []
    send = PaydayAdapter.send

    def spying(self, note, journal=None):
        notes.append(note)

        def noted(request, **columns):
            journals.append((request, columns))
            journal(request, **columns)
        return send(self, note, noted)
    monkeypatch.setattr(PaydayAdapter, "send", spying)
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, {"name": "#1001", "currency": "ISK", "taxes_included": True,
                                      "customer": {"email": "anna@example.is"},
                                      "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 1,
                                                 "tax_rate": "24"}],
                                      "payment": {"gateway": "shopify_payments", "status": "success"}})
    store.apply(order, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    Player(system)._deliver({}, random.Random(1), shop_id)

    assert [(n.order_name, n.total, n.buyer.email) for n in notes] == [("#1001", -1990, "anna@example.is")]
    (request, columns), = journals
    assert request["reference"] == notes[0].reference and columns["customer_by"] in ("email", "created")
    invoice, = [i for i in payday.invoices if i["reference"] == notes[0].reference]
    assert float(invoice["amountIncludingVat"]) == -1990
