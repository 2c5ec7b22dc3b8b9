"""The scenario player (../shared/scenarios/README.md): plays a story of one order through the
real system — the Shopify stand-in changes the order and sends its signed webhooks over HTTP to
the app's real endpoint, real RQ workers do the work — and reads back what the shop's accounting
system holds: Payday, or (`"shop": {"accounting": "economic" | "dinero" | "billy"}`) the stand-in
of a Danish system (sandbox/accounting/danish.py)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from decimal import Decimal

import requests
from .. import db, dispatch, events, reconcile, shop_settings, shops
from ..money import to_money
from .accounting import danish
from .accounting.payday import PaydayStandin
from .shopify.standin import ShopifyStandin

SHOP = "skilvis-sandbox.myshopify.com"
PAYDAY_CLIENT = ("skilvis-sandbox", "skilvis-sandbox-secret")
VERBS = {"return_request", "return_open", "return_decline", "return_cancel", "refund", "pay", "settle",
         "return_close", "return_reopen"}


class ScenarioError(ValueError):
    """The scenario file is malformed."""


def check(scenario) -> None:
    if not isinstance(scenario, dict):
        raise ScenarioError("a scenario is a JSON object")
    for key in ("order", "steps"):
        if key not in scenario:
            raise ScenarioError(f"the scenario has no {key!r}")
    order = scenario["order"]
    if not isinstance(order, dict) or not order.get("lines"):
        raise ScenarioError("the order needs lines")
    for n, line in enumerate(order["lines"], 1):
        for key in ("sku", "price", "quantity"):
            if key not in line:
                raise ScenarioError(f"order line {n} has no {key!r}")
    if not isinstance(scenario["steps"], list):
        raise ScenarioError("steps is a list")
    for n, step in enumerate(scenario["steps"], 1):
        if not isinstance(step, dict) or step.get("do") not in VERBS:
            raise ScenarioError(f"step {n}: 'do' must be one of {', '.join(sorted(VERBS))}")
    accounting = (scenario.get("shop") or {}).get("accounting", "payday")
    if accounting not in ("payday",) + danish.SYSTEMS:
        raise ScenarioError(f"shop.accounting is one of payday, {', '.join(danish.SYSTEMS)}")
    delivery = scenario.get("delivery") or {}
    if not 0 <= float(delivery.get("drop", 0)) < 1 or int(delivery.get("duplicate", 1)) < 1:
        raise ScenarioError("delivery: duplicate ≥ 1 and 0 ≤ drop < 1")


@dataclass
class System:
    """The running system the player drives; the Danish systems' stand-ins where started."""
    app_url: str
    shopify: ShopifyStandin
    payday: PaydayStandin
    economic: Any = None
    dinero: Any = None
    billy: Any = None

    def books(self, accounting: str):
        """The stand-in of the shop's accounting system."""
        standin = getattr(self, accounting)
        if standin is None:
            raise RuntimeError(f"the {accounting} stand-in is not running")
        return standin


def run_worker_until_idle(connection=None) -> None:
    """Real work as the worker process does it (dispatcher and RQ jobs), until nothing is left;
    no debounce (every webhook of the step is in), and an order set aside for its shop's Shopify
    budget (a very long order read several times) is waited for, as a worker would."""
    dispatch.run_until_idle(connection, budget_wait=30.0)


DEFAULT_CUSTOMER = {"name": "Staðgreiðsluviðskiptavinur"}


