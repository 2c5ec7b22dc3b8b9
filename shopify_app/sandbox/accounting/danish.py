"""A Danish shop's books in the stand-ins of e-conomic, Dinero and Billy, for the scenario player
and the sandbox: the company as a merchant set it up (credentials, a product or account for
25 % and for 0 % VAT, one for shipping and one for fees, a default customer), the sale
invoice the shop's own integration made for an order, and what the system holds read back in
the player's neutral form (../shared/scenarios/README.md, "Output").

Two system documents for one of ours (Dinero and Billy make an exchange, or a return with a fee,
into a credit note for what comes back and an invoice for what goes out) are read back as ONE
neutral document: its lines are both documents' lines in our line order, its total their sum
(the money that moved). A scenario's expected documents are thus the same for every system."""
from __future__ import annotations

import os
from decimal import ROUND_HALF_UP, Decimal

from ...accounting import billy as billy_adapter
from ...accounting import dinero as dinero_adapter
from ...money import to_money

SYSTEMS = ("economic", "dinero", "billy")
ENV = {"economic": ("ECONOMIC_BASE_URL",), "dinero": ("DINERO_BASE_URL",), "billy": ("BILLY_BASE_URL",)}
# The suffix each adapter adds to our reference on the invoice half of a split note.
CHARGE_SUFFIX = {"economic": None, "dinero": dinero_adapter.CHARGE_SUFFIX, "billy": billy_adapter.CHARGE_SUFFIX}

ECONOMIC = ("skilvis-app-secret", "skilvis-grant-token")
DINERO_CLIENT = ("skilvis-dinero-client", "skilvis-dinero-secret")
DINERO_ORG, DINERO_KEY = 4711, "skilvis-dinero-api-key"
BILLY_TOKEN = "skilvis-billy-token"
DEFAULT_CUSTOMER = "Webshop-kunde"
CENT = Decimal("0.01")


def point_env(standins: dict, environ=os.environ) -> None:
    """The adapters read their system's address from the environment (forked workers too)."""
    for name, standin in standins.items():
        if standin is not None:
            for var in ENV[name]:
                environ[var] = standin.url


def set_up(name: str, standin, gateways=(), *, currencies=("DKK",)) -> dict:
    """The company in the stand-in, as the merchant set it up; answers the shop's accounting_config.
    One shipping and one fee product or account, each with 25 % VAT, as a Danish merchant has
    them: a fee split over goods at two rates (R5) books its 0 % share on the 0 % one."""
    if name == "economic":
        standin.add_agreement(*ECONOMIC)
        standin.add_product("100", "Varer 25 % moms", vat_rate=25)
        standin.add_product("200", "Momsfrie varer", vat_rate=0)
        standin.add_product("300", "Fragt", vat_rate=25)
        standin.add_product("400", "Gebyrer", vat_rate=25)
        cash = standin.add_customer(name=DEFAULT_CUSTOMER)
        return {"app_secret_token": ECONOMIC[0], "agreement_grant_token": ECONOMIC[1], "layout_number": 19,
                "payment_terms_number": 1, "vat_zone_number": 1, "products": {"25": "100", "0": "200"},
                "shipping_product": "300", "fee_product": "400",
                "default_customer_number": cash["customerNumber"], "customer_group_number": 1,
                "currencies": list(currencies)}
    if name == "dinero":
        standin.add_client(*DINERO_CLIENT)
        standin.add_organization(DINERO_ORG, api_key=DINERO_KEY, name="Strikkestuen ApS")  # 1000: 25 %, 1010: 0 %
        standin.add_account(DINERO_ORG, 1100, "Fragt m/moms", vat_rate=25)
        standin.add_account(DINERO_ORG, 1200, "Gebyrer m/moms", vat_rate=25)
        cash = standin.add_contact(DINERO_ORG, Name=DEFAULT_CUSTOMER, CountryKey="DK")
        return {"client_id": DINERO_CLIENT[0], "client_secret": DINERO_CLIENT[1], "api_key": DINERO_KEY,
                "organization_id": DINERO_ORG, "accounts": {"25": 1000, "0": 1010},
                "shipping_account": 1100, "fee_account": 1200, "default_contact_guid": cash["ContactGuid"],
                "currencies": list(currencies)}
    if name == "billy":
        standin.add_organization(BILLY_TOKEN, name="Strikkestuen ApS")
        p25 = standin.add_product("Varer 25 % moms", vat_rate=25)
        p0 = standin.add_product("Momsfrie varer", vat_rate=0)
        shipping = standin.add_product("Fragt", vat_rate=25)
        fees = standin.add_product("Gebyrer", vat_rate=25)
        cash = standin.add_contact(DEFAULT_CUSTOMER)
        bank = standin.add_payment_account("Bank")
        return {"access_token": BILLY_TOKEN, "products": {"25": p25["id"], "0": p0["id"]},
                "shipping_product": shipping["id"], "fee_product": fees["id"],
                "default_contact_id": cash["id"], "payment_accounts": {g: bank["id"] for g in gateways},
                "currencies": list(currencies)}
    raise ValueError(f"no Danish stand-in {name!r}")


