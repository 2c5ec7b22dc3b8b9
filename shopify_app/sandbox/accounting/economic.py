"""A local e-conomic (legacy REST, restapi.e-conomic.com): a real HTTP server speaking the shapes
of e-conomic's published REST documentation and refusing what e-conomic refuses, so the
e-conomic adapter is tested over the wire. Every behaviour, its evidence and the guess taken
where there is none (the harsher one): docs/ECONOMIC_MODEL.md.

    standin = EconomicStandin().start()            # 127.0.0.1, a free port; standin.url
    company = standin.add_agreement("app-secret", "grant-token")
    standin.add_product("1", "Varer 25 %", vat_rate=25)
    standin.add_customer(name="Kontantkunde")       # customerNumber 1
    standin.add_sale_invoice("#1001", customer_number=1, lines=[("1", 2, "80.00")])
    ...
    standin.documents()                             # every document, read back neutrally
    standin.stop()

Enforced: both token headers on every request (401 otherwise), JSON bodies on writes (415), no
explicit nulls, the required properties of POST /invoices/drafts and POST /customers, known
currency/customer/layout/payment terms/VAT zone/products, unitNetPrice with at most two
decimals, a description on every line with a product, lineNumber/sortKey on every line (mode),
filters only on filterable properties (400), pages of at most 1000. Booking (POST /invoices/booked)
numbers the invoice, removes the draft and freezes it: a booked invoice cannot be changed or
deleted. The Idempotency-Key header replays the first answer of a write (mode). A cost-based
token bucket per agreement answers 429 when spent.

Modes (unconfirmed behaviours; DEFAULT_MODES follow the evidence or the harsher guess):
    vat_rounding     "per_invoice" (VAT of each rate rounded once on the invoice) | "per_line"
    idempotency      "replay" (documented) | "ignored" (the key does nothing)
    line_numbers     "required" (a line without lineNumber/sortKey refused) | "optional"
    retry_after      True: a 429 carries Retry-After | False: it does not (harsher)
    lost_answers     0..1: share of committed creates/bookings whose answer is lost (seed repeats)
"""
from __future__ import annotations


import copy
import json
import random
import re
import time
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import Flask, Response, g, request

from .server import StandinServer

CENT = Decimal("0.01")
MAX_PAGE = 1000
DEFAULT_PAGE = 20
DEFAULT_MODES = {
    "vat_rounding": "per_invoice",   # no evidence either way; the adapter must not rely on per-line
    "idempotency": "replay",         # techtalk "Idempotency tokens in e-conomic APIs"; restdocs TL;DR
    "line_numbers": "required",      # third party: omitted lineNumber/sortKey fail "Integer 0 is less than minimum"
    "retry_after": False,            # nothing says a 429 carries Retry-After: the harsher guess
    "lost_answers": 0.0,
    "seed": 1,
}
MODE_VALUES = {"vat_rounding": ("per_invoice", "per_line"), "idempotency": ("replay", "ignored"),
               "line_numbers": ("required", "optional"), "retry_after": (True, False)}
HARSHEST_MODES = {**DEFAULT_MODES, "idempotency": "ignored", "lost_answers": 0.5}
# Token costs per call [guess]; Chift cites GET of one booked invoice at 13.
COSTS = {"GET one": 13, "GET list": 10, "POST": 25, "PUT": 25, "DELETE": 10}
BUCKET_CAPACITY = 2000       # Chift: 2,000 tokens per 60 s (a third party saw "of 10 000" on demo)
BUCKET_WINDOW = 60.0
CURRENCIES = ("DKK", "EUR", "SEK", "NOK", "USD", "GBP", "ISK")
# restdocs: filterable properties of the collections the adapter reads.
FILTERABLE = {
    "customers": ("customerNumber", "name", "email", "corporateIdentificationNumber", "vatNumber", "ean",
                  "currency", "customerGroup.customerGroupNumber"),
    "drafts": ("draftInvoiceNumber", "currency", "customer.customerNumber", "date", "references.other",
               "notes.heading", "notes.textLine1", "recipient.name"),
    "booked": ("bookedInvoiceNumber", "currency", "customer.customerNumber", "date", "references.other",
               "notes.heading", "notes.textLine1", "notes.textLine2", "recipient.name"),
    "products": ("productNumber", "name"),
}


