"""A local Billy (api.billysbilling.com/v2): a real HTTP server speaking the shapes of Billy's
API documentation (https://www.billy.dk/api/, stored copy in the code store) and refusing what
Billy refuses, so the Billy adapter is tested over the wire.

    standin = BillyStandin().start()                 # 127.0.0.1, a free port; standin.url
    org = standin.add_organization("token-1")        # one company per access token
    p25 = standin.add_product("Varer 25 %", vat_rate=25)
    bank = standin.add_payment_account("Bank")
    sale = standin.add_sale_invoice("#1001", contact_id, [(p25["id"], 500, 1, "Kjole")])
    ...
    standin.documents()                              # every invoice/credit note, neutrally
    standin.stop()

What it enforces (each rule, its evidence and the guesses: docs/BILLY_MODEL.md):
- `X-Access-Token` on every request (401 otherwise); the token names one organization.
- Create = `POST /v2/<plural>` with `{"<singular>": {...}}`; answers every changed record under
  plural keys (`invoices`, `invoiceLines`, ...) with `meta`; lists are paged (`page`, `pageSize`
  ≤ 1000, `meta.paging`).
- Invoices and credit notes are one resource: `type` invoice|creditNote, `contactId`,
  `entryDate`, `currencyId`, `paymentTermsDays` required, ≥ 1 line, each line a known
  `productId` and a `unitPrice`; `taxRate` comes from the product's sales-tax ruleset (a line's
  own `taxRateId` is read-only and ignored); `creditedInvoiceId` only on a credit note and only
  for an approved invoice of the same contact and currency.
- `state` draft → approved only; the number (`invoiceNo`) is given at approval from the
  organization's series (or taken from the body, unique); an approved invoice cannot be
  changed (only `sentState`/`contactMessage`) nor deleted.
- `POST /v2/bankPayments` with `associations[{subjectReference: "invoice:<id>"}]` moves the
  subject's `balance`/`isPaid`; the cash account must be payment-enabled.

Modes (the unconfirmed behaviours; DEFAULT_MODES are the harsher guesses, see the model file):
    external_id        "ignored" (not stored: the filter finds nothing) | "stored" | "refused" (422)
    credit_sign        "positive" (a credit note's lines must be positive; the type carries the
                       sign) | "negative" | "any"
    approve_on_create  "accepted" | "ignored" (a create is always a draft; approve with PUT)
    over_credit        "refused" (credits beyond the invoice's amount answer 422) | "accepted"
    lost_answers       0..1 share of committed creates whose answer is lost (seed repeats the draw)
    rate_limit         None or (requests, seconds): 429 with Retry-After beyond it
"""
from __future__ import annotations


import copy
import json
import random
import secrets
import time
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import Flask, Response, g, request

from .server import StandinServer, checked_mode

CENT = Decimal("0.01")
MAX_PAGE_SIZE = 1000
CURRENCIES = ("DKK", "EUR", "SEK", "NOK", "USD", "GBP", "ISK")
PAYMENT_TERMS_MODES = ("net", "netEndOfMonth", "lumpSum")  # [guess]: the docs name the field, not its values
MODE_VALUES = {
    "external_id": ("ignored", "stored", "refused"),
    "credit_sign": ("positive", "negative", "any"),
    "approve_on_create": ("accepted", "ignored"),
    "over_credit": ("refused", "accepted"),
}
DEFAULT_MODES = {
    "external_id": "ignored",     # not in the writable property table: the harsher guess
    "credit_sign": "positive",    # no evidence either way: refuse the other sign
    "approve_on_create": "accepted",
    "over_credit": "refused",
    "lost_answers": 0.0,
    "seed": 1,
    "rate_limit": None,           # none documented
}
HARSHEST_MODES = {**DEFAULT_MODES, "approve_on_create": "ignored", "lost_answers": 0.5, "rate_limit": (60, 60)}


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _invalid(message: str) -> _Refusal:
    # Billy's error envelope (errorCode/errorMessage, read by sigvardt/billy-mcp errors.py); the
    # words are [invented] in that style.
    return _Refusal(422, "VALIDATION_ERROR", message)


class Organization:
    def __init__(self, token: str, name: str, base_currency: str):
        self.id = _id()
        self.token = token
        self.name = name
        self.base_currency = base_currency
        self.next_invoice_no = 1
        self.contacts: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        self.rulesets: dict[str, dict] = {}
        self.tax_rates: dict[str, dict] = {}
        self.accounts: dict[str, dict] = {}
        self.invoices: list[dict] = []
        self.bank_payments: list[dict] = []


