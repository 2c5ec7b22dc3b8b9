"""The sandbox's demo shops: `make run` without Shopify credentials starts the Shopify, Payday
and Dinero stand-ins beside the app, installs two shops — an Icelandic one on Payday (ISK, 24 %
and 11 %) and a Danish one on Dinero (DKK, 25 % and 0 %) — and plays a few short stories in each
through the real webhook endpoint and worker, so that every status a merchant can see is on
screen at once.

Everything here runs in the launcher process: the stand-ins keep their state in its memory,
and the web app (another process) reaches them over HTTP, as it would reach Shopify and Payday.
"""
from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field

import requests
from flask import Response, jsonify
from flask import request as flask_request

from .. import db, jobqueue, shop_settings, shops
from .accounting import danish
from .accounting.dinero import DineroStandin
from .accounting.payday import MSG_SETUP, PaydayStandin
from .shopify.standin import ShopifyStandin
from .system import SANDBOX_KEY, SANDBOX_SECRET

log = logging.getLogger(__name__)

SHOP = "skilvis-demo.myshopify.com"
SHOP_NAME = "Prjónastofan (sýnibúð)"
PAYDAY_CLIENT = ("skilvis-demo", "skilvis-demo-secret")
GATEWAYS = ("shopify_payments", "manual")
DK_SHOP = "skilvis-demo-dk.myshopify.com"
DK_SHOP_NAME = "Strikkestuen (demobutik)"


_ASCII = str.maketrans({"á": "a", "é": "e", "í": "i", "ó": "o", "ú": "u", "ý": "y", "ð": "d", "þ": "th",
                        "æ": "ae", "ö": "o"})


def _order(name, first, last, lines, shipping=None, *, domain="is", carrier=("Pósturinn", "24")):
    email = f"{first.lower().translate(_ASCII)}@example.{domain}"
    spec = {"name": name, "customer": {"email": email, "first_name": first, "last_name": last},
            "lines": [{"sku": sku, "title": title, "price": price, "quantity": qty, "tax_rate": rate}
                      for sku, title, price, qty, rate in lines],
            "payment": {"gateway": "shopify_payments", "status": "success"}}
    if shipping:
        spec["shipping"] = {"title": carrier[0], "price": shipping, "tax_rate": carrier[1]}
    return spec


def _dk_order(name, first, last, lines, shipping=None):
    return _order(name, first, last, lines, shipping, domain="dk", carrier=("PostNord", "25"))


# Each story: an order, what the merchant did in Shopify (scenario steps, ../shared/scenarios),
# and the statuses its cases end in. `payday` makes Payday misbehave for this order only.
STORIES = [
    {"order": _order("#1001", "Anna", "Jónsdóttir", [("LOPI-M", "Lopapeysa M", "18900", 2, "24")], "1500"),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "LOPI-M", "quantity": 1}]},
               {"do": "refund", "return": "R1", "lines": [{"sku": "LOPI-M", "quantity": 1}]},
               {"do": "return_close", "return": "R1"}],
     "expect": ["created"]},
    {"order": _order("#1002", "Bjarni", "Pálsson", [("BOLLI", "Kaffibolli", "2490", 4, "24"),
                                                     ("BOK-UPP", "Uppskriftabók", "4990", 1, "11")]),
     "steps": [{"do": "refund", "lines": [{"sku": "BOLLI", "quantity": 1}], "note": "Brotinn við afhendingu"}],
     "expect": ["created"]},
    {"order": _order("#1003", "Guðrún", "Sigurðardóttir", [("JAKKI", "Jakki", "15900", 1, "24")]),
     "steps": [{"do": "return_request", "return": "R1", "lines": [{"sku": "JAKKI", "quantity": 1}]},
               {"do": "return_decline", "return": "R1", "reason": "FINAL_SALE"}],
     "expect": ["none_needed"]},
    {"order": _order("#1004", "Helga", "Magnúsdóttir", [("SOKKAR", "Ullarsokkar", "2990", 3, "24")]),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "SOKKAR", "quantity": 2}]},
               {"do": "refund", "return": "R1", "lines": [{"sku": "SOKKAR", "quantity": 2}]}],
     "expect": ["open"]},
    {"order": _order("#1005", "Jón", "Einarsson", [("SKOR-40", "Skór 40", "5000", 1, "24")]),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "SKOR-40", "quantity": 1}],
                "exchange_lines": [{"sku": "STIGVEL-40", "title": "Stígvél 40", "price": "10000", "quantity": 1,
                                    "tax_rate": "24"}]},
               {"do": "return_close", "return": "R1"}],
     "expect": ["pending_settlement"]},
    {"order": _order("#1006", "Katrín", "Ólafsdóttir", [("KERTI", "Ilmkerti (innflutt, 10% VSK)", "3500", 2, "10")]),
     "steps": [{"do": "refund", "lines": [{"sku": "KERTI", "quantity": 1}]}],
     "expect": ["failed"]},
    {"order": _order("#1007", "Ólafur", "Gunnarsson", [("HUFA", "Húfa", "4990", 2, "24")]),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "HUFA", "quantity": 1}]},
               {"do": "refund", "return": "R1", "lines": [{"sku": "HUFA", "quantity": 1}]},
               {"do": "return_close", "return": "R1"}],
     "payday": "refuses_once", "expect": ["failed"]},
    {"order": _order("#1008", "Sigríður", "Karlsdóttir", [("VETTLINGAR", "Vettlingar", "3990", 1, "24")]),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "VETTLINGAR", "quantity": 1}]},
               {"do": "refund", "return": "R1", "lines": [{"sku": "VETTLINGAR", "quantity": 1}]},
               {"do": "return_close", "return": "R1"}],
     "payday": "unavailable", "expect": ["processing"]},
    # Nothing happened to this one yet: for a credit by hand, or a return made in the panel.
    {"order": _order("#1009", "Þórður", "Benediktsson", [("TEPPI", "Ullarteppi", "24900", 1, "24"),
                                                          ("PUDI", "Púði", "6990", 2, "24")], "1500"),
     "steps": [], "expect": []},
]