class _Refusal(Exception):
    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def _validation(errors: dict, message: str = "Validation error.") -> _Refusal:
    """e-conomic's annotated error (restdocs "Annotated errors")."""
    return _Refusal(400, {"message": message, "developerHint": "Inspect validation errors and correct your request.",
                          "httpStatusCode": 400, "errors": errors})


def _field_error(code: str, message: str, value=None) -> dict:
    error = {"errorCode": code, "message": message}
    if value is not None:
        error["value"] = value
    return {"errors": [error]}


class Agreement:
    """One e-conomic agreement (company): its products, customers, drafts and booked invoices."""

    def __init__(self, app_secret: str, grant: str, name: str):
        self.app_secret, self.grant, self.name = app_secret, grant, name
        self.agreement_number = abs(hash(grant)) % 900000 + 100000
        self.products: dict[str, dict] = {}
        self.customers: dict[int, dict] = {}
        self.drafts: dict[int, dict] = {}
        self.booked: dict[int, dict] = {}
        self.layouts = {19: {"layoutNumber": 19, "name": "Standard"}}
        self.payment_terms = {1: {"paymentTermsNumber": 1, "name": "Netto 8 dage", "daysOfCredit": 8,
                                  "paymentTermsType": "net"}}
        self.vat_zones = {1: {"vatZoneNumber": 1, "name": "Domestic", "enabledForCustomer": True},
                          2: {"vatZoneNumber": 2, "name": "EU", "enabledForCustomer": True},
                          3: {"vatZoneNumber": 3, "name": "Abroad", "enabledForCustomer": True},
                          4: {"vatZoneNumber": 4, "name": "Domestic exempt", "enabledForCustomer": True}}
        self.customer_groups = {1: {"customerGroupNumber": 1, "name": "Danske kunder"}}
        self.next_draft = 1
        self.next_booked = 1
        self.next_customer = 1
        self.idempotency: dict[str, tuple[int, object]] = {}
        self.tokens = float(BUCKET_CAPACITY)
        self.tokens_at = time.monotonic()