def install_shop(system: System, *, currency: str, taxes_included: bool, gateways,
                 protected_customer_data: bool = True, domain: str = SHOP,
                 payday_client: tuple[str, str] = PAYDAY_CLIENT, accounting: str = "payday") -> int:
    """Install the shop the way Shopify does (an embedded load whose ID token is exchanged),
    then connect it to the Payday stand-in with a payment type for each gateway and the cash
    customer that invoices go to when Shopify withholds the buyer's details; or, for a Danish
    system, set its company up in the stand-in (danish.set_up) and connect the shop to it."""
    store = system.shopify.store
    if domain not in store.shops:
        store.create_shop(domain, currency=currency, taxes_included=taxes_included)
    store.shop(domain).protected_customer_data = protected_customer_data
    system.shopify.webhook_url = f"{system.app_url}/webhooks"
    system.shopify.compliance_webhook_url = f"{system.app_url}/webhooks/compliance"
    resp = requests.get(f"{system.app_url}/", params={"embedded": "1", "shop": domain,
                                                      "id_token": system.shopify.id_token(domain)}, timeout=30)
    resp.raise_for_status()
    shop_id = shops.get(domain)["id"]
    if accounting != "payday":
        danish.point_env({accounting: system.books(accounting)})
        config = danish.set_up(accounting, system.books(accounting), gateways=sorted(set(gateways)),
                               currencies=sorted({"DKK", currency}))
        shop_settings.save(shop_id, accounting=accounting, accounting_config=config, send_email=False,
                           auto_process=True)
        return shop_id
    client_id, secret = payday_client
    system.payday.add_client(client_id, secret)
    mapping = {gateway: system.payday.add_payment_type(f"Shopify: {gateway}", client_id=client_id)["id"]
               for gateway in sorted(set(gateways))}
    cash = system.payday.add_customer(client_id=client_id, **DEFAULT_CUSTOMER)
    shop_settings.save(shop_id, payday_client_id=client_id, payday_client_secret=secret,
                       payday_environment="test", payment_types=mapping, send_email=False, auto_process=True,
                       payday_default_customer_id=str(cash["id"]), payday_default_customer_name=cash["name"])
    return shop_id


class Player:
    def __init__(self, system: System):
        self.system = system

    def play(self, scenario: dict) -> dict:
        check(scenario)
        store = self.system.shopify.store
        shop_spec = scenario.get("shop") or {}
        currency = shop_spec.get("currency", "ISK")
        delivery = scenario.get("delivery") or {}
        rng = random.Random(delivery.get("seed", 1))
        gateway = (scenario["order"].get("payment") or {}).get("gateway", "shopify_payments")
        accounting = self.accounting = shop_spec.get("accounting", "payday")
        taxes_included = shop_spec.get("taxes_included", True)
        self.system.payday.configure(scenario.get("payday") or {})   # how unconfirmed Payday behaves
        if accounting != "payday":   # how the unconfirmed Danish system behaves (its stand-in's modes)
            self.system.books(accounting).configure(scenario.get(accounting) or {})
        shop_id = install_shop(self.system, currency=currency, taxes_included=taxes_included,
                               gateways=[gateway], accounting=accounting,
                               protected_customer_data=shop_spec.get("protected_customer_data", True))
        if accounting != "payday":   # the sale invoice the shop's own integration made (C7: credited)
            config = shop_settings.load(shop_id).accounting_config
            danish.add_sale_invoice(accounting, self.system.books(accounting), config, scenario["order"],
                                    taxes_included=taxes_included)
        order = store.create_order(SHOP, {**scenario["order"], "currency": currency,
                                          "taxes_included": taxes_included})
        self._deliver(delivery, rng, shop_id)
        seen, steps = 0, []
        for step in scenario["steps"]:
            store.apply(order, step)
            self._deliver(delivery, rng, shop_id)
            documents = self.documents(order)
            steps.append({"do": step["do"], "statuses": self.statuses(order), "new_documents": documents[seen:]})
            seen = len(documents)
        books = self.system.payday if accounting == "payday" else self.system.books(accounting)
        return {"steps": steps, "documents": self.documents(order), "statuses": self.statuses(order),
                "payday_faults": dict(self.system.payday.faults), "faults": dict(books.faults),
                "accounting": accounting}

    def _deliver(self, delivery: dict, rng: random.Random, shop_id: int) -> None:
        self.system.shopify.deliver(duplicate=int(delivery.get("duplicate", 1)), shuffle=bool(delivery.get("shuffle")),
                                    drop=float(delivery.get("drop", 0)), rng=rng)
        run_worker_until_idle()
        # Then the periodic reconciliation, as in production: it catches the webhooks a `drop`
        # lost, and a payment that settles in place, which no subscribed topic announces
        # (shopify.app.toml has no orders/updated).
        reconcile.reconcile_shop(shop_id)
        run_worker_until_idle()
        self._wait_out_retries()

    RETRY_ROUNDS = 5

    def _wait_out_retries(self) -> None:
        """Time passes until no document waits for its next attempt (a Payday answer lost, an
        outage that ended): each round brings the waiting attempts forward and runs the
        minute's sweep, the production path that retries them."""
        for _ in range(self.RETRY_ROUNDS):
            with db.transaction() as conn:
                waiting = conn.execute("""UPDATE documents SET next_attempt_at = now()
                                          WHERE status IN ('claimed', 'sending') AND next_attempt_at > now()
                                          RETURNING id""").fetchall()
            if not waiting:
                return
            events.sweep()
            run_worker_until_idle()

    def statuses(self, order) -> dict:
        labels = {f"gid://shopify/Return/{r.id}": r.label for r in order.returns}
        with db.transaction() as conn:
            rows = conn.execute("SELECT case_gid, status FROM cases WHERE case_gid = ANY(%s)", (list(labels),)).fetchall()
        found = {labels[r["case_gid"]]: r["status"] for r in rows}
        return {label: found.get(label, "open") for label in labels.values()}

    accounting = "payday"

    def documents(self, order) -> list[dict]:
        """Every document in the shop's system for this order, in order of creation, in neutral
        form: the amounts, quantities and numbers as the system holds them; kind, trigger and
        return from our record of what each line is."""
        labels = {f"gid://shopify/Return/{r.id}": r.label for r in order.returns}
        if self.accounting != "payday":
            with db.transaction() as conn:
                ours = conn.execute("""SELECT * FROM documents WHERE accounting_id IS NOT NULL
                                       AND accounting = %s ORDER BY id""", (self.accounting,)).fetchall()
            return danish.read_back(self.accounting, self.system.books(self.accounting), ours, labels,
                                    order.shop.currency)
        with db.transaction() as conn:
            ours = {r["accounting_id"]: r for r in conn.execute(
                "SELECT * FROM documents WHERE accounting_id IS NOT NULL")}
        currency = order.shop.currency
        result = []
        for invoice in self.system.payday.invoices:
            doc = ours.get(str(invoice["id"]))
            if doc is None:
                continue
            lines = []
            for sent, kept in zip(sorted(invoice["lines"], key=lambda ln: ln["position"]), doc["lines"]):
                amount = to_money(str(sent["amountIncludingVat"]), currency)
                quantity = int(Decimal(str(sent["quantity"])))
                if abs(kept["quantity"]) != quantity:   # booked as one unit (see invoicing.payday_lines)
                    quantity = abs(kept["quantity"])
                lines.append({"kind": kept["kind"], "sku": kept["sku"],
                              "quantity": -quantity if kept["quantity"] < 0 else quantity,
                              "amount": str(amount), "tax_rate": vat_rate(sent["vatPercentage"])})
            result.append({"trigger": doc["trigger"], "customer": {"by": doc["customer_by"]},
                           "return": labels.get(doc["return_gid"]),
                           "number": None if invoice.get("number") is None else str(invoice["number"]),
                           "lines": lines,
                           "total": str(sum((Decimal(ln["amount"]) for ln in lines), Decimal(0)))})
        return result


