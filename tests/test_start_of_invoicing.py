"""Where automatic invoicing begins: a refund made or a return closed before the shop's start
(its install, by default) was the bookkeeper's to enter, so Skilvís shows it as "none needed"
and sends nothing; moving the start back in Settings invoices that history, once."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from shopify_app import accounting, db, reconcile, shop_settings, shops
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"}, "currency": "ISK", "taxes_included": True,
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def cases():
    with db.transaction() as conn:
        return [(r["label"], r["status"], (r["reason"] or {}).get("code")) for r in conn.execute(
            "SELECT label, status, reason FROM cases ORDER BY id")]


def test_history_before_the_start_waits_until_the_merchant_moves_the_start_back(client, system, payday):
    store = system.shopify.store
    before_install = datetime.now(timezone.utc) - timedelta(hours=2)
    store.clock = lambda: before_install
    store.create_shop(SHOP, currency="ISK", taxes_included=True)
    known = store.create_order(SHOP, ORDER)
    store.apply(known, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    unseen = store.create_order(SHOP, {**ORDER, "name": "#1002"})
    store.apply(unseen, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 2}]})
    store.drain()   # no app was subscribed then
    store.clock = lambda: datetime.now(timezone.utc)
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    start = shop_settings.load(shop_id).invoices_from

    # A new refund on the old order must not invoice its old refund along with it.
    store.apply(known, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    system.shopify.deliver()
    run_worker_until_idle()
    assert len(payday.invoices) == 1   # the new refund only
    assert sorted(c[1:] for c in cases()) == [("created", None), ("none_needed", "before_start")]

    token = system.shopify.id_token(SHOP)
    headers = {"Authorization": f"Bearer {token}", "X-Skilvis-Locale": "en"}   # the English page's fetches
    page = client.get("/settings", query_string={"embedded": "1", "shop": SHOP, "id_token": token, "locale": "en"})
    today = start.astimezone(accounting.ZONES["payday"]).date()
    assert re.search(rf'<s-date-field id="invoices-from" name="invoices_from"[^>]* value="{today.isoformat()}"',
                     page.get_data(as_text=True))
    # The same day as shown keeps the exact moment; a day in the future or no date is refused.
    assert client.post("/api/settings", headers=headers, json={"invoices_from": today.isoformat()}).json["ok"]
    assert shop_settings.load(shop_id).invoices_from == start
    for bad, says in ((today + timedelta(days=1), "cannot begin in the future"), ("23.11.2026", "not a date")):
        refused = client.post("/api/settings", headers=headers, json={"invoices_from": str(bad), "locale": "en"})
        assert refused.status_code == 400 and says in refused.json["message"]

    saved = client.post("/api/settings", headers=headers,
                        json={"invoices_from": (today - timedelta(days=1)).isoformat()}).json
    assert saved["ok"] and "from Shopify again" in saved["message"]
    assert backfill_shown(client, token) == ("running", "Skilvís les pantanir frá og með")
    run_worker_until_idle()
    assert len(payday.invoices) == 3   # the old refund of the known order, and the order never seen
    assert backfill_shown(client, token) == ("done", "Pantanir frá og með")
    assert [c[1] for c in cases()] == ["created"] * 3
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM documents").fetchone()["n"] == 3

    # Moving it back again changes nothing that exists: nothing is invoiced twice.
    client.post("/api/settings", headers=headers, json={"invoices_from": (today - timedelta(days=2)).isoformat()})
    run_worker_until_idle()
    assert len(payday.invoices) == 3


def backfill_shown(client, token) -> tuple[str, str] | None:
    """What Settings says of the last history read: its state and how its sentence begins."""
    html = client.get("/settings", query_string={"embedded": "1", "shop": SHOP, "id_token": token, "locale": "is"})
    found = re.search(r'data-testid="backfill" data-state="(\w+)">\s*([^:(]+?)\s*\d', html.get_data(as_text=True))
    return (found.group(1), found.group(2)) if found else None


def test_a_history_read_that_fails_is_shown_and_asked_again_until_it_finishes(client, system, payday):
    store = system.shopify.store
    store.clock = lambda: datetime.now(timezone.utc) - timedelta(hours=2)
    store.create_shop(SHOP, currency="ISK", taxes_included=True)
    old = store.create_order(SHOP, ORDER)
    store.apply(old, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    store.drain()
    store.clock = lambda: datetime.now(timezone.utc)
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    token = system.shopify.id_token(SHOP)
    assert backfill_shown(client, token) is None

    system.shopify.fail_next(1, status=403)   # Shopify refuses the read (a scope): the job fails
    start = shop_settings.load(shop_id).invoices_from
    shop_settings.save(shop_id, invoices_from=start - timedelta(days=1))
    run_worker_until_idle()
    html = client.get("/settings", query_string={"embedded": "1", "shop": SHOP, "id_token": token, "locale": "is"})
    assert "er ekki lokið: Shopify neitaði Skilvís um aðgang" in html.get_data(as_text=True)
    assert payday.invoices == []

    reconcile.reconcile_all()   # the periodic pass finds the read unfinished in Postgres
    run_worker_until_idle()
    assert backfill_shown(client, token) == ("done", "Pantanir frá og með")
    assert len(payday.invoices) == 1


def test_a_new_shop_starts_when_it_installs(system):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    assert shop_settings.load(shop_id).invoices_from == shops.get(SHOP)["created_at"]