def _json(status: int, body, headers: dict | None = None) -> Response:
    payload = "" if body is None else json.dumps(body, ensure_ascii=False, default=_plain)
    return Response(payload, status=status, mimetype="application/json", headers=headers or {})


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value))


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _has_null(node) -> bool:
    if node is None:
        return True
    if isinstance(node, dict):
        return any(_has_null(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_null(v) for v in node)
    return False


def _get(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _split_unescaped(text: str) -> list[tuple[str | None, str]]:
    """The filter's predicates with the logical operator before each (restdocs "Filtering"):
    `$$`, `$(`, `$)`, `$*`, `$,`, `$[`, `$]` are escapes, `$and:` / `$or:` join predicates."""
    parts, op, buf, i = [], None, "", 0
    while i < len(text):
        if text.startswith("$and:", i) or text.startswith("$or:", i):
            parts.append((op, buf))
            op = "and" if text.startswith("$and:", i) else "or"
            i += 5 if op == "and" else 4
            buf = ""
            continue
        if text[i] == "$" and i + 1 < len(text) and text[i + 1] in "$()*,[]":
            buf += "$" + text[i + 1]
            i += 2
            continue
        buf += text[i]
        i += 1
    parts.append((op, buf))
    return parts


_PREDICATE = re.compile(r"^([A-Za-z.]+)\$(eq|ne|gt|gte|lt|lte|like):(.*)$", re.S)


def _unescape(value: str) -> str:
    return re.sub(r"\$([$()*,\[\]])", r"\1", value)


def _matcher(filter_text: str | None, resource: str):
    if not filter_text:
        return lambda row: True
    predicates = []
    for op, text in _split_unescaped(filter_text):
        if text.startswith("(") or "$in:" in text or "$nin:" in text:
            raise _Refusal(400, {"message": "The stand-in does not parse this filter.", "httpStatusCode": 400})
        found = _PREDICATE.match(text)
        if not found:
            raise _Refusal(400, {"message": f"Invalid filter expression '{text}'.", "httpStatusCode": 400})
        prop, operator, raw = found.groups()
        if prop not in FILTERABLE[resource]:
            raise _Refusal(400, {"message": f"Property '{prop}' is not filterable.", "httpStatusCode": 400,
                                 "developerHint": "Find the filterable properties in the schema."})
        predicates.append((op, prop, operator, _unescape(raw)))

    def test(row, prop, operator, value) -> bool:
        have = _get(row, prop)
        if isinstance(have, (int, float, Decimal)) and not isinstance(have, bool):
            want = _decimal(value)
            have = Decimal(str(have))
            if want is None:
                return False
        else:  # strings compare case-insensitively (restdocs)
            have, want = str(have or "").casefold(), value.casefold()
        if operator == "like":
            pattern = "^" + ".*".join(re.escape(p) for p in str(want).split("*")) + "$" if "*" in str(want) \
                else ".*" + re.escape(str(want)) + ".*"
            return re.match(pattern, str(have), re.S) is not None
        return {"eq": have == want, "ne": have != want, "gt": have > want, "gte": have >= want,
                "lt": have < want, "lte": have <= want}[operator]

    def match(row) -> bool:
        result = None
        for op, prop, operator, value in predicates:
            hit = test(row, prop, operator, value)
            result = hit if result is None else (result and hit if op == "and" else result or hit)
        return bool(result)

    return match


class EconomicStandin(StandinServer):
    name = "economic"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, modes: dict | None = None):
        self.default_modes = {**DEFAULT_MODES, **(modes or {})}
        super().__init__(host, port)
        self._clear()
        self.app = self._build_app()

    # --- lifecycle -------------------------------------------------------------------------

    def _clear(self) -> None:
        self.agreements: dict[tuple[str, str], Agreement] = {}
        self.requests: list[dict] = []
        self._faults: list[dict] = []
        self.modes = dict(self.default_modes)
        self._rng = random.Random(self.modes["seed"])
        self.faults = {"lost_answers": 0}
        self.lost_answer_paths = ("POST /invoices/drafts", "POST /invoices/booked")
        self.bucket_capacity = BUCKET_CAPACITY

    def configure(self, modes: dict | None = None, **more) -> "EconomicStandin":
        wanted = {**(modes or {}), **more}
        for name, value in wanted.items():
            if name in MODE_VALUES and value not in MODE_VALUES[name]:
                raise ValueError(f"e-conomic stand-in mode {name}={value!r}: one of {MODE_VALUES[name]}")
            if name not in DEFAULT_MODES:
                raise ValueError(f"the e-conomic stand-in has no mode {name!r}")
        with self._lock:
            self.modes.update(wanted)
            if "seed" in wanted or "lost_answers" in wanted:
                self._rng = random.Random(self.modes["seed"])
        return self

    def harshest(self) -> "EconomicStandin":
        return self.configure(HARSHEST_MODES)

    # --- setup for tests -------------------------------------------------------------------

    def add_agreement(self, app_secret: str, grant: str, *, name: str = "Dansk Butik ApS") -> Agreement:
        with self._lock:
            agreement = Agreement(app_secret, grant, name)
            self.agreements[(app_secret, grant)] = agreement
            return agreement

    def agreement(self) -> Agreement:
        with self._lock:
            return next(iter(self.agreements.values()))

    def add_product(self, number: str, name: str, *, vat_rate=25, agreement: Agreement | None = None) -> dict:
        """A product whose product group books `vat_rate` % VAT in the domestic VAT zone."""
        with self._lock:
            target = agreement or self.agreement()
            product = {"productNumber": str(number), "name": name,
                       "productGroup": {"productGroupNumber": 1 if Decimal(str(vat_rate)) else 2},
                       "_vat": Decimal(str(vat_rate))}
            target.products[str(number)] = product
            return _public(product)

    def add_customer(self, *, agreement: Agreement | None = None, **fields) -> dict:
        with self._lock:
            target = agreement or self.agreement()
            customer = {"currency": "DKK", "customerGroup": {"customerGroupNumber": 1},
                        "paymentTerms": {"paymentTermsNumber": 1}, "vatZone": {"vatZoneNumber": 1}, **fields}
            return copy.deepcopy(self._store_customer(target, customer))

    def add_sale_invoice(self, order_name: str, *, customer_number: int, lines, day: str | None = None,
                         currency: str = "DKK", agreement: Agreement | None = None) -> dict:
        """A booked sale invoice for the order, marked in references.other with the order's name
        (as the shop's invoicing app is assumed to do). `lines`: (productNumber, quantity, unitNetPrice)."""
        with self._lock:
            target = agreement or self.agreement()
            customer = target.customers[int(customer_number)]
            body = {"date": day or date.today().isoformat(), "currency": currency,
                    "customer": {"customerNumber": int(customer_number)},
                    "recipient": {"name": customer["name"], "vatZone": {"vatZoneNumber": 1}},
                    "layout": {"layoutNumber": 19}, "paymentTerms": {"paymentTermsNumber": 1},
                    "references": {"other": order_name},
                    "lines": [{"lineNumber": n, "sortKey": n, "product": {"productNumber": str(p)},
                               "quantity": float(q), "unitNetPrice": float(Decimal(str(u))), "description": f"Vare {p}"}
                              for n, (p, q, u) in enumerate(lines, start=1)]}
            draft = self._create_draft(target, body)
            return _public(self._book(target, draft["draftInvoiceNumber"], None))

    # --- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after=None, body=None, paths=None) -> None:
        """The next n matching requests answer `status` without being carried out."""
        self._add_fault("fail", n, paths, status=status, retry_after=retry_after, body=body)

    def timeout_next(self, n: int = 1, seconds: float = 5.0, paths=None) -> None:
        """Hold the next n matching requests `seconds` before handling them."""
        self._add_fault("hold", n, paths, seconds=seconds)

    def fail_after_commit_next(self, n: int = 1, status: int | None = 502, paths=("POST /invoices/booked",)) -> None:
        """Carry out the next n matching requests, then answer `status` (None: drop the connection)."""
        self._add_fault("after_commit", n, paths, status=status)

    def spend_bucket(self, agreement: Agreement | None = None) -> None:
        """The agreement's token bucket is empty: the next call answers 429."""
        with self._lock:
            target = agreement or self.agreement()
            target.tokens, target.tokens_at = 0.0, time.monotonic()

    # --- read-back -------------------------------------------------------------------------

    def documents(self) -> list[dict]:
        """Every booked invoice, then every draft (booked False), neutrally: the scenario
        player reads each system back the same way. e-conomic links nothing: credited_invoice is
        always None (the adapter names the sale invoice in the heading, `notes`)."""
        with self._lock:
            out = []
            for agreement in self.agreements.values():
                for booked, rows in ((True, agreement.booked), (False, agreement.drafts)):
                    for number, invoice in sorted(rows.items()):
                        gross = invoice["grossAmount"]
                        out.append({
                            "reference": (invoice.get("references") or {}).get("other"),
                            "number": str(number) if booked else None,
                            "type": "credit_note" if gross < 0 else "invoice",
                            "total": gross, "currency": invoice["currency"],
                            "customer": str(invoice["customer"]["customerNumber"]),
                            "credited_invoice": None,
                            "notes": copy.deepcopy(invoice.get("notes") or {}),
                            "lines": [{"description": ln.get("description"), "quantity": ln["_quantity"],
                                       "unit_price_incl_vat": _money(ln["_unit"] * (100 + ln["_vat"]) / 100),
                                       "vat_rate": ln["_vat"]} for ln in invoice["lines"]],
                            "booked": booked,
                        })
            return out

    @property
    def customers(self) -> list[dict]:
        with self._lock:
            return [_public(c) for a in self.agreements.values() for c in a.customers.values()]

    # --- the model -------------------------------------------------------------------------

    def _store_customer(self, agreement: Agreement, body: dict) -> dict:
        errors = {}
        for field in ("currency", "customerGroup", "name", "paymentTerms", "vatZone"):  # restdocs required
            if body.get(field) in (None, "", {}):
                errors[field] = _field_error("E04000", f"Property {field} is required.")
        if errors:
            raise _validation(errors)
        if body["currency"] not in CURRENCIES:
            errors["currency"] = _field_error("E06000", "currency does not exist.", body["currency"])
        if (body["customerGroup"] or {}).get("customerGroupNumber") not in agreement.customer_groups:
            errors["customerGroup"] = _field_error("E06000", "customerGroup does not exist.")
        if (body["paymentTerms"] or {}).get("paymentTermsNumber") not in agreement.payment_terms:
            errors["paymentTerms"] = _field_error("E06000", "paymentTerms does not exist.")
        if (body["vatZone"] or {}).get("vatZoneNumber") not in agreement.vat_zones:
            errors["vatZone"] = _field_error("E06000", "vatZone does not exist.")
        if errors:
            raise _validation(errors)
        number = body.get("customerNumber") or agreement.next_customer
        if number in agreement.customers:
            raise _validation({"customerNumber": _field_error("E07010", "Customer number is already in use.", number)})
        agreement.next_customer = max(agreement.next_customer, int(number)) + 1
        customer = {k: copy.deepcopy(v) for k, v in body.items()}
        customer["customerNumber"] = int(number)
        agreement.customers[int(number)] = customer
        return customer

    def _create_draft(self, agreement: Agreement, body: dict, number: int | None = None) -> dict:
        if _has_null(body):  # restdocs "Nulling": null is not accepted
            raise _validation({}, "Null values are not accepted; leave the property out.")
        errors = {}
        for field in ("currency", "customer", "date", "layout", "paymentTerms", "recipient"):
            if not body.get(field):
                errors[field] = _field_error("E04000", f"Property {field} is required.")
        recipient = body.get("recipient") or {}
        if recipient and not (recipient.get("name") or "").strip():
            errors.setdefault("recipient", {})["name"] = _field_error("E04000", "Property recipient.name is required.")
        if recipient and not recipient.get("vatZone"):
            errors.setdefault("recipient", {})["vatZone"] = _field_error("E04000", "Property recipient.vatZone is required.")
        if errors:
            raise _validation(errors)
        if body["currency"] not in CURRENCIES:
            errors["currency"] = _field_error("E06000", "currency does not exist.", body["currency"])
        customer = agreement.customers.get((body["customer"] or {}).get("customerNumber"))
        if customer is None:
            errors["customer"] = _field_error("E06000", "customer does not exist.", (body["customer"] or {}).get("customerNumber"))
        if (body["layout"] or {}).get("layoutNumber") not in agreement.layouts:
            errors["layout"] = _field_error("E06000", "layout does not exist.")
        if (body["paymentTerms"] or {}).get("paymentTermsNumber") not in agreement.payment_terms:
            errors["paymentTerms"] = _field_error("E06000", "paymentTerms does not exist.")
        zone = (recipient.get("vatZone") or {}).get("vatZoneNumber")
        if zone not in agreement.vat_zones:
            errors["recipient"] = {"vatZone": _field_error("E06000", "vatZone does not exist.", zone)}
        try:
            date.fromisoformat(str(body["date"]))
        except ValueError:
            errors["date"] = _field_error("E04010", "date is not a valid date.", body["date"])
        other = (body.get("references") or {}).get("other")
        if other is not None and len(str(other)) > 250:
            errors["references"] = {"other": _field_error("E04020", "references.other is longer than 250.")}
        lines, line_errors = [], []
        for index, raw in enumerate(body.get("lines") or []):
            line, problems = self._line(agreement, raw, zone)
            if problems:
                line_errors.append({"arrayIndex": index, **problems})
            lines.append(line)
        if line_errors:
            errors["lines"] = line_errors
        if errors:
            raise _validation(errors)
        net = sum((ln["totalNetAmount"] for ln in lines), Decimal(0))
        vat = self._vat(lines)
        number = number or agreement.next_draft
        agreement.next_draft = max(agreement.next_draft, number) + 1
        draft = {k: copy.deepcopy(v) for k, v in body.items() if k != "lines"}
        draft.update({"draftInvoiceNumber": number, "lines": lines, "netAmount": net, "vatAmount": vat,
                      "grossAmount": net + vat, "roundingAmount": Decimal(0),
                      "customer": {"customerNumber": customer["customerNumber"]}})
        agreement.drafts[number] = draft
        return draft

    def _line(self, agreement: Agreement, raw, zone) -> tuple[dict, dict]:
        problems = {}
        if not isinstance(raw, dict):
            return {}, {"line": _field_error("E04000", "A line must be an object.")}
        product = agreement.products.get(str((raw.get("product") or {}).get("productNumber")))
        if not raw.get("product") or not (raw["product"] or {}).get("productNumber"):
            problems["product"] = _field_error("E04500", "No identifiers present on product. Please include either a "
                                                         "self link or a productNumber.")
        elif product is None:
            problems["product"] = _field_error("E06000", "product does not exist.", raw["product"]["productNumber"])
        quantity = _decimal(raw.get("quantity"))
        if quantity is None:
            problems["quantity"] = _field_error("E04730", "Property quantity must have a value when product is set.")
        unit = _decimal(raw.get("unitNetPrice"))
        if unit is None:
            problems["unitNetPrice"] = _field_error("E04730", "Property unitNetPrice must have a value when product is set.")
        elif unit != unit.quantize(CENT):
            problems["unitNetPrice"] = _field_error("E04740", "unitNetPrice scale cannot be greater then two decimal "
                                                              "places.", raw.get("unitNetPrice"))
        if product is not None and not (raw.get("description") or "").strip():
            problems["description"] = _field_error("E04000", "Property description is required when product is set.")
        if len(raw.get("description") or "") > 2500:
            problems["description"] = _field_error("E04020", "description is longer than 2500.")
        if self.modes["line_numbers"] == "required":
            for field in ("lineNumber", "sortKey"):
                if not isinstance(raw.get(field), int) or raw[field] < 1:
                    problems[field] = _field_error("E04100", "Integer 0 is less than minimum value of 1.",
                                                   raw.get(field, 0))
        if problems:
            return {}, problems
        rate = product["_vat"] if zone in (1,) else Decimal(0)  # only the domestic zone carries Danish VAT
        line = {k: copy.deepcopy(v) for k, v in raw.items()}
        net = _money(quantity * unit)
        line.update(totalNetAmount=net, _quantity=quantity, _unit=unit, _vat=rate, _net=net)
        return line, {}

    def _vat(self, lines: list[dict]) -> Decimal:
        if self.modes["vat_rounding"] == "per_line":
            return sum((_money(ln["_net"] * ln["_vat"] / 100) for ln in lines), Decimal(0))
        by_rate: dict[Decimal, Decimal] = {}
        for ln in lines:
            by_rate[ln["_vat"]] = by_rate.get(ln["_vat"], Decimal(0)) + ln["_net"]
        return sum((_money(net * rate / 100) for rate, net in by_rate.items()), Decimal(0))

    def _book(self, agreement: Agreement, draft_number, book_with) -> dict:
        draft = agreement.drafts.get(draft_number)
        if draft is None:
            raise _validation({"draftInvoice": {"draftInvoiceNumber": _field_error(
                "E06000", "draftInvoice does not exist.", draft_number)}})
        if not draft["lines"]:  # [guess, harsh] an invoice without lines cannot be booked
            raise _validation({"lines": _field_error("E08000", "An invoice without lines cannot be booked.")})
        number = int(book_with) if book_with is not None else agreement.next_booked
        if number in agreement.booked:
            raise _validation({"bookWithNumber": _field_error("E07010", "Invoice number is already in use.", number)})
        agreement.next_booked = max(agreement.next_booked, number) + 1
        del agreement.drafts[draft_number]
        booked = {k: v for k, v in draft.items() if k != "draftInvoiceNumber"}
        booked["bookedInvoiceNumber"] = number
        booked["remainder"] = booked["grossAmount"]
        agreement.booked[number] = booked
        return booked

    def _bucket(self, agreement: Agreement, cost: int) -> float | None:
        """None when the call may go; else the seconds until the bucket holds its cost."""
        now = time.monotonic()
        rate = self.bucket_capacity / BUCKET_WINDOW
        agreement.tokens = min(self.bucket_capacity, agreement.tokens + (now - agreement.tokens_at) * rate)
        agreement.tokens_at = now
        if agreement.tokens >= cost:
            agreement.tokens -= cost
            return None
        return (cost - agreement.tokens) / rate

    # --- the WSGI app ----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("economic_standin")
        standin = self

        def gate():
            with standin._lock:
                agreement = standin.agreements.get((request.headers.get("X-AppSecretToken", ""),
                                                    request.headers.get("X-AgreementGrantToken", "")))
            if agreement is None:
                # restdocs "HTTP Status Codes": wrong or missing credentials, or a revoked grant.
                return _json(401, {"message": "Unauthorized: the supplied tokens are not valid.",
                                   "errorCode": "E00500", "httpStatusCode": 401})
            g.agreement = agreement
            if request.method in ("POST", "PUT"):
                if "application/json" not in (request.headers.get("Content-Type") or ""):
                    return _json(415, {"message": "Unsupported media type: send application/json.",
                                       "httpStatusCode": 415})
                if not isinstance(g.body, dict):
                    return _json(400, {"message": "The request body is not a JSON object.", "httpStatusCode": 400})
            single = request.method == "GET" and re.search(r"/\d+$", request.path)
            cost = COSTS["GET one" if single else "GET list"] if request.method == "GET" else COSTS[request.method]
            g.cost = cost
            with standin._lock:
                wait = standin._bucket(agreement, cost)
                if wait is not None:
                    headers = {"X-RateLimiting": f"0 of {standin.bucket_capacity}"}
                    if standin.modes["retry_after"]:
                        headers["Retry-After"] = str(int(wait) + 1)
                    return _json(429, {"message": "Too many requests: the call budget is spent.",
                                       "httpStatusCode": 429}, headers)
                key = request.headers.get("Idempotency-Key")
                if key and request.method != "GET" and standin.modes["idempotency"] == "replay":
                    cached = agreement.idempotency.get(key)
                    if cached is not None:
                        return _json(cached[0], cached[1], {"X-ResultFromCache": "true"})
            g.key = key if request.method != "GET" else None
            return None

        def after(resp: Response):
            resp.headers.setdefault("X-CallCost", str(getattr(g, "cost", 0)))
            if resp.status_code >= 300 or resp.headers.get("X-ResultFromCache"):
                return resp
            if getattr(g, "key", None) and standin.modes["idempotency"] == "replay":
                with standin._lock:
                    g.agreement.idempotency[g.key] = (resp.status_code, json.loads(resp.get_data() or b"null"))
            return None

        self.install_fault_hooks(
            app, _Refusal, refused=lambda exc: _json(exc.status, exc.body, exc.headers),
            not_found=lambda: _json(404, {"message": "Not found.", "httpStatusCode": 404}),
            not_allowed=lambda: _json(405, {"message": "Method not allowed.", "httpStatusCode": 405}),
            held=lambda: _json(503, {"message": "The stand-in was reset while holding this request"}),
            failed=_fault_response,
            committed=lambda status: _json(status, {"message": "Bad Gateway", "httpStatusCode": status}),
            gate=gate, after=after)

        def collection(rows: list[dict], resource: str) -> Response:
            match = _matcher(request.args.get("filter"), resource)
            try:
                skip = int(request.args.get("skippages") or 0)
                size = int(request.args.get("pagesize") or DEFAULT_PAGE)
            except ValueError:
                raise _Refusal(400, {"message": "skippages and pagesize must be numbers.", "httpStatusCode": 400})
            if size > MAX_PAGE or size < 1:
                raise _Refusal(400, {"message": f"pagesize must be between 1 and {MAX_PAGE}.", "httpStatusCode": 400})
            hits = [r for r in rows if match(r)]
            page = hits[skip * size:(skip + 1) * size]
            return _json(200, {"collection": [_public(r) for r in page],
                               "pagination": {"skipPages": skip, "pageSize": size, "maxPageSizeAllowed": MAX_PAGE,
                                              "results": len(hits), "resultsWithoutFilter": len(rows)},
                               "self": request.url})

        @app.get("/self")
        def me():
            a = g.agreement
            return _json(200, {"agreementNumber": a.agreement_number, "company": {"name": a.name},
                               "self": request.url})

        @app.get("/layouts")
        def layouts():
            return collection(list(g.agreement.layouts.values()), "products")

        @app.get("/payment-terms")
        def payment_terms():
            return collection(list(g.agreement.payment_terms.values()), "products")

        @app.get("/vat-zones")
        def vat_zones():
            return collection(list(g.agreement.vat_zones.values()), "products")

        @app.get("/customer-groups")
        def customer_groups():
            return collection(list(g.agreement.customer_groups.values()), "products")

        @app.get("/currencies")
        def currencies():
            return collection([{"code": c, "name": c} for c in CURRENCIES], "products")

        @app.get("/products")
        def products():
            with standin._lock:
                return collection(list(g.agreement.products.values()), "products")

        @app.get("/customers")
        def customers():
            with standin._lock:
                return collection(list(g.agreement.customers.values()), "customers")

        @app.get("/customers/<int:number>")
        def customer(number):
            with standin._lock:
                found = g.agreement.customers.get(number)
                if found is None:
                    return _json(404, {"message": "Customer not found.", "httpStatusCode": 404})
                return _json(200, _public(found))

        @app.post("/customers")
        def create_customer():
            with standin._lock:
                return _json(201, _public(standin._store_customer(g.agreement, g.body)))

        @app.get("/invoices/drafts")
        def drafts():
            with standin._lock:
                return collection(list(g.agreement.drafts.values()), "drafts")

        @app.get("/invoices/drafts/<int:number>")
        def draft(number):
            with standin._lock:
                found = g.agreement.drafts.get(number)
                if found is None:
                    return _json(404, {"message": "Draft invoice not found.", "httpStatusCode": 404})
                return _json(200, _public(found))

        @app.post("/invoices/drafts")
        def create_draft():
            with standin._lock:
                return _json(201, _public(standin._create_draft(g.agreement, g.body)))

        @app.put("/invoices/drafts/<int:number>")
        def replace_draft(number):
            # restdocs: PUT overwrites the whole document (all lines).
            with standin._lock:
                if number not in g.agreement.drafts:
                    return _json(404, {"message": "Draft invoice not found.", "httpStatusCode": 404})
                old = g.agreement.drafts.pop(number)
                try:
                    return _json(200, _public(standin._create_draft(g.agreement, g.body, number)))
                except _Refusal:
                    g.agreement.drafts[number] = old
                    raise

        @app.delete("/invoices/drafts/<int:number>")
        def delete_draft(number):
            with standin._lock:
                if g.agreement.drafts.pop(number, None) is None:
                    return _json(404, {"message": "Draft invoice not found.", "httpStatusCode": 404})
                return _json(200, {"message": "Deleted invoice.", "deletedCount": 1,
                                   "deletedItems": [{"draftInvoiceNumber": number}]})

        @app.get("/invoices/booked")
        def booked():
            with standin._lock:
                return collection(list(g.agreement.booked.values()), "booked")

        @app.get("/invoices/booked/<int:number>")
        def booked_one(number):
            with standin._lock:
                found = g.agreement.booked.get(number)
                if found is None:
                    return _json(404, {"message": "Booked invoice not found.", "httpStatusCode": 404})
                return _json(200, _public(found))

        @app.post("/invoices/booked")
        def book():
            body = g.body
            number = ((body.get("draftInvoice") or {}) if isinstance(body.get("draftInvoice"), dict) else {}).get(
                "draftInvoiceNumber")
            with standin._lock:
                return _json(201, _public(standin._book(g.agreement, number, body.get("bookWithNumber"))))

        @app.route("/invoices/booked/<int:number>", methods=["PUT", "DELETE"])
        def change_booked(number):
            with standin._lock:
                if number in g.agreement.booked:
                    # Booking is final (restdocs "Invoices": once booked it can no longer be edited).
                    return _json(400 if request.method == "PUT" else 405, {
                        "message": "A booked invoice cannot be changed or deleted.", "httpStatusCode": 400})
                if request.method == "DELETE":
                    return _json(404, {"message": "Booked invoice not found.", "httpStatusCode": 404})
                body = g.body
                draft_number = (body.get("draftInvoice") or {}).get("draftInvoiceNumber")
                return _json(201, _public(standin._book(g.agreement, draft_number, number)))

        return app


def _fault_response(fault: dict) -> Response:
    headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") is not None else {}
    return _json(fault["status"], fault.get("body") or {"message": f"HTTP {fault['status']}",
                                                        "httpStatusCode": fault["status"]}, headers)


def _public(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key.startswith("_"):
            continue
        if key == "lines":
            out[key] = [_public(line) for line in value]
        elif isinstance(value, Decimal):
            out[key] = float(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