def _id() -> str:
    return secrets.token_urlsafe(15)[:20]


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _num(value, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _invalid(f"{what} is required.")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite():
        raise _invalid(f"{what} must be a number.")
    return number


def _is_date(value) -> bool:
    try:
        return isinstance(value, str) and len(value) == 10 and bool(date.fromisoformat(value))
    except ValueError:
        return False


def _float(value):
    return float(value) if isinstance(value, Decimal) else value


def _public(record: dict) -> dict:
    return {k: _float(copy.deepcopy(v)) if not isinstance(v, list) else [
        {kk: _float(vv) for kk, vv in item.items() if not kk.startswith("_")} if isinstance(item, dict) else item
        for item in v] for k, v in record.items() if not k.startswith("_")}


def _answer(status: int = 200, **roots) -> Response:
    body = {"meta": {"statusCode": status, "success": status < 400}, **roots}
    return Response(json.dumps(body, default=_float, ensure_ascii=False), status=status, mimetype="application/json")


def _error(exc: _Refusal) -> Response:
    body = {"meta": {"statusCode": exc.status, "success": False}, "errorCode": exc.code, "errorMessage": exc.message}
    return Response(json.dumps(body, ensure_ascii=False), status=exc.status, mimetype="application/json",
                    headers=exc.headers)


def _fault_response(fault: dict) -> Response:
    headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") is not None else {}
    code = "TOO_MANY_REQUESTS" if fault["status"] == 429 else "SERVER_ERROR"
    return _error(_Refusal(fault["status"], code, f"HTTP {fault['status']}", headers))


def _checked_rate_limit(value):
    if value is None:
        return None
    requests_, seconds = value
    return (int(requests_), float(seconds))


def _checked_mode(name: str, value):
    return checked_mode("Billy", MODE_VALUES, {"rate_limit": _checked_rate_limit}, name, value)


class BillyStandin(StandinServer):
    name = "billy"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default_modes: dict | None = None):
        self.default_modes = {**DEFAULT_MODES, **(default_modes or {})}
        super().__init__(host, port)
        self._clear()
        self.app = self._build_app()

    # --- lifecycle -------------------------------------------------------------------------

    def _clear(self) -> None:
        self.orgs: dict[str, Organization] = {}
        self.requests: list[dict] = []
        self._faults: list[dict] = []
        self._modes = dict(self.default_modes)
        self._rng = random.Random(self._modes["seed"])
        self._hits: list[tuple[str, float]] = []
        self.faults = {"lost_answers": 0, "rate_limited": 0}
        self.lost_answer_paths: tuple = ("POST /v2/invoices", "POST /v2/bankPayments")

    # --- modes -----------------------------------------------------------------------------

    @property
    def modes(self) -> dict:
        return dict(self._modes)

    def configure(self, modes: dict | None = None, **more) -> "BillyStandin":
        wanted = {**(modes or {}), **more}
        checked = {name: _checked_mode(name, value) for name, value in wanted.items()}
        with self._lock:
            self._modes.update(checked)
            if "seed" in checked or "lost_answers" in checked:
                self._rng = random.Random(self._modes["seed"])
        return self

    def harshest(self) -> "BillyStandin":
        return self.configure(HARSHEST_MODES)

    # --- setup (as the merchant made it in Billy) -----------------------------------------

    def add_organization(self, token: str, *, name: str = "Dansk Demo ApS", base_currency: str = "DKK",
                         next_invoice_no: int = 1) -> Organization:
        with self._lock:
            org = Organization(token, name, base_currency)
            org.next_invoice_no = next_invoice_no
            self.orgs[token] = org
            for rate in (Decimal(25), Decimal(0)):
                self._ruleset(org, rate)
            return org

    def organization(self, token: str | None = None) -> Organization:
        with self._lock:
            if token is None:
                if not self.orgs:
                    raise LookupError("no Billy organization in the stand-in")
                return next(iter(self.orgs.values()))
            return self.orgs[token]

    def add_product(self, name: str, *, vat_rate=25, token: str | None = None, product_no: str | None = None) -> dict:
        """A product whose sales-tax ruleset books `vat_rate` (Danish domestic sales)."""
        with self._lock:
            org = self.organization(token)
            ruleset = self._ruleset(org, Decimal(str(vat_rate)))
            product = {"id": _id(), "organizationId": org.id, "name": name, "description": None,
                       "accountId": None, "productNo": product_no, "salesTaxRulesetId": ruleset["id"],
                       "isArchived": False}
            org.products[product["id"]] = product
            return copy.deepcopy(product)

    def add_contact(self, name: str, *, registration_no: str | None = None, email: str | None = None,
                    country: str = "DK", token: str | None = None) -> dict:
        with self._lock:
            org = self.organization(token)
            persons = [{"name": name, "email": email, "isPrimary": True}] if email else []
            return _public(self._store_contact(org, {"name": name, "registrationNo": registration_no,
                                                     "countryId": country, "contactPersons": persons}))

    def add_payment_account(self, name: str = "Bank", *, token: str | None = None, enabled: bool = True) -> dict:
        with self._lock:
            org = self.organization(token)
            account = {"id": _id(), "organizationId": org.id, "name": name, "accountNo": 5800 + len(org.accounts),
                       "isPaymentEnabled": enabled, "isBankAccount": True, "currencyId": org.base_currency,
                       "isArchived": False}
            org.accounts[account["id"]] = account
            return dict(account)

    def add_sale_invoice(self, order_name: str, contact_id: str, lines, *, currency: str = "DKK",
                         entry_date: str | None = None, token: str | None = None, paid: bool = False) -> dict:
        """An approved sale invoice for a Shopify order (as Billy's own shop integration would
        have made it: the order name in `orderNo` [guess]). `lines`: (productId, unitPrice incl.
        VAT, quantity, description)."""
        with self._lock:
            org = self.organization(token)
            body = {"type": "invoice", "contactId": contact_id, "entryDate": entry_date or date.today().isoformat(),
                    "currencyId": currency, "paymentTermsDays": 8, "taxMode": "incl", "state": "approved",
                    "lines": [{"productId": p, "unitPrice": str(u), "quantity": q, "description": d}
                              for p, u, q, d in lines]}
            invoice, _ = self._create_invoice(org, body, modes={**self._modes, "approve_on_create": "accepted"})
            invoice["orderNo"] = order_name
            invoice["_seeded"] = True
            if paid:
                invoice["balance"], invoice["isPaid"] = Decimal(0), True
            return _public(invoice)

    # --- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after=None, paths=None) -> None:
        self._add_fault("fail", n, paths, status=status, retry_after=retry_after)

    def timeout_next(self, n: int = 1, seconds: float = 5.0, paths=None) -> None:
        self._add_fault("hold", n, paths, seconds=seconds)

    def fail_after_commit_next(self, n: int = 1, status: int | None = 502, paths=("POST /v2/invoices",)) -> None:
        """Carry out the next n matching requests, then answer `status` (or drop the
        connection when None): the caller cannot know it succeeded."""
        self._add_fault("after_commit", n, paths, status=status)

    def _rate_limited(self, token: str) -> float | None:
        """Seconds to wait when this token is over the (guessed) limit, else None."""
        with self._lock:
            limit = self._modes["rate_limit"]
            if not limit:
                return None
            allowed, window = limit
            now = time.monotonic()
            self._hits = [(t, at) for t, at in self._hits if now - at < window]
            mine = [at for t, at in self._hits if t == token]
            if len(mine) >= allowed:
                self.faults["rate_limited"] += 1
                return max(1.0, window - (now - mine[0]))
            self._hits.append((token, now))
            return None

    # --- read-back for tests and the scenario player ---------------------------------------

    def documents(self, token: str | None = None) -> list[dict]:
        """Every invoice and credit note, neutrally (see DK_COMMON: reference, number, type,
        total incl. VAT (negative for a credit note), currency, customer, credited invoice,
        lines with signed quantities, booked)."""
        with self._lock:
            orgs = [self.organization(token)] if token else list(self.orgs.values())
            out = []
            for org in orgs:
                for inv in org.invoices:
                    if inv["_seeded"]:
                        continue  # the shop's own sale invoices are not documents Skilvís made
                    credit = inv["type"] == "creditNote"
                    sign = Decimal(-1) if credit else Decimal(1)
                    credited = next((i for i in org.invoices if i["id"] == inv.get("creditedInvoiceId")), None)
                    out.append({
                        "reference": inv.get("externalId") or inv.get("_sent_external_id"),
                        "number": inv.get("invoiceNo"),
                        "type": "credit_note" if credit else "invoice",
                        "total": sign * inv["grossAmount"],
                        "currency": inv["currencyId"],
                        "customer": org.contacts[inv["contactId"]]["name"],
                        "credited_invoice": credited.get("invoiceNo") if credited else None,
                        "lines": [{"description": ln.get("description"), "quantity": sign * ln["quantity"],
                                   "unit_price_incl_vat": ln["_unit_incl"], "vat_rate": ln["_rate"]}
                                  for ln in inv["lines"]],
                        "booked": inv["state"] == "approved",
                    })
            return out

    def invoices(self, token: str | None = None) -> list[dict]:
        with self._lock:
            return [_public(i) for i in self.organization(token).invoices]

    # --- the WSGI app ----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("billy_standin")
        standin = self

        def gate():
            token = request.headers.get("X-Access-Token") or ""
            with standin._lock:
                g.org = standin.orgs.get(token)
            if g.org is None:
                return _error(_Refusal(401, "AUTHENTICATION_REQUIRED", "You must be authenticated to do this."))
            wait = standin._rate_limited(token)
            if wait is not None:
                return _error(_Refusal(429, "TOO_MANY_REQUESTS", "Too many requests",
                                       {"Retry-After": str(int(wait + 0.999))}))
            return None

        self.install_fault_hooks(
            app, _Refusal, refused=_error,
            not_found=lambda: _error(_Refusal(404, "ROUTE_NOT_FOUND", "Not found")),
            not_allowed=lambda: _error(_Refusal(405, "METHOD_NOT_ALLOWED", "Method not allowed")),
            held=lambda: _error(_Refusal(503, "SERVICE_UNAVAILABLE",
                                         "The stand-in was reset while holding this request")),
            failed=_fault_response,
            committed=lambda status: _error(_Refusal(status, "SERVER_ERROR", "Bad Gateway")),
            gate=gate)

        @app.get("/v2/organization")
        def organization():
            org = g.org
            return _answer(organization={"id": org.id, "name": org.name, "baseCurrencyId": org.base_currency,
                                         "countryId": "DK", "hasVat": True, "defaultTaxMode": "incl",
                                         "paymentTermsMode": "net", "paymentTermsDays": 8,
                                         "nextInvoiceNo": org.next_invoice_no, "isLocked": False})

        @app.get("/v2/currencies")
        def currencies():
            return _answer(currencies=[{"id": c, "name": c, "exchangeRate": None} for c in CURRENCIES])

        @app.get("/v2/products")
        def products():
            with standin._lock:
                return _paged("products", [_public(p) for p in g.org.products.values()])

        @app.get("/v2/salesTaxRulesets")
        def rulesets():
            with standin._lock:
                return _paged("salesTaxRulesets", [_public(r) for r in g.org.rulesets.values()])

        @app.get("/v2/taxRates")
        def tax_rates():
            with standin._lock:
                return _paged("taxRates", [_public(r) for r in g.org.tax_rates.values()])

        @app.get("/v2/accounts")
        def accounts():
            with standin._lock:
                return _paged("accounts", [dict(a) for a in g.org.accounts.values()])

        @app.get("/v2/contacts")
        def contacts():
            # No list filters are documented for contacts: any given is ignored [harsher guess].
            embed = "contact.contactPersons:embed" in (request.args.get("include") or "")
            with standin._lock:
                rows = []
                for c in g.org.contacts.values():
                    row = _public(c)
                    if not embed:
                        row.pop("contactPersons", None)
                    rows.append(row)
                return _paged("contacts", rows)

        @app.post("/v2/contacts")
        def create_contact():
            body = (g.body or {}).get("contact") if isinstance(g.body, dict) else None
            if not isinstance(body, dict):
                raise _invalid("The request body must have a contact root.")
            if not (body.get("name") or "").strip():
                raise _invalid("Name is required.")
            if not body.get("countryId"):
                raise _invalid("Country is required.")
            with standin._lock:
                contact = standin._store_contact(g.org, body)
                return _answer(contacts=[_public({k: v for k, v in contact.items() if k != "contactPersons"})],
                               contactPersons=[dict(p) for p in contact["contactPersons"]])

        @app.get("/v2/invoices")
        def list_invoices():
            with standin._lock:
                rows = standin._filtered(g.org, request.args)
                embed = "invoice.lines:embed" in (request.args.get("include") or "")
                return _paged("invoices", [_invoice_out(i, lines=embed) for i in rows])

        @app.get("/v2/invoices/<invoice_id>")
        def get_invoice(invoice_id):
            with standin._lock:
                inv = _find(g.org, invoice_id)
                return _answer(invoice=_invoice_out(inv, lines="invoice.lines:embed" in
                                                   (request.args.get("include") or "")))

        @app.post("/v2/invoices")
        def create_invoice():
            body = (g.body or {}).get("invoice") if isinstance(g.body, dict) else None
            if not isinstance(body, dict):
                raise _invalid("The request body must have an invoice root.")
            with standin._lock:
                inv, changed = standin._create_invoice(g.org, body, modes=standin._modes)
                return _answer(invoices=[_invoice_out(inv, lines=False)] + [_invoice_out(c, lines=False)
                                                                            for c in changed],
                               invoiceLines=[_public(ln) for ln in inv["lines"]])

        @app.put("/v2/invoices/<invoice_id>")
        def update_invoice(invoice_id):
            body = (g.body or {}).get("invoice") if isinstance(g.body, dict) else None
            if not isinstance(body, dict):
                raise _invalid("The request body must have an invoice root.")
            with standin._lock:
                inv = _find(g.org, invoice_id)
                changed = standin._update_invoice(g.org, inv, body)
                return _answer(invoices=[_invoice_out(inv, lines=False)] + [_invoice_out(c, lines=False)
                                                                            for c in changed])

        @app.delete("/v2/invoices/<invoice_id>")
        def delete_invoice(invoice_id):
            with standin._lock:
                inv = next((i for i in g.org.invoices if i["id"] == invoice_id), None)
                if inv is not None and inv["state"] != "draft":
                    raise _invalid("An approved invoice cannot be deleted. Create a credit note instead.")
                if inv is not None:  # DELETE is idempotent: an unknown id answers 200 too (billy.dk/api)
                    g.org.invoices.remove(inv)
                return Response(json.dumps({"meta": {"statusCode": 200, "success": True,
                                                     "deletedRecords": {"invoices": [invoice_id]}}}),
                                mimetype="application/json")

        @app.post("/v2/bankPayments")
        def create_bank_payment():
            body = (g.body or {}).get("bankPayment") if isinstance(g.body, dict) else None
            if not isinstance(body, dict):
                raise _invalid("The request body must have a bankPayment root.")
            with standin._lock:
                payment, subjects = standin._create_payment(g.org, body)
                return _answer(bankPayments=[_public(payment)],
                               invoices=[_invoice_out(s, lines=False) for s in subjects])

        return app

    # --- behaviour -------------------------------------------------------------------------

    def _ruleset(self, org: Organization, rate: Decimal) -> dict:
        found = next((r for r in org.rulesets.values() if r["_rate"] == rate), None)
        if found:
            return found
        tax_rate = {"id": _id(), "organizationId": org.id, "name": f"Salgsmoms {rate:g} %",
                    "abbreviation": f"S{rate:g}", "rate": rate / 100, "appliesToSales": True, "isActive": True}
        org.tax_rates[tax_rate["id"]] = tax_rate
        ruleset = {"id": _id(), "organizationId": org.id, "name": "Momsfri" if rate == 0 else f"Salgsmoms {rate:g} %",
                   "abbreviation": f"S{rate:g}", "fallbackTaxRateId": tax_rate["id"], "isPredefined": True,
                   "_rate": rate}
        org.rulesets[ruleset["id"]] = ruleset
        return ruleset

    def _store_contact(self, org: Organization, body: dict) -> dict:
        persons = []
        for raw in body.get("contactPersons") or []:
            if not isinstance(raw, dict) or not (raw.get("name") or raw.get("email")):
                raise _invalid("A contact person needs a name or an e-mail.")
            persons.append({"id": _id(), "name": raw.get("name"), "email": raw.get("email"),
                            "isPrimary": bool(raw.get("isPrimary"))})
        contact = {"id": _id(), "organizationId": org.id, "type": body.get("type") or "company",
                   "name": body["name"].strip(), "countryId": body.get("countryId"), "street": body.get("street"),
                   "cityText": body.get("cityText"), "zipcodeText": body.get("zipcodeText"),
                   "registrationNo": body.get("registrationNo"), "isCustomer": body.get("isCustomer", True),
                   "paymentTermsDays": body.get("paymentTermsDays"), "createdTime": _now_iso(),
                   "contactPersons": persons}
        for p in persons:
            p["contactId"] = contact["id"]
        org.contacts[contact["id"]] = contact
        return contact

    def _create_invoice(self, org: Organization, body: dict, *, modes: dict) -> tuple[dict, list[dict]]:
        kind = body.get("type") or "invoice"
        if kind not in ("invoice", "creditNote"):
            raise _invalid(f"Type '{kind}' is not valid.")
        if body.get("organizationId") not in (None, org.id):
            raise _Refusal(403, "FORBIDDEN", "You do not have access to this organization.")
        contact = org.contacts.get(body.get("contactId") or "")
        if contact is None:
            raise _invalid("Contact is required." if not body.get("contactId") else "Contact was not found.")
        if not _is_date(body.get("entryDate")):
            raise _invalid("Entry date is required (YYYY-MM-DD).")
        currency = body.get("currencyId")
        if not currency:
            raise _invalid("Currency is required.")
        if currency not in CURRENCIES:
            raise _invalid(f"Currency '{currency}' was not found.")
        if body.get("paymentTermsDays") is None or isinstance(body["paymentTermsDays"], bool) \
                or not isinstance(body["paymentTermsDays"], int):
            raise _invalid("Payment terms days is required.")
        mode = body.get("paymentTermsMode") or "net"
        if mode not in PAYMENT_TERMS_MODES:
            raise _invalid(f"Payment terms mode '{mode}' is not valid.")
        tax_mode = body.get("taxMode") or "incl"
        if tax_mode not in ("incl", "excl"):
            raise _invalid(f"Tax mode '{tax_mode}' is not valid.")
        state = body.get("state") or "draft"
        if state not in ("draft", "approved"):
            raise _invalid(f"State '{state}' is not valid.")
        if "externalId" in body and modes["external_id"] == "refused":
            raise _invalid("Property externalId is read-only.")
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _invalid("An invoice must have at least one line.")
        lines = [self._line(org, raw, pos, tax_mode) for pos, raw in enumerate(raw_lines, start=1)]
        if kind == "creditNote" and modes["credit_sign"] != "any":
            wrong = (lambda ln: ln["unitPrice"] < 0 or ln["quantity"] < 0) if modes["credit_sign"] == "positive" \
                else (lambda ln: ln["unitPrice"] > 0 and ln["quantity"] > 0)
            for pos, ln in enumerate(lines, start=1):
                if wrong(ln):
                    raise _invalid(f"Line {pos}: a credit note's lines must be "
                                   f"{'positive' if modes['credit_sign'] == 'positive' else 'negative'}; "
                                   f"the document type carries the sign.")  # [invented]
        credited = None
        if body.get("creditedInvoiceId"):
            if kind != "creditNote":
                raise _invalid("Only a credit note can credit an invoice.")
            credited = next((i for i in org.invoices if i["id"] == body["creditedInvoiceId"]), None)
            if credited is None or credited["type"] != "invoice" or credited["state"] != "approved":
                raise _invalid("The credited invoice must be an approved invoice.")
            if credited["contactId"] != contact["id"]:
                raise _invalid("A credit note must be for the credited invoice's contact.")
            if credited["currencyId"] != currency:
                raise _invalid("A credit note must be in the credited invoice's currency.")
        invoice_no = body.get("invoiceNo")
        if invoice_no is not None and any(i.get("invoiceNo") == str(invoice_no) for i in org.invoices):
            raise _invalid(f"Invoice number {invoice_no} is already used.")
        gross = sum((ln["_gross"] for ln in lines), Decimal(0))
        tax = sum((ln["tax"] for ln in lines), Decimal(0))
        if credited is not None and modes["over_credit"] == "refused":
            already = sum((i["grossAmount"] for i in org.invoices if i.get("creditedInvoiceId") == credited["id"]
                           and i["state"] == "approved"), Decimal(0))
            if already + abs(gross) > credited["grossAmount"]:
                raise _invalid("The credit note's amount exceeds what is left to credit on the invoice.")  # [invented]
        entry = date.fromisoformat(body["entryDate"])
        invoice = {
            "id": _id(), "organizationId": org.id, "type": kind, "createdTime": _now_iso(), "approvedTime": None,
            "contactId": contact["id"], "entryDate": body["entryDate"], "paymentTermsMode": mode,
            "paymentTermsDays": body["paymentTermsDays"],
            "dueDate": (entry + timedelta(days=body["paymentTermsDays"])).isoformat(),
            "state": "draft", "sentState": "unsent", "invoiceNo": None if invoice_no is None else str(invoice_no),
            "taxMode": tax_mode, "amount": gross - tax, "tax": tax, "grossAmount": gross, "currencyId": currency,
            "exchangeRate": 1.0 if currency == org.base_currency else body.get("exchangeRate") or 1.0,
            "balance": gross, "isPaid": False, "creditedInvoiceId": credited["id"] if credited else None,
            "contactMessage": body.get("contactMessage"),
            "lineDescription": ", ".join(ln.get("description") or "" for ln in lines)[:255],
            "externalId": body.get("externalId") if modes["external_id"] == "stored" else None,
            "orderNo": None, "lines": lines, "_sent_external_id": body.get("externalId"), "_seeded": False,
        }
        for ln in lines:
            ln["invoiceId"] = invoice["id"]
        org.invoices.append(invoice)
        changed = []
        if state == "approved" and modes["approve_on_create"] == "accepted":
            changed = self._approve(org, invoice)
        return invoice, changed

    def _line(self, org: Organization, raw, pos: int, tax_mode: str) -> dict:
        if not isinstance(raw, dict):
            raise _invalid(f"Line {pos} is not valid.")
        product = org.products.get(raw.get("productId") or "")
        if product is None:
            raise _invalid(f"Line {pos}: product is required." if not raw.get("productId")
                           else f"Line {pos}: product was not found.")
        unit = _num(raw.get("unitPrice"), f"Line {pos}: unit price")
        quantity = _num(raw.get("quantity") if raw.get("quantity") is not None else 1, f"Line {pos}: quantity")
        rate = org.rulesets[product["salesTaxRulesetId"]]["_rate"]
        tax_rate_id = org.rulesets[product["salesTaxRulesetId"]]["fallbackTaxRateId"]
        if tax_mode == "incl":
            gross = _money(unit * quantity)
            tax = _money(gross * rate / (100 + rate))
            unit_incl = unit
        else:
            net = _money(unit * quantity)
            tax = _money(net * rate / 100)
            gross = net + tax
            unit_incl = _money(unit * (100 + rate) / 100)
        return {"id": _id(), "productId": product["id"], "description": raw.get("description"),
                "quantity": quantity, "unitPrice": unit, "amount": gross - tax, "tax": tax,
                "taxRateId": tax_rate_id, "priority": pos, "_gross": gross, "_rate": rate, "_unit_incl": unit_incl}

    def _approve(self, org: Organization, invoice: dict) -> list[dict]:
        """draft → approved: numbered from the series, frozen; a credit note takes what it can
        off its invoice's balance [guess]. Answers the other invoices it changed."""
        invoice["state"] = "approved"
        invoice["approvedTime"] = _now_iso()
        if invoice["invoiceNo"] is None:
            while any(i.get("invoiceNo") == str(org.next_invoice_no) for i in org.invoices):
                org.next_invoice_no += 1
            invoice["invoiceNo"] = str(org.next_invoice_no)
            org.next_invoice_no += 1
        credited = next((i for i in org.invoices if i["id"] == invoice.get("creditedInvoiceId")), None)
        if credited is None:
            return []
        applied = min(credited["balance"], invoice["grossAmount"])
        credited["balance"] -= applied
        credited["isPaid"] = credited["balance"] <= 0
        invoice["balance"] = invoice["grossAmount"] - applied
        invoice["isPaid"] = invoice["balance"] <= 0
        return [credited]

    def _update_invoice(self, org: Organization, invoice: dict, body: dict) -> list[dict]:
        if invoice["state"] == "approved":
            frozen = [k for k in body if k not in ("id", "state", "sentState", "contactMessage")]
            if frozen or body.get("state") not in (None, "approved"):
                raise _invalid("An approved invoice cannot be changed.")
        if invoice["state"] == "draft" and body.get("state") not in (None, "draft", "approved"):
            raise _invalid(f"State '{body.get('state')}' is not valid.")
        for key in ("sentState", "contactMessage"):
            if key in body:
                invoice[key] = body[key]
        if "externalId" in body and self._modes["external_id"] == "stored" and invoice["state"] == "draft":
            invoice["externalId"] = body["externalId"]
        if invoice["state"] == "draft" and body.get("state") == "approved":
            return self._approve(org, invoice)
        return []

    def _create_payment(self, org: Organization, body: dict) -> tuple[dict, list[dict]]:
        account = org.accounts.get(body.get("cashAccountId") or "")
        if account is None or not account["isPaymentEnabled"]:
            raise _invalid("The cash account must be a payment-enabled account.")
        if not _is_date(body.get("entryDate")):
            raise _invalid("Entry date is required (YYYY-MM-DD).")
        amount = _num(body.get("cashAmount"), "Cash amount")
        side = body.get("cashSide")
        if side not in ("debit", "credit"):
            raise _invalid("Cash side must be debit or credit.")
        subjects = []
        for assoc in body.get("associations") or []:
            ref = (assoc or {}).get("subjectReference") or ""
            kind, _, subject_id = ref.partition(":")
            subject = next((i for i in org.invoices if i["id"] == subject_id), None) if kind == "invoice" else None
            if subject is None or subject["state"] != "approved":
                raise _invalid(f"Subject {ref} was not found or is not approved.")
            subjects.append(subject)
        if not subjects:
            raise _invalid("A payment needs at least one association.")
        for subject in subjects:
            # A deposit pays an invoice, a withdrawal pays out a credit note [guess].
            wanted = "credit" if subject["type"] == "creditNote" else "debit"
            if side != wanted:
                raise _invalid(f"A payment of a {subject['type']} must have cash side {wanted}.")
            subject["balance"] = max(Decimal(0), subject["balance"] - amount)
            subject["isPaid"] = subject["balance"] <= 0
        payment = {"id": _id(), "organizationId": org.id, "contactId": subjects[0]["contactId"],
                   "entryDate": body["entryDate"], "cashAmount": amount, "cashSide": side,
                   "cashAccountId": account["id"], "subjectCurrencyId": subjects[0]["currencyId"],
                   "isVoided": False, "createdTime": _now_iso(),
                   "associations": [{"subjectReference": f"invoice:{s['id']}"} for s in subjects]}
        org.bank_payments.append(payment)
        return payment, subjects

    def _filtered(self, org: Organization, args) -> list[dict]:
        """GET /v2/invoices with the documented list filters (billy.dk/api, invoices, List
        filters); filters not in that table are ignored."""
        rows = list(org.invoices)
        for name in ("contactId", "creditedInvoiceId", "state", "invoiceNo", "externalId", "currencyId"):
            if args.get(name):
                rows = [i for i in rows if str(i.get(name) or "") == args[name]]
        if args.get("minEntryDate"):
            rows = [i for i in rows if i["entryDate"] >= args["minEntryDate"]]
        if args.get("maxEntryDate"):
            rows = [i for i in rows if i["entryDate"] <= args["maxEntryDate"]]
        if args.get("isPaid") in ("true", "false"):
            rows = [i for i in rows if i["isPaid"] == (args["isPaid"] == "true")]
        q = (args.get("q") or "").strip().casefold()
        if q:
            def fields(i):
                return (i.get("invoiceNo"), i.get("orderNo"), _contact_name(org, i), i.get("lineDescription"),
                        i["grossAmount"] - i["tax"], i["grossAmount"], i["balance"])
            rows = [i for i in rows if any(q in str(v).casefold() for v in fields(i) if v is not None)]
        prop = args.get("sortProperty")
        if prop in ("entryDate", "createdTime", "invoiceNo", "approvedTime"):
            rows.sort(key=lambda i: str(i.get(prop) or ""), reverse=args.get("sortDirection") == "DESC")
        return rows