def order_total(spec: dict, taxes_included: bool = True) -> Decimal:
    """What the customer paid for the order, VAT included (the sale invoice's total)."""
    def gross(price, rate):
        price = Decimal(str(price))
        return price if taxes_included else price * (100 + Decimal(str(rate or 0))) / 100

    total = sum((gross(Decimal(str(ln["price"])) - Decimal(str(ln.get("discount") or 0)), ln.get("tax_rate"))
                 * int(ln["quantity"]) for ln in spec["lines"]), Decimal(0))
    if spec.get("shipping"):
        total += gross(spec["shipping"]["price"], spec["shipping"].get("tax_rate"))
    return total.quantize(CENT, ROUND_HALF_UP)


def add_sale_invoice(name: str, standin, config: dict, spec: dict, *, taxes_included: bool = True) -> dict:
    """The order's booked sale invoice, as the shop's own integration made it: for the buyer (a
    customer the system then knows by e-mail and CVR, so the credit note goes to the same one),
    marked with the order's name where each adapter looks for it (C7)."""
    total = order_total(spec, taxes_included)
    buyer = spec.get("customer") or {}
    email, cvr = buyer.get("email"), buyer.get("company")
    who = " ".join(x for x in (buyer.get("first_name"), buyer.get("last_name")) if x) or email or DEFAULT_CUSTOMER
    if name == "economic":
        number = config["default_customer_number"]
        if email or cvr:
            fields = {k: v for k, v in (("email", email), ("corporateIdentificationNumber", cvr)) if v}
            number = standin.add_customer(name=who, **fields)["customerNumber"]
        net = (total / Decimal("1.25")).quantize(CENT, ROUND_HALF_UP)
        return standin.add_sale_invoice(spec["name"], customer_number=number, lines=[("100", 1, net)])
    if name == "dinero":
        contact = config["default_contact_guid"]
        if email or cvr:
            fields = {k: v for k, v in (("Email", email), ("VatNumber", cvr)) if v}
            contact = standin.add_contact(DINERO_ORG, Name=who, CountryKey="DK", IsPerson=not cvr, **fields)["ContactGuid"]
        return standin.add_sale_invoice(DINERO_ORG, spec["name"], total=total, contact_guid=contact)
    if name == "billy":
        contact = config["default_contact_id"]
        if email or cvr:
            contact = standin.add_contact(who, email=email, registration_no=cvr)["id"]
        return standin.add_sale_invoice(spec["name"], contact, [(config["products"]["25"], total, 1,
                                                                 f"Ordre {spec['name']}")])
    raise ValueError(f"no Danish stand-in {name!r}")