# The Danish shop's stories, on Dinero: each order has the booked sale invoice its own
# integration made, so a credit note is linked to it (CreditNoteFor).
DK_STORIES = [
    {"order": _dk_order("#2001", "Mette", "Jensen", [("UT-M", "Uldtrøje, blå, M", "499.00", 2, "25")], "39.00"),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "UT-M", "quantity": 1}]},
               {"do": "refund", "return": "R1", "lines": [{"sku": "UT-M", "quantity": 1}]},
               {"do": "return_close", "return": "R1"}],
     "expect": ["created"]},
    {"order": _dk_order("#2002", "Lars", "Nielsen", [("MAG-1", "Strikkemagasin (momsfrit)", "45.00", 1, "0"),
                                                     ("PINDE-4", "Strikkepinde 4 mm", "129.00", 1, "25")]),
     "steps": [{"do": "refund", "lines": [{"sku": "MAG-1", "quantity": 1}], "note": "Beskadiget ved levering"}],
     "expect": ["created"]},
    {"order": _dk_order("#2003", "Sofie", "Hansen", [("HUE", "Hue", "249.00", 1, "25")]),
     "steps": [{"do": "return_open", "return": "R1", "lines": [{"sku": "HUE", "quantity": 1}],
                "exchange_lines": [{"sku": "CARD-M", "title": "Cardigan, grå, M", "price": "799.00", "quantity": 1,
                                    "tax_rate": "25"}]},
               {"do": "return_close", "return": "R1"}],
     "expect": ["pending_settlement"]},
    {"order": _dk_order("#2004", "Anders", "Møller", [("VANTER", "Vanter", "199.00", 1, "25")]),
     "steps": [{"do": "return_request", "return": "R1", "lines": [{"sku": "VANTER", "quantity": 1}]},
               {"do": "return_decline", "return": "R1", "reason": "FINAL_SALE"}],
     "expect": ["none_needed"]},
    # A rate the shop mapped to no Dinero account (D3): failed, with the reason.
    {"order": _dk_order("#2005", "Emma", "Larsen", [("LYS", "Duftlys (12 % moms i Shopify)", "149.00", 2, "12")]),
     "steps": [{"do": "refund", "lines": [{"sku": "LYS", "quantity": 1}]}],
     "expect": ["failed"]},
    {"order": _dk_order("#2006", "Jonas", "Pedersen", [("PLAID", "Uldplaid", "899.00", 1, "25"),
                                                       ("PUDE", "Pude", "299.00", 2, "25")], "39.00"),
     "steps": [], "expect": []},
]