def _contact_name(org: Organization, invoice: dict) -> str:
    return org.contacts[invoice["contactId"]]["name"]


def _find(org: Organization, invoice_id: str) -> dict:
    found = next((i for i in org.invoices if i["id"] == invoice_id), None)
    if found is None:
        raise _Refusal(404, "RECORD_NOT_FOUND", f"Invoice {invoice_id} was not found.")
    return found


def _invoice_out(invoice: dict, *, lines: bool) -> dict:
    out = {k: _float(copy.deepcopy(v)) for k, v in invoice.items() if not k.startswith("_") and k != "lines"}
    out["amount"] = float(invoice["amount"])
    if lines:
        out["lines"] = [_public(ln) for ln in invoice["lines"]]
    return out


def _paged(root: str, rows: list) -> Response:
    try:
        page = max(1, int(request.args.get("page") or 1))
        size = int(request.args.get("pageSize") or MAX_PAGE_SIZE)
    except ValueError:
        raise _invalid("page and pageSize must be numbers.") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid(f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
    total = len(rows)
    count = max(1, -(-total // size))
    body = {"meta": {"statusCode": 200, "success": True,
                     "paging": {"page": page, "pageCount": count, "pageSize": size, "total": total}},
            root: rows[(page - 1) * size: page * size]}
    return Response(json.dumps(body, default=_float, ensure_ascii=False), mimetype="application/json")