def vat_rate(value) -> str:
    rate = Decimal(str(value)).normalize()
    return str(rate.quantize(Decimal(1))) if rate == rate.to_integral_value() else str(rate)


def compare(result: dict, scenario: dict) -> list[str]:
    """Where a played scenario differs from its `expect`s (numbers are Payday's, not compared)."""
    problems = []
    expect = scenario.get("expect") or {}

    def strip(docs, like=None):
        """Numbers are Payday's; a key the expectation leaves out (an older file's `customer`) is not compared."""
        return [{k: v for k, v in d.items() if k != "number" and (want is None or k in want)}
                for d, want in zip(docs, like or [None] * len(docs))]

    if "documents" in expect:
        got = strip(result["documents"], expect["documents"]) if len(result["documents"]) == len(expect["documents"]) \
            else strip(result["documents"])
        if got != strip(expect["documents"]):
            problems.append(f"documents: expected {strip(expect['documents'])}, got {got}")
    if "statuses" in expect and result["statuses"] != expect["statuses"]:
        problems.append(f"statuses: expected {expect['statuses']}, got {result['statuses']}")
    for n, (step, played) in enumerate(zip(scenario["steps"], result["steps"]), 1):
        want = step.get("expect") or {}
        if "statuses" in want and played["statuses"] != want["statuses"]:
            problems.append(f"step {n} ({step['do']}): statuses {played['statuses']} != {want['statuses']}")
        if "new_documents" in want and len(played["new_documents"]) != want["new_documents"]:
            problems.append(f"step {n} ({step['do']}): {len(played['new_documents'])} new documents, "
                            f"expected {want['new_documents']}")
    return problems