@dataclass
class Sandbox:
    shopify: ShopifyStandin
    payday: PaydayStandin
    dinero: DineroStandin | None = None
    # Order name -> how Payday treats its invoice creates (see _payday_misbehaves).
    payday_trouble: dict = field(default_factory=dict)
    orders: dict = field(default_factory=dict)   # order name -> the stand-in's order

    @classmethod
    def start(cls, environ=os.environ) -> "Sandbox":
        """Start both stand-ins on free loopback ports and point the app's settings at them
        (in `environ`, which the web and worker processes inherit)."""
        shopify = ShopifyStandin(SANDBOX_KEY, SANDBOX_SECRET)
        payday = PaydayStandin(number_delay=0)
        sandbox = cls(shopify=shopify, payday=payday, dinero=DineroStandin())
        # Flask takes new routes and hooks only before an app's first request.
        add_order_details_route(shopify)
        payday.app.before_request(sandbox._payday_misbehaves)
        shopify.start()
        payday.start()
        sandbox.dinero.start()
        danish.point_env({"dinero": sandbox.dinero}, environ)
        environ.update(SHOPIFY_API_KEY=SANDBOX_KEY, SHOPIFY_API_SECRET=SANDBOX_SECRET,
                       SHOPIFY_SHOP_URL_TEMPLATE=shopify.shop_url_template, PAYDAY_BASE_URL=payday.url,
                       SKILVIS_SANDBOX="1")
        environ.setdefault("SESSION_SECRET", secrets.token_urlsafe(32))   # the web's workers share it
        environ.pop("SHOPIFY_API_SECRET_OLD", None)
        return sandbox

    def stop(self) -> None:
        self.shopify.stop()
        self.payday.stop()
        if self.dinero is not None:
            self.dinero.stop()
        # The embedded Redis shuts down with its last handle only when no other client is
        # connected: the demo's own connection would keep it alive after Ctrl-C.
        jobqueue.redis_connection().connection_pool.disconnect()
        db.close_pools()

    # --- Payday misbehaving for one order --------------------------------------------------

    def _payday_misbehaves(self):
        """Runs after the stand-in's own gate: a create of an invoice whose reference names a
        troubled order is refused (once: Payday's setup is unfinished, so Retry succeeds), or
        answered 503 for as long as the sandbox runs (the document keeps retrying)."""
        if flask_request.method != "POST" or flask_request.path != "/invoices" or not self.payday_trouble:
            return None
        body = flask_request.get_json(silent=True) or {}
        order_name = str(body.get("reference") or "").split(" ")[0]
        trouble = self.payday_trouble.get(order_name)
        if trouble == "refuses_once":
            del self.payday_trouble[order_name]
            return _plain(401, MSG_SETUP)
        if trouble == "unavailable":
            return _plain(503, "Service Unavailable")
        return None

    # --- the demo shop ---------------------------------------------------------------------

    def install(self, app_url: str) -> int:
        """Forget an earlier run's demo shops, then install them as Shopify does (an embedded
        load whose ID token is exchanged): the Icelandic one connected to the Payday stand-in,
        the Danish one (when the Dinero stand-in runs) to Dinero's."""
        with db.transaction() as conn:
            conn.execute("DELETE FROM shops WHERE domain = ANY(%s)", ([SHOP, DK_SHOP],))
            conn.execute("DELETE FROM webhook_events WHERE shop_domain = ANY(%s)", ([SHOP, DK_SHOP],))
        jobqueue.queue().empty()   # jobs of the forgotten shops' orders
        self.shopify.webhook_url = f"{app_url}/webhooks"
        self.shopify.compliance_webhook_url = f"{app_url}/webhooks/compliance"
        if self.dinero is not None:
            self.install_danish(app_url)
        shop_id = self._install(app_url, SHOP, SHOP_NAME, "ISK", "is")
        self.payday.add_client(*PAYDAY_CLIENT)
        mapping = {gateway: self.payday.add_payment_type(title, client_id=PAYDAY_CLIENT[0])["id"]
                   for gateway, title in zip(GATEWAYS, ("Greiðslukort", "Millifærsla"))}
        shop_settings.save(shop_id, payday_client_id=PAYDAY_CLIENT[0], payday_client_secret=PAYDAY_CLIENT[1],
                           payday_environment="test", payment_types=mapping, send_email=False, auto_process=True,
                           payday_app="not_installed")
        return shop_id

    def _install(self, app_url: str, domain: str, name: str, currency: str, locale: str) -> int:
        self.shopify.store.create_shop(domain, currency=currency, taxes_included=True, name=name)
        resp = requests.get(f"{app_url}/", params={"embedded": "1", "shop": domain, "locale": locale,
                                                   "id_token": self.shopify.id_token(domain)}, timeout=30)
        shop = shops.get(domain)
        if not shops.is_installed(shop):   # the page itself may fail; the install is what counts here
            resp.raise_for_status()
            raise RuntimeError(f"the embedded load did not install {domain}")
        if resp.status_code != 200:
            log.warning("the app's home page answered %s to the demo install of %s", resp.status_code, domain)
        return shop["id"]

    def install_danish(self, app_url: str) -> int:
        """The Danish demo shop, its company set up in the Dinero stand-in (accounts for 25 % and
        0 %, shipping and fees, a default contact) and connected in its settings."""
        shop_id = self._install(app_url, DK_SHOP, DK_SHOP_NAME, "DKK", "da")
        self.dinero.reset()
        config = danish.set_up("dinero", self.dinero, gateways=GATEWAYS)
        shop_settings.save(shop_id, accounting="dinero", accounting_config=config, send_email=False,
                           auto_process=True)
        return shop_id

    def play(self, timeout: float = 60.0) -> None:
        """Play every story; webhooks go to the app after each step, the worker does the rest.
        Returns once every order's cases show the statuses its story ends in."""
        want = self.tell()
        deadline = time.monotonic() + timeout
        while True:
            got = case_statuses(want)
            if got == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo stories did not reach their statuses: expected {want}, got {got}")
            time.sleep(0.2)

    def tell(self) -> dict[int, list[str]]:
        """Make every story's order and do its steps in the Shopify stand-in (each step's webhooks
        delivered); answers Shopify order id -> the statuses its cases are to end in."""
        store = self.shopify.store
        played = [(SHOP, "ISK", STORIES)] + ([(DK_SHOP, "DKK", DK_STORIES)] if self.dinero is not None else [])
        want = {}
        for domain, currency, stories in played:
            if domain == DK_SHOP:
                config = shop_settings.load(shops.get(DK_SHOP)["id"]).accounting_config
            for story in stories:
                if domain == DK_SHOP:   # the sale invoice the shop's own Dinero integration made
                    danish.add_sale_invoice("dinero", self.dinero, config, story["order"])
                order = store.create_order(domain, {**story["order"], "currency": currency, "taxes_included": True})
                self.orders[order.name] = order
                if story.get("payday"):
                    self.payday_trouble[order.name] = story["payday"]
                for step in story["steps"]:
                    store.apply(order, step)
                    self.shopify.deliver()
                want[order.id] = sorted(story["expect"])
        return want