def is_credit(line: dict) -> bool:
    """The adapters' split of a note (dinero._split, BillyAdapter._is_credit): money back, goods back."""
    amount = Decimal(str(line["amount"]))
    return amount < 0 or (amount == 0 and int(line["quantity"]) < 0)


def read_back(name: str, standin, ours: list[dict], labels: dict, currency: str) -> list[dict]:
    """Every one of our documents the system holds, in the order the system made them, neutrally.

    Our `documents` row is matched by its reference (what each adapter writes where the system
    keeps it: references.other, ExternalReference, externalId/contactMessage), the invoice half
    of a split note by the reference plus the adapter's suffix; the row's stored number
    (accounting_number, the first document's) must be one of them, else the row is not this one."""
    held = standin.documents()
    suffix = CHARGE_SUFFIX[name]
    by_reference: dict[str, list[dict]] = {}
    for position, doc in enumerate(held):
        reference = doc.get("reference") or ""
        base = reference[:-len(suffix)] if suffix and reference.endswith(suffix) else reference
        by_reference.setdefault(base, []).append({**doc, "_position": position})
    result = []
    for row in ours:
        group = by_reference.get(row["reference"]) or []
        if not group or str(row["accounting_number"]) not in {str(d["number"]) for d in group}:
            continue
        # A credit note's lines come before the invoice's, each in our order (both adapters).
        group.sort(key=lambda d: (d["type"] != "credit_note", d["_position"]))
        kept = list(row["lines"])
        if len(group) > 1 or (name != "economic" and group[0]["type"] == "invoice"):
            order = sorted(range(len(kept)), key=lambda i: (not is_credit(kept[i]), i))
        else:
            order = list(range(len(kept)))
        sent = [line for doc in group for line in doc["lines"]]
        lines: list[dict | None] = [None] * len(kept)
        extra = []
        for n, line in enumerate(sent):
            amount = to_money(str(Decimal(str(line["quantity"])) * Decimal(str(line["unit_price_incl_vat"]))),
                              currency)
            if n >= len(order):     # e-conomic's øre line: not one of ours
                extra.append({"kind": "rounding", "sku": None, "quantity": 1, "amount": str(amount),
                              "tax_rate": _rate(line["vat_rate"])})
                continue
            mine = kept[order[n]]
            if name == "economic" and abs(amount - Decimal(str(mine["amount"]))) <= CENT:
                # e-conomic holds net unit prices and rounds VAT once per invoice: a line's
                # VAT-included amount is ours to the øre, and the document's total (read from
                # e-conomic, below) is where a real difference shows.
                amount = Decimal(str(mine["amount"]))
            lines[order[n]] = {"kind": mine["kind"], "sku": mine["sku"], "quantity": int(mine["quantity"]),
                               "amount": str(amount), "tax_rate": _rate(line["vat_rate"])}
        lines = [ln for ln in lines if ln is not None] + extra
        total = sum((Decimal(str(d["total"])) for d in group), Decimal(0))
        result.append({
            "_position": group[0]["_position"],
            "trigger": row["trigger"], "customer": {"by": _customer_by(row, group, name)},
            "return": labels.get(row["return_gid"]), "number": str(row["accounting_number"]),
            "lines": lines, "total": str(to_money(str(total), currency)),
        })
    result.sort(key=lambda d: d.pop("_position"))
    return result


def _customer_by(row: dict, group: list[dict], name: str) -> str:
    """The Danish adapters find the buyer themselves (CVR, e-mail, else created) and do not say
    how: "default" when the document went to the shop's default customer, else "buyer"."""
    if row.get("customer_by"):
        return row["customer_by"]
    return "default" if group[0].get("customer") in (DEFAULT_CUSTOMER, "1") else "buyer"


def _rate(value) -> str:
    rate = Decimal(str(value)).normalize()
    return str(rate.quantize(Decimal(1))) if rate == rate.to_integral_value() else str(rate)