def case_statuses(orders) -> dict[int, list[str]]:
    """Shopify order id -> the statuses of its cases, sorted."""
    found = {int(o): [] for o in orders}
    with db.transaction() as conn:
        for row in conn.execute(
                """SELECT o.legacy_id, c.status FROM cases c JOIN orders o ON o.id = c.order_id
                   JOIN shops s ON s.id = o.shop_id WHERE s.domain = ANY(%s) AND o.legacy_id = ANY(%s)""",
                ([SHOP, DK_SHOP], list(found))):
            found[int(row["legacy_id"])].append(row["status"])
    return {k: sorted(v) for k, v in found.items()}


def _plain(status: int, body: str):
    return Response(body, status=status, mimetype="text/plain")


def add_order_details_route(standin: ShopifyStandin) -> None:
    """The control API's order summary has no lines; the panel needs them to offer returns and
    refunds of what is actually left on an order."""
    store = standin.store

    def details(shop, order_id):
        with store.lock:
            order = store.order(order_id)
            if order.shop.domain != shop:
                return jsonify(error=f"order {order_id} is not {shop}'s"), 404
            items = [{"sku": li.sku, "title": li.title, "quantity": li.quantity,
                      "refunded": li.refunded_quantity, "returned": li.returned_quantity,
                      "exchange": li.exchange is not None} for li in order.line_items]
            rets = [{"label": r.label, "name": r.name, "status": r.status,
                     "lines": [{"sku": rl.line_item.sku, "title": rl.line_item.title, "quantity": rl.quantity,
                                "refunded": rl.refunded_quantity} for rl in r.lines]} for r in order.returns]
            totals = order.totals()
            pending = [str(t.amount) for t in order.transactions if t.status == "PENDING"]
            return jsonify(id=order.id, name=order.name, customer=order.customer, line_items=items, returns=rets,
                           shipping=[str(s.gross()) for s in order.shipping_lines],
                           outstanding=str(totals.outstanding), pending=pending,
                           financial_status=totals.financial_status)

    standin.app.add_url_rule("/_control/shops/<shop>/orders/<int:order_id>/details", "order_details", details)


def wait_for_web(url: str, timeout: float = 60.0, is_alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError("the web process exited")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer within {timeout:.0f}s")
