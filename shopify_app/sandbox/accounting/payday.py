"""A local Payday: a real HTTP server speaking the shapes in ../shared/spec/payday.md and refusing
what Payday refuses, so the client and the invoicing pipeline are tested over the wire.

    standin = PaydayStandin().start()          # 127.0.0.1, a free port; standin.url
    standin.add_client("id", "secret")         # its own company (tenant): separate data
    standin.add_payment_type("Greiðslukort")
    ...
    standin.stop()

What it enforces, and where each rule comes from:
- `Api-Version: alpha` on every request, the login included (payday.md §1); 400 otherwise.
- `POST /auth/token` with `{"clientId","clientSecret"}` of a registered client; 401
  `{"error":"invalid_client",...}` otherwise (§1). Bearer tokens live `expiresIn` 86400 s;
  `expire_tokens()` makes every issued token answer 401.
- Invoices (§5): an existing `customer.id`, at least one line, on each line exactly one of
  `unitPriceIncludingVat`/`unitPriceExcludingVat` (Payday's own message, §3), a `quantity`,
  `vatPercentage` 0/11/24 (§8), `status` DRAFT/SENT/PAID, and for PAID a `paidDate` and a known
  `paymentType` (§5, "WP requires a payment type whenever status is PAID").
- Numbers are assigned asynchronously (§2): never in the create answer; `number_delay` seconds
  after creation (0: by the next request or read). The format is what the sandbox showed
  (the spike in payday.md's sources: "the invoice is issued (number: 1)"): a plain integer,
  sequential per company, from 1.

Amounts: a line's total including VAT is unitPriceIncludingVat x quantity x (1 - discount/100)
(how the WooCommerce plugin computes it, §5); from an excluding-VAT price the excluding total is
computed the same way and VAT added. Each line's total is rounded to 2 decimals, half away from
zero (credit lines round like their positive twins), the other total derived from it at the
line's rate and rounded the same way, and VAT is the difference, so the three amounts always
add up; invoice totals are the sums of the lines. Payday's own rounding is not documented
[GAP]; ISK prices with whole krónur come out whole either way.

Messages Payday is known to send are copied from the record (§3); the others (a VAT rate
outside 0/11/24, a missing customer, ...) are written in the same style and marked [invented].

Modes (issue 9): every behaviour of Payday that nobody has confirmed is a mode, settable per
stand-in as an attribute (`standin.search = "number_and_name"`) or all at once with
`standin.configure(**modes)`, which also takes a scenario's `"payday"` object as it is. The
defaults (DEFAULT_MODES) follow the evidence; HARSHEST_MODES is the pessimistic combination.
Each mode, its evidence and what the app must do if the guess is wrong: docs/PAYDAY_MODEL.md.

    search              what GET /invoices?query= matches: "reference" | "number_and_name" | "ignored"
    filters             GET /invoices filters: "documented" (dateFrom/dateTo, dueDate*, finalDueDate*,
                        excludeStatus, order/orderBy honoured; customerId ignored) | "all" | "ignored"
    list_order          list endpoints without `order`: "oldest_first" | "newest_first"
    max_pages           None, or N: pages after the N-th come back empty
    paid_negative       POST /invoices with status PAID and a negative total: "accepted" | "refused"
    mark_paid_negative  PUT /invoices/{id} {"status":"PAID"} on a negative total: "accepted" | "refused"
    pending_updates     PUT /invoices/{id} before the invoice is issued: "refused" | "accepted"
    lost_answers        0..1: share of committed invoice creates whose answer is lost (`seed` repeats
                        the draw; `faults["lost_answers"]` counts them)
    negative_quantity   a line with quantity < 0: "refused" | "accepted"
    unknown_sku         a line whose sku names no product: "ignored" | "refused"
    sku_description     a product-linked line's description: "rewrite" (always "<SKU> - <name>") |
                        "fill" (only when empty) | "keep"
    email_without_address  sendEmail for a customer without an e-mail: "refused" | "ignored"

Products and stock (payday.md §9): `add_product(sku, stock)`; a line linked to a product by
`sku` or `productId` moves its stock by -quantity when the invoice is issued (with its number),
never for a product without stock (`quantity: null`), negative stock allowed; `stock(sku)` and
`movements(sku)` read it, as do GET /products/sku/?sku=, GET /products/{id}/movements.
"""
from __future__ import annotations


import copy
import json
import random
import re
import secrets
import time
import uuid
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from flask import Flask, Response, g, request

from .server import StandinServer, checked_mode, is_date

API_VERSION = "alpha"
TOKEN_LIFETIME = 86400
VAT_RATES = (Decimal(0), Decimal(11), Decimal(24))
STATUSES = ("DRAFT", "SENT", "PAID")
UPDATE_STATUSES = ("DRAFT", "SENT", "PAID", "CANCELLED")
CENT = Decimal("0.01")
REYKJAVIK = ZoneInfo("Atlantic/Reykjavik")  # Payday's own day (UTC all year)
MAX_PERPAGE = 500  # payday.md §2 (MCP caps perpage at 500)
DEFAULT_PERPAGE = 50

# The unconfirmed behaviours (docs/PAYDAY_MODEL.md) and the values each may take.
MODE_VALUES = {
    "search": ("reference", "number_and_name", "ignored"),
    "filters": ("documented", "all", "ignored"),
    "list_order": ("oldest_first", "newest_first"),
    "paid_negative": ("accepted", "refused"),
    "mark_paid_negative": ("accepted", "refused"),
    "pending_updates": ("refused", "accepted"),
    "negative_quantity": ("refused", "accepted"),
    "unknown_sku": ("ignored", "refused"),
    "sku_description": ("rewrite", "fill", "keep"),
    "email_without_address": ("refused", "ignored"),
}
DEFAULT_MODES = {
    # Nothing shows `query` searching `reference`. MCP describes it as "invoice number, customer
    # name, etc." (-> number_and_name, the harsher); NET saw Payday ignore a filter it does not
    # support (-> ignored). The app trusts neither: it looks among the customer's own invoices
    # (docs/PAYDAY_MODEL.md, B1).
    "search": "number_and_name",
    "filters": "documented",
    "list_order": "oldest_first",   # no evidence: the harsher guess (a new invoice is on the last page)
    "max_pages": None,              # no evidence that Payday stops a list
    "paid_negative": "accepted",    # WP books OpenPOS returns (negative lines) as PAID invoices
    "mark_paid_negative": "accepted",
    "pending_updates": "refused",   # SPIKE: "Invoice with status Pending cannot be updated to status CANCELLED"
    "lost_answers": 0.0,
    "seed": 1,
    "negative_quantity": "refused",  # WP 2.0.11 made quantities always positive; no client sends one < 0
    "unknown_sku": "ignored",       # WP sends every WooCommerce SKU, synced to Payday or not
    "sku_description": "rewrite",   # SPIKE: "<SKU> - <name>"; whether a given text survives: harsher guess
    "email_without_address": "refused",  # no evidence: the harsher guess (WP never asks for it)
}
# The pessimistic combination a scenario is played in (issue 9, point 1).
HARSHEST_MODES = {**DEFAULT_MODES, "search": "number_and_name", "filters": "ignored", "paid_negative": "refused",
                  "lost_answers": 0.5}
# Documented-looking filters of GET /invoices (payday.md §5, MCP `getInvoicesSchema`); customerId
# came later in MCP, once its author's /customers/{id}/invoices had answered 404.
DOCUMENTED_FILTERS = ("dateFrom", "dateTo", "dueDateFrom", "dueDateTo", "finalDueDateFrom", "finalDueDateTo",
                      "excludeStatus", "order", "orderBy")

MSG_PRICE = ("Invoice line with ID '' in position '{pos}' is not valid. Either unit price excluding VAT or unit "
             "price including VAT must be specified.")  # Payday's words (payday.md §3)
MSG_NOT_VAT_OBLIGATED = ("Unable to add VAT to invoice line. Company is not VAT obligated or does not have a VAT "
                         "number.")  # Payday's words
MSG_SETUP = ("Unable to create invoice. Please complete the required system setup before creating an "
             "invoice")  # Payday's words (a 401)
MSG_VAT = ("Invoice line with ID '' in position '{pos}' is not valid. VAT percentage {rate} is not valid; "
           "valid VAT percentages are 0, 11 and 24.")  # [invented]
MSG_STATUS_CHANGE = "Invoice with status {current} cannot be updated to status {wanted}"  # Payday's words (SPIKE)
MSG_DUPLICATE_SKU = ("Unable to Create the product. Product already exists with the following SKU: "
                     "{sku}")  # Payday's words (SPIKE)
MSG_CUSTOMER_EXISTS = ("Unable to create customer. A customer with SSN {ssn} already "
                       "exists.")  # [invented]; the status (400) is reported (payday.md §13)
MSG_PAID_NEGATIVE = ("Unable to create invoice. Invalid data. An invoice with a negative total cannot be "
                     "registered as paid.")  # [invented]: the harsh guess of issue 9
MSG_MARK_PAID_NEGATIVE = "Invoice with a negative total cannot be updated to status PAID"  # [invented]
MSG_NEGATIVE_QUANTITY = ("Invoice line with ID '' in position '{pos}' is not valid. Quantity must be a positive "
                         "number.")  # [invented]
MSG_UNKNOWN_SKU = ("Invoice line with ID '' in position '{pos}' is not valid. No product found with SKU: "
                   "{sku}")  # [invented]
MSG_UNKNOWN_PRODUCT = ("Invoice line with ID '' in position '{pos}' is not valid. No product found with id: "
                       "{product_id}")  # [invented]
MSG_NO_EMAIL = ("Unable to create invoice. The invoice cannot be sent by email because the customer has no "
                "email address.")  # [invented]
MSG_MOVEMENT_DATE = {"message": "Invalid data. Date is required."}  # Payday's words (SPIKE)

CUSTOMER_FIELDS = ("language", "ssn", "foreignSsn", "name", "address", "zipCode", "city", "country", "email",
                   "contact", "comment", "invoiceNotes", "additionalHeaderInfo", "invoiceLineDiscount", "phone",
                   "sendElectronicInvoices", "dueDateDefaultDaysAfter", "finalDueDateDefaultDaysAfter")
INVOICE_FIELDS = ("description", "reference", "invoiceDate", "dueDate", "finalDueDate", "currencyCode",
                  "currencyRate", "status", "paidDate", "paymentType", "sendEmail", "createClaim",
                  "createElectronicInvoice", "electronicInvoicePartyId", "accountingCost", "ocr", "vatNumber",
                  "defaultInterest", "capitalGainsTax", "source", "payor")


class _Refusal(Exception):
    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


class Company:
    """One Payday company (tenant): its customers, invoices, payment types and number series."""

    def __init__(self, key: str, *, vat_obligated: bool = True, setup_complete: bool = True):
        self.key = key
        self.vat_obligated = vat_obligated
        self.setup_complete = setup_complete
        self.customers: dict[str, dict] = {}
        self.invoices: list[dict] = []
        self.payment_types: list[dict] = []
        self.next_number = 1
        self.einvoice_ssns: set[str] = set()
        self.products: dict[str, dict] = {}           # id -> product (payday.md §9)
        self.movements: dict[str, list[dict]] = {}    # product id -> its stock ledger, oldest first


class _Mode:
    """A mode attribute of the stand-in: refuses a value Payday's model does not know."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._modes[self.name]

    def __set__(self, obj, value):
        obj._modes[self.name] = _checked_mode(self.name, value)


def _checked_max_pages(value):
    if value is not None and (isinstance(value, bool) or int(value) < 1):
        raise ValueError("Payday stand-in mode max_pages: None or a whole number of pages, at least 1")
    return None if value is None else int(value)


def _checked_mode(name: str, value):
    return checked_mode("Payday", MODE_VALUES, {"max_pages": _checked_max_pages}, name, value)


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(status: int, body, headers: dict | None = None) -> Response:
    if isinstance(body, (dict, list)) or (isinstance(body, str) and status < 400):
        payload, mimetype = json.dumps(body, ensure_ascii=False), "application/json"
    elif isinstance(body, _JsonString):
        payload, mimetype = json.dumps(str(body), ensure_ascii=False), "application/json"
    else:
        payload, mimetype = ("" if body is None else str(body)), "text/plain"
    return Response(payload, status=status, mimetype=mimetype, headers=headers or {})


class _JsonString(str):
    """An error message Payday sends as a JSON string (quoted) rather than plain text."""


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _number(value, what: str, pos: int) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _Refusal(400, _JsonString(f"Invoice line with ID '' in position '{pos}' is not valid. "
                                        f"{what} is required."))  # [invented]
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite():
        raise _Refusal(400, _JsonString(f"Invoice line with ID '' in position '{pos}' is not valid. "
                                        f"{what} is not a number."))  # [invented]
    return number


def _float(value: Decimal | None):
    return None if value is None else float(value)


class PaydayStandin(StandinServer):
    name = "payday"

    # The unconfirmed behaviours, one attribute each (see the module's docstring).
    search = _Mode()
    filters = _Mode()
    list_order = _Mode()
    max_pages = _Mode()
    paid_negative = _Mode()
    mark_paid_negative = _Mode()
    pending_updates = _Mode()
    lost_answers = _Mode()
    negative_quantity = _Mode()
    unknown_sku = _Mode()
    sku_description = _Mode()
    email_without_address = _Mode()

    def __init__(self, *, number_delay: float = 0.0, host: str = "127.0.0.1", port: int = 0,
                 modes: dict | None = None):
        self.default_number_delay = number_delay
        self.default_modes = {**DEFAULT_MODES, **{k: _checked_mode(k, v) for k, v in (modes or {}).items()}}
        super().__init__(host, port)
        self._seq = 0
        self._clear()
        self.app = self._build_app()

    # --- lifecycle -------------------------------------------------------------------------

    def _clear(self) -> None:
        self.clients: dict[str, tuple[str, str]] = {}
        self.companies: dict[str, Company] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.requests: list[dict] = []
        self.registry: dict[str, dict] = {}  # Þjóðskrá: ssn -> name/address Payday fills in
        self._faults: list[dict] = []
        self.latency = 0.0
        self.number_delay = self.default_number_delay
        self._modes = dict(self.default_modes)
        self._rng = random.Random(self._modes["seed"])
        self.faults: dict[str, int] = {"lost_answers": 0}  # what actually went wrong, for the player
        self.lost_answer_paths: tuple = ("POST /invoices",)
        self.sent_emails: list[dict] = []  # what Payday e-mailed when an invoice was issued
        self.today: date | None = None  # Payday's day; None: today in Atlantic/Reykjavik

    # --- modes -----------------------------------------------------------------------------

    @property
    def seed(self):
        return self._modes["seed"]

    @seed.setter
    def seed(self, value) -> None:
        with self._lock:
            self._modes["seed"] = value
            self._rng = random.Random(value)

    @property
    def modes(self) -> dict:
        return dict(self._modes)

    def configure(self, modes: dict | None = None, **more) -> "PaydayStandin":
        """Set several modes at once, e.g. a scenario's `"payday"` object
        ({"search": "ignored", "paid_negative": "refused", "lost_answers": 0.5}). Unknown names
        and values are refused. Setting lost_answers or seed starts the draw afresh."""
        wanted = {**(modes or {}), **more}
        checked = {name: _checked_mode(name, value) for name, value in wanted.items()}
        with self._lock:
            self._modes.update(checked)
            if "seed" in checked or "lost_answers" in checked:
                self._rng = random.Random(self._modes["seed"])
        return self

    def harshest(self) -> "PaydayStandin":
        """The pessimistic combination (HARSHEST_MODES)."""
        return self.configure(HARSHEST_MODES)

    def payday_today(self) -> date:
        return self.today or datetime.now(REYKJAVIK).date()

    # --- setup -----------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, *, company: str | None = None,
                   vat_obligated: bool = True) -> Company:
        """Register API credentials. Each client id gets its own company unless `company`
        names one to share."""
        with self._lock:
            key = company or client_id
            if key not in self.companies:
                self.companies[key] = Company(key, vat_obligated=vat_obligated)
            self.clients[client_id] = (client_secret, key)
            return self.companies[key]

    def company(self, client_id: str | None = None) -> Company:
        with self._lock:
            if client_id is None:
                if not self.companies:
                    raise LookupError("no Payday client registered in the stand-in")
                return next(iter(self.companies.values()))
            return self.companies[self.clients[client_id][1]]

    def add_payment_type(self, title: str, *, client_id: str | None = None, description: str | None = None) -> dict:
        """A payment type (accounting key); without `client_id`, in every company."""
        with self._lock:
            targets = [self.company(client_id)] if client_id else list(self.companies.values())
            made = None
            for company in targets:
                made = {"id": str(uuid.uuid4()), "title": title, "description": description, "created": _now_iso()}
                company.payment_types.append(made)
            return copy.deepcopy(made)

    def add_customer(self, *, client_id: str | None = None, **fields) -> dict:
        """A customer already in Payday (as if typed in by the merchant)."""
        with self._lock:
            return copy.deepcopy(self._store_customer(self.company(client_id), fields))

    def register_person(self, ssn: str, name: str, **fields) -> None:
        """Þjóðskrá's answer for a kennitala: Payday fills a new customer from it."""
        with self._lock:
            self.registry[ssn] = {"name": name, **fields}

    def accept_einvoices(self, ssn: str, *, client_id: str | None = None) -> None:
        with self._lock:
            self.company(client_id).einvoice_ssns.add(ssn)

    def require_system_setup(self, client_id: str | None = None, required: bool = True) -> None:
        """The company has not finished Payday's setup: invoice creates answer 401."""
        with self._lock:
            self.company(client_id).setup_complete = not required

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def issue_now(self) -> None:
        """Number every waiting invoice now, whatever number_delay says."""
        with self._lock:
            self._issue(force=True)

    def add_product(self, sku: str, stock=None, *, name: str | None = None, client_id: str | None = None,
                    price_excluding_vat=None, vat_percentage=24) -> dict:
        """A product in Payday's register (as the merchant or WP's product sync made it). With
        `stock` it keeps stock (an opening movement "Upphafsbirgðastaða"); without, it is a
        service product (`quantity: null`) that no invoice moves."""
        with self._lock:
            return copy.deepcopy(self._store_product(self.company(client_id), {
                "sku": sku, "name": name or sku, "quantity": stock,
                "salesUnitPriceExcludingVAT": price_excluding_vat, "vatPercentage": vat_percentage}))

    def product(self, sku: str, client_id: str | None = None) -> dict | None:
        with self._lock:
            self._issue()
            found = _product_by_sku(self.company(client_id), sku)
            return _public_product(found) if found else None

    def stock(self, sku: str, client_id: str | None = None):
        """The product's stock now (after any invoice whose time to be issued has come), as a
        float like Payday's answers; None for a product without stock."""
        found = self.product(sku, client_id)
        if found is None:
            raise LookupError(f"no product with SKU {sku!r} in the Payday stand-in")
        return found["quantity"]

    def movements(self, sku: str, client_id: str | None = None) -> list[dict]:
        """The product's stock ledger, newest first (as GET /products/{id}/movements answers)."""
        with self._lock:
            self._issue()
            company = self.company(client_id)
            found = _product_by_sku(company, sku)
            if found is None:
                raise LookupError(f"no product with SKU {sku!r} in the Payday stand-in")
            return [_public_movement(m) for m in reversed(company.movements.get(found["id"], []))]

    def add_invoice(self, *, client_id: str | None = None, **body) -> dict:
        """An invoice already in Payday (typed in by the merchant, or made by Payday's own
        Shopify app or WP): the body of a POST /invoices, without its faults or lost answers."""
        with self._lock:
            invoice = self._create_invoice(self.company(client_id), body)
            return _public(invoice, lines=True)

    # --- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after=None, body=None, paths=None) -> None:
        """The next n matching requests answer `status` without being carried out. `paths`:
        path prefixes, optionally with the method ("POST /invoices")."""
        self._add_fault("fail", n, paths, status=status, retry_after=retry_after, body=body)

    def timeout_next(self, n: int = 1, seconds: float = 5.0, paths=None) -> None:
        """Hold the next n matching requests `seconds` before handling them (make it longer
        than the client's read timeout). A reset abandons a held request."""
        self._add_fault("hold", n, paths, seconds=seconds)

    def fail_after_commit_next(self, n: int = 1, status: int | None = 502, paths=("POST /invoices",)) -> None:
        """Carry out the next n matching requests, then answer `status` instead of the result,
        or drop the connection when status is None: the caller cannot know it succeeded."""
        self._add_fault("after_commit", n, paths, status=status)

    def empty_answer_next(self, n: int = 1, paths=("POST /customers",)) -> None:
        """Carry out the request but answer 200 with an empty body (seen on customer creates)."""
        self._add_fault("empty", n, paths)

    def customer_race_next(self, n: int = 1) -> None:
        """Two workers create the same new customer at once: for the next n POST /customers
        with an `ssn`, another worker's create of that kennitala lands first, so this one is
        answered 400 "already exists" (payday.md §13) while the customer exists."""
        self._add_fault("race", n, ("POST /customers",))

    # --- views for tests -------------------------------------------------------------------

    @property
    def invoices(self) -> list[dict]:
        """Every company's invoices in creation order, as a read with lines would show them."""
        with self._lock:
            self._issue()
            rows = sorted((inv for c in self.companies.values() for inv in c.invoices), key=lambda i: i["_seq"])
            return [_public(inv, lines=True) for inv in rows]

    @property
    def customers(self) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(c) for company in self.companies.values() for c in company.customers.values()]

    # --- the WSGI app ----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("payday_standin")
        standin = self

        def gate():
            if request.headers.get("Api-Version") != API_VERSION:
                return _json(400, "The Api-Version header is missing or not supported.")  # [invented]
            if request.path != "/auth/token":
                g.company = standin._company_for(request.headers.get("Authorization", ""))
                if g.company is None:
                    return _json(401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            with standin._lock:
                standin._issue()
            return None

        def after(resp: Response):
            if resp.status_code < 300 and standin._take_fault("empty", request.method, request.path):
                return Response("", status=200)
            return None

        self.install_fault_hooks(
            app, _Refusal, refused=lambda exc: _json(exc.status, exc.body, exc.headers),
            not_found=lambda: _json(404, {"message": "Not found"}),
            not_allowed=lambda: _json(405, {"message": "Method not allowed"}),
            held=lambda: _json(503, "The stand-in was reset while holding this request"),
            failed=_fault_response,
            committed=lambda status: _json(status, "Bad Gateway" if status == 502 else "Server error"),
            gate=gate, after=after)

        @app.post("/auth/token")
        def token():
            body = g.body if isinstance(g.body, dict) else {}
            with standin._lock:
                client = standin.clients.get(body.get("clientId") or "")
                if client is None or not secrets.compare_digest(client[0], str(body.get("clientSecret") or "")):
                    return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
                token = secrets.token_urlsafe(32)
                standin.tokens[token] = (client[1], time.time() + TOKEN_LIFETIME)
            return _json(200, {"accessToken": token, "tokenType": "bearer", "expiresIn": TOKEN_LIFETIME,
                               "createdAt": _now_iso()})

        # --- customers

        @app.post("/customers")
        def create_customer():
            body = _object(g.body)
            with standin._lock:
                ssn = body.get("ssn")
                if ssn and not any(c.get("ssn") == ssn for c in g.company.customers.values()) and \
                        standin._take_fault("race", request.method, request.path):
                    standin._create_customer(g.company, body)  # the other worker's create, committed first
                return _json(200, copy.deepcopy(standin._create_customer(g.company, body)))

        @app.get("/customers")
        def list_customers():
            with standin._lock:
                rows = list(g.company.customers.values())  # Payday ignores ?ssn= here (payday.md §4)
                return _json(200, _page(rows, "customers", max_pages=standin.max_pages))

        @app.get("/customers/search/", strict_slashes=False)
        def search_customers():
            query = (request.args.get("query") or "").strip().casefold()
            with standin._lock:
                rows = [c for c in g.company.customers.values() if query and any(
                    query in str(c.get(f) or "").casefold() for f in ("name", "email", "ssn", "contact"))]
                return _json(200, {"customers": copy.deepcopy(rows)})

        @app.get("/customers/number/<ssn>")
        def customer_by_ssn(ssn):
            with standin._lock:
                found = next((c for c in g.company.customers.values() if c.get("ssn") == ssn), None)
                if found is None:
                    return _json(404, {"message": "Customer not found"})  # [invented]
                return _json(200, copy.deepcopy(found))

        @app.get("/customers/<customer_id>")
        def get_customer(customer_id):
            with standin._lock:
                found = g.company.customers.get(customer_id)
                if found is None:
                    return _json(404, {"message": "Customer not found"})  # [invented]
                return _json(200, copy.deepcopy(found))

        @app.get("/customers/<customer_id>/invoice")
        def customer_invoices(customer_id):
            # WP `Payday_Customer_Gateway::get_customer_invoices` (perpage, page, include=lines;
            # answer under "invoices"). Only paging: no query, no filters.
            lines = request.args.get("include") == "lines"
            with standin._lock:
                if customer_id not in g.company.customers:
                    return _json(404, {"message": "Customer not found"})  # [invented]
                rows = standin._in_list_order([inv for inv in g.company.invoices
                                               if inv["customer"]["id"] == customer_id])
                return _json(200, _page([_public(inv, lines=lines) for inv in rows], "invoices",
                                        max_pages=standin.max_pages))

        # GET /customers/{id}/invoices (plural) is not a route: Payday answers 404 (MCP commit
        # 45de78b, "non-existent /customers/{id}/invoices endpoint ... Fixes 404 error").

        @app.put("/customers/<customer_id>")
        def update_customer(customer_id):
            body = _object(g.body)
            with standin._lock:
                found = g.company.customers.get(customer_id)
                if found is None:
                    return _json(404, {"message": "Customer not found"})  # [invented]
                found.update({k: body[k] for k in CUSTOMER_FIELDS if k in body})
                found["edited"] = _now_iso()
                return _json(200, copy.deepcopy(found))

        # --- invoices

        @app.post("/invoices")
        def create_invoice():
            body = _object(g.body)
            with standin._lock:
                if not g.company.setup_complete:
                    return _json(401, MSG_SETUP)
                invoice = standin._create_invoice(g.company, body)
                return _json(200, _public(invoice, lines=True))

        @app.get("/invoices")
        def list_invoices():
            lines = request.args.get("include") == "lines"
            with standin._lock:
                rows = standin._filtered(g.company.invoices, request.args)
                return _json(200, _page([_public(inv, lines=lines) for inv in rows], "invoices",
                                        max_pages=standin.max_pages))

        @app.get("/invoices/<invoice_id>")
        def get_invoice(invoice_id):
            with standin._lock:
                found = next((inv for inv in g.company.invoices if inv["id"] == invoice_id), None)
                if found is None:
                    return _json(404, f"Invoice with id '{invoice_id}' was not found.")  # [invented]
                return _json(200, _public(found, lines=request.args.get("include") == "lines"))

        @app.put("/invoices/<invoice_id>")
        def update_invoice(invoice_id):
            body = _object(g.body)
            with standin._lock:
                found = next((inv for inv in g.company.invoices if inv["id"] == invoice_id), None)
                if found is None:
                    return _json(404, f"Invoice with id '{invoice_id}' was not found.")  # [invented]
                standin._update_invoice(g.company, found, body)
                return _json(200, _public(found, lines=False))

        # --- products and stock (payday.md §9; SPIKE findings 2, 3, 5, 6, 8)

        @app.post("/products")
        def create_product():
            body = _object(g.body)
            with standin._lock:
                sku = body.get("sku")
                if sku and _product_by_sku(g.company, sku):
                    return _json(400, MSG_DUPLICATE_SKU.format(sku=sku))
                if not (body.get("name") or "").strip():
                    return _json(400, {"message": "Invalid data. Name is required."})  # [invented]
                return _json(200, _public_product(standin._store_product(g.company, body)))

        @app.get("/products", strict_slashes=False)
        def list_products():
            query = (request.args.get("query") or "").strip().casefold()
            with standin._lock:
                rows = [p for p in g.company.products.values() if not query
                        or (p.get("sku") or "").casefold().startswith(query)  # SPIKE 5: SKU prefix or name
                        or query in (p.get("name") or "").casefold()]
                return _json(200, _page([_public_product(p) for p in rows], "products", max_pages=standin.max_pages))

        @app.get("/products/sku/", strict_slashes=False)
        def product_by_sku():
            with standin._lock:
                found = _product_by_sku(g.company, request.args.get("sku") or "")
                if found is None:
                    return _json(404, {"message": "Product not found"})  # [invented]
                return _json(200, _public_product(found))

        @app.get("/products/<product_id>")
        def get_product(product_id):
            with standin._lock:
                found = g.company.products.get(product_id)
                if found is None:
                    return _json(404, {"message": "Product not found"})  # [invented]
                return _json(200, _public_product(found))

        @app.get("/products/<product_id>/movements")
        def product_movements(product_id):
            with standin._lock:
                if product_id not in g.company.products:
                    return _json(404, {"message": "Product not found"})  # [invented]
                rows = [_public_movement(m) for m in reversed(g.company.movements.get(product_id, []))]
                return _json(200, _page(rows, "productMovements", max_pages=standin.max_pages, default_perpage=100))

        @app.post("/products/<product_id>/movements")
        def add_movement(product_id):
            body = _object(g.body)
            with standin._lock:
                product = g.company.products.get(product_id)
                if product is None:
                    return _json(404, {"message": "Product not found"})  # [invented]
                if not is_date(body.get("date")):
                    return _json(400, MSG_MOVEMENT_DATE)
                change = _number(body.get("changeInQuantity"), "Change in quantity", 1)
                movement = standin._move(g.company, product, change, body.get("description") or "",
                                         body["date"])
                return _json(200, _public_movement(movement))

        # --- settings

        @app.get("/sales/paymenttypes")
        def payment_types():
            with standin._lock:
                return _json(200, copy.deepcopy(g.company.payment_types))

        @app.get("/general/vat")
        def vat():
            return _json(200, [0.0, 11.0, 24.0])

        return app

    # --- behaviour -------------------------------------------------------------------------

    def _answer_lost(self, method: str, path: str) -> bool:
        # No paths means no lost answers here, where matches() would take them for every path.
        with self._lock:
            return bool(self.lost_answer_paths) and super()._answer_lost(method, path)

    def _in_list_order(self, rows: list[dict]) -> list[dict]:
        rows = sorted(rows, key=lambda inv: inv["_seq"])
        return rows if self._modes["list_order"] == "oldest_first" else rows[::-1]

    def _filtered(self, invoices: list[dict], args) -> list[dict]:
        """GET /invoices: `query` as mode search says, the other filters as mode filters says."""
        rows = self._in_list_order(invoices)
        query = (args.get("query") or "").strip().casefold()
        search = self._modes["search"]
        if query and search != "ignored":
            def fields(inv):
                if search == "reference":
                    return (inv.get("reference"), inv.get("description"), inv["customer"].get("name"),
                            inv.get("number"))
                return (inv["customer"].get("name"), inv.get("number"))
            rows = [inv for inv in rows if any(query in str(v).casefold() for v in fields(inv) if v is not None)]
        mode = self._modes["filters"]
        honoured = () if mode == "ignored" else DOCUMENTED_FILTERS + (("customerId",) if mode == "all" else ())
        wanted = {name: args.get(name) for name in honoured if args.get(name)}
        for name, field in (("dateFrom", "invoiceDate"), ("dueDateFrom", "dueDate"),
                            ("finalDueDateFrom", "finalDueDate")):
            if name in wanted:
                rows = [inv for inv in rows if (inv.get(field) or "") >= _filter_date(wanted[name], name)]
        for name, field in (("dateTo", "invoiceDate"), ("dueDateTo", "dueDate"), ("finalDueDateTo", "finalDueDate")):
            if name in wanted:
                rows = [inv for inv in rows if (inv.get(field) or "9999") <= _filter_date(wanted[name], name)]
        if "excludeStatus" in wanted:
            excluded = {s.strip().upper() for s in wanted["excludeStatus"].split(",")}
            rows = [inv for inv in rows if inv["status"] not in excluded]
        if "customerId" in wanted:
            rows = [inv for inv in rows if inv["customer"]["id"] == wanted["customerId"]]
        if "order" in wanted or "orderBy" in wanted:
            field = wanted.get("orderBy") or "created"
            key = "_seq" if field == "created" else field
            rows = sorted(rows, key=lambda inv: (inv.get(key) is None, inv.get(key) or 0, inv["_seq"]),
                          reverse=(wanted.get("order") or "desc").lower() == "desc")
        return rows

    def _update_invoice(self, company: Company, invoice: dict, body: dict) -> None:
        """PUT /invoices/{id}: the status changes Payday's update modes name (WP
        `enum-payday-update-invoice-mode.php`), with the bodies third-party clients send (MCP
        mark_as_paid / resend_email; NET cancel claim / cancel invoice). Other fields of an
        issued invoice are left alone: only unsent invoices can be edited."""
        wanted = body.get("status")
        if wanted not in UPDATE_STATUSES:
            raise _Refusal(400, {"message": f"Invalid data. Status '{wanted}' is not valid."})  # [invented]
        current = _internal_status(invoice)
        if current == "Pending" and self._modes["pending_updates"] == "refused":
            raise _Refusal(400, MSG_STATUS_CHANGE.format(current="Pending", wanted=wanted))
        status = invoice["status"]
        today = self.payday_today().isoformat()
        if wanted == "PAID":
            if status != "SENT":
                raise _Refusal(400, MSG_STATUS_CHANGE.format(current=status.capitalize(), wanted=wanted))
            self._check_paid(company, body)
            if invoice["amountIncludingVat"] < 0 and self._modes["mark_paid_negative"] == "refused":
                raise _Refusal(400, MSG_MARK_PAID_NEGATIVE)
            invoice.update(status="PAID", paidDate=body["paidDate"], paymentType=body["paymentType"])
        elif wanted == "SENT":
            if status not in ("SENT", "PAID"):
                raise _Refusal(400, MSG_STATUS_CHANGE.format(current=status.capitalize(), wanted=wanted))
            if status == "PAID":  # MARK_AS_UNPAID [guess: the body is not known]
                invoice.update(status="SENT", paidDate=None, paymentType=None)
            if body.get("claimCancelledDate"):
                if not is_date(body["claimCancelledDate"]):
                    raise _Refusal(400, {"message": "Invalid data. claimCancelledDate is not a valid "
                                                    "date."})  # [invented]
                invoice.update(claimCancelled=True, claimCancelledDate=body["claimCancelledDate"])
        elif wanted == "CANCELLED":
            if status != "SENT":
                raise _Refusal(400, MSG_STATUS_CHANGE.format(current=status.capitalize(), wanted=wanted))
            cancelled = body.get("cancelledDate") or today
            if not is_date(cancelled):
                raise _Refusal(400, {"message": "Invalid data. cancelledDate is not a valid date."})  # [invented]
            invoice.update(status="CANCELLED", cancelledDate=cancelled)
        else:  # DRAFT: an issued invoice never goes back to a draft [guess]
            if status != "DRAFT":
                raise _Refusal(400, MSG_STATUS_CHANGE.format(current=status.capitalize(), wanted=wanted))

    def _check_paid(self, company: Company, body: dict) -> None:
        if not body.get("paidDate") or not _is_date_or_time(body["paidDate"]):
            raise _Refusal(400, {"message": "Invalid data. Paid date is required for a paid invoice."})  # [invented]
        payment_type = body.get("paymentType")
        if not any(t["id"] == payment_type for t in company.payment_types):
            raise _Refusal(400, f"Unable to create invoice. Invalid data. No payment type found with id: "
                                f"{payment_type}")  # [invented]

    def _store_product(self, company: Company, fields: dict) -> dict:
        quantity = fields.get("quantity")
        product = {"id": str(uuid.uuid4()), "name": fields.get("name"), "description": fields.get("description"),
                   "sku": fields.get("sku"), "quantity": None,
                   "salesUnitPriceExcludingVAT": fields.get("salesUnitPriceExcludingVAT"),
                   "salesUnitPriceIncludingVAT": fields.get("salesUnitPriceIncludingVAT"),
                   "vatPercentage": fields.get("vatPercentage"), "tags": fields.get("tags"),
                   "archived": bool(fields.get("archived")), "created": _now_iso()}
        company.products[product["id"]] = product
        company.movements[product["id"]] = []
        if quantity is not None:
            self._move(company, product, Decimal(str(quantity)), "Upphafsbirgðastaða",
                       self.payday_today().isoformat())
        return product

    def _move(self, company: Company, product: dict, change: Decimal, description: str, when: str,
              **extra) -> dict:
        """One entry in the product's stock ledger (Payday keeps stock as movements, SPIKE 2)."""
        after = (product["quantity"] if product["quantity"] is not None else Decimal(0)) + change
        product["quantity"] = after
        movement = {"id": str(uuid.uuid4()), "productId": product["id"], "date": when, "description": description,
                    "changeInQuantity": change, "quantityAfterChange": after, "reserved": False,
                    "reservedAfterChange": None, "created": _now_iso(), **extra}
        company.movements[product["id"]].append(movement)
        return movement

    def _company_for(self, authorization: str) -> Company | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self._lock:
            entry = self.tokens.get(token.strip())
            if entry is None or entry[1] < time.time():
                return None
            return self.companies.get(entry[0])

    def _store_customer(self, company: Company, fields: dict) -> dict:
        customer = {"id": str(uuid.uuid4()), **{k: None for k in CUSTOMER_FIELDS},
                    "sendElectronicInvoices": False, "invoiceLineDiscount": 0,
                    "dueDateDefaultDaysAfter": 0, "finalDueDateDefaultDaysAfter": 0,
                    "created": _now_iso(), "edited": None}
        customer.update({k: v for k, v in fields.items() if k in CUSTOMER_FIELDS})
        company.customers[customer["id"]] = customer
        return customer

    def _create_customer(self, company: Company, body: dict) -> dict:
        ssn = body.get("ssn") or None
        if ssn is not None:
            if not isinstance(ssn, str) or not re.fullmatch(r"\d{10}", ssn):
                raise _Refusal(400, {"message": "Invalid data. SSN is not valid."})  # [invented]
            if any(c.get("ssn") == ssn for c in company.customers.values()):
                raise _Refusal(400, MSG_CUSTOMER_EXISTS.format(ssn=ssn))
        fields = {k: body[k] for k in CUSTOMER_FIELDS if k in body}
        if ssn in self.registry:  # Payday fills the customer from Þjóðskrá, name included (payday.md §4)
            fields.update(self.registry[ssn])
        if not (fields.get("name") or "").strip():
            raise _Refusal(400, {"message": "Invalid data. Name is required."})  # [invented]
        return self._store_customer(company, fields)

    def _create_invoice(self, company: Company, body: dict) -> dict:
        customer_ref = body.get("customer")
        customer_id = customer_ref.get("id") if isinstance(customer_ref, dict) else None
        if not customer_id:
            raise _Refusal(400, {"message": "Invalid data. Customer is required."})  # [invented]
        customer = company.customers.get(str(customer_id))
        if customer is None:
            raise _Refusal(400, f"Unable to create invoice. No customer found with id: {customer_id}")  # [invented]
        # An invoice without `status` is created and sent (a third-party client, TSL, never sends
        # one and expects it issued) [guess: SENT].
        status = body.get("status") if body.get("status") is not None else "SENT"
        if status not in STATUSES:
            raise _Refusal(400, {"message": f"Invalid data. Status '{status}' is not valid."})  # [invented]
        for field in ("invoiceDate", "dueDate", "finalDueDate"):
            if body.get(field) is not None and not is_date(body[field]):
                raise _Refusal(400, {"message": f"Invalid data. {field} is not a valid date."})  # [invented]
        if status == "PAID":
            self._check_paid(company, body)
        if body.get("sendEmail") and not (customer.get("email") or "").strip() and \
                self._modes["email_without_address"] == "refused":
            raise _Refusal(400, MSG_NO_EMAIL)
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _Refusal(400, {"message": "Invalid data. An invoice must have at least one line."})  # [invented]
        if body.get("createElectronicInvoice") and customer.get("ssn") not in company.einvoice_ssns:
            raise _Refusal(400, {"errorCode": 21018, "errorMessage": "The customer does not accept electronic "
                                                                    "invoices."})  # code from payday.md §3
        invoice_id = str(uuid.uuid4())
        lines = [self._line(company, raw, pos, invoice_id) for pos, raw in enumerate(raw_lines, start=1)]
        total = sum((ln["_gross"] for ln in lines), Decimal(0))
        if status == "PAID" and total < 0 and self._modes["paid_negative"] == "refused":
            raise _Refusal(400, MSG_PAID_NEGATIVE)
        today = self.payday_today().isoformat()
        invoice = {field: body.get(field) for field in INVOICE_FIELDS}
        invoice.update({
            "id": invoice_id,
            "customer": {k: customer.get(k) for k in ("id", "name", "ssn", "email", "address", "zipCode", "city",
                                                      "country")},
            "number": None,
            "status": status,
            "created": _now_iso(),
            "invoiceDate": body.get("invoiceDate") or today,
            "currencyCode": body.get("currencyCode") or "ISK",
            "currencyRate": body.get("currencyRate") or 1.0,
            "sendEmail": bool(body.get("sendEmail")),
            "createClaim": bool(body.get("createClaim")),
            "createElectronicInvoice": bool(body.get("createElectronicInvoice")),
            "sentDate": None if status == "DRAFT" else today,
            "claimCreated": False, "claimFinalDueDate": None, "cancelledDate": None, "refundDate": None,
            "creditDate": None, "claimCancelledDate": None, "claimCancelled": False,
            "amountExcludingVat": sum((ln["_net"] for ln in lines), Decimal(0)),
            "amountIncludingVat": total,
            "amountVat": sum((ln["_vat"] for ln in lines), Decimal(0)),
            "foreignAmountExcludingVat": None, "foreignAmountIncludingVat": None, "foreignAmountVat": None,
            "lines": lines,
            "_seq": self._next_seq(), "_created_at": time.monotonic(), "_company": company.key,
        })
        invoice["dueDate"] = body.get("dueDate") or invoice["invoiceDate"]
        invoice["finalDueDate"] = body.get("finalDueDate") or invoice["dueDate"]
        company.invoices.append(invoice)
        return invoice

    def _line(self, company: Company, raw, pos: int, invoice_id: str) -> dict:
        if not isinstance(raw, dict):
            raise _Refusal(400, _JsonString(f"Invoice line with ID '' in position '{pos}' is not valid."))  # [invented]
        incl, excl = raw.get("unitPriceIncludingVat"), raw.get("unitPriceExcludingVat")
        if (incl is None) == (excl is None):
            raise _Refusal(400, _JsonString(MSG_PRICE.format(pos=pos)))
        quantity = _number(raw.get("quantity"), "Quantity", pos)
        if quantity < 0 and self._modes["negative_quantity"] == "refused":
            raise _Refusal(400, _JsonString(MSG_NEGATIVE_QUANTITY.format(pos=pos)))
        # WP sends fee lines without vatPercentage (payday.md §13), so Payday takes them; the
        # rate it then books is not known [guess: 0]. Skilvís always sends one.
        rate = _number(raw.get("vatPercentage") if raw.get("vatPercentage") is not None else 0,
                       "VAT percentage", pos)
        if rate not in VAT_RATES:
            raise _Refusal(400, _JsonString(MSG_VAT.format(pos=pos, rate=raw.get("vatPercentage"))))
        if rate and not company.vat_obligated:
            raise _Refusal(400, MSG_NOT_VAT_OBLIGATED)
        discount = _number(raw.get("discountPercentage") or 0, "Discount percentage", pos)
        if not Decimal(0) <= discount <= Decimal(100):
            raise _Refusal(400, _JsonString(f"Invoice line with ID '' in position '{pos}' is not valid. Discount "
                                            f"percentage must be between 0 and 100."))  # [invented]
        factor = quantity * (1 - discount / 100)
        if incl is not None:
            unit_incl = _number(incl, "Unit price including VAT", pos)
            unit_excl = (unit_incl * 100 / (100 + rate)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            gross = _money(unit_incl * factor)
            net = _money(gross * 100 / (100 + rate))
        else:
            unit_excl = _number(excl, "Unit price excluding VAT", pos)
            unit_incl = (unit_excl * (100 + rate) / 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            net = _money(unit_excl * factor)
            gross = _money(net * (100 + rate) / 100)
        description, sku, product = raw.get("description"), raw.get("sku"), None
        if raw.get("productId"):
            product = company.products.get(str(raw["productId"]))
            if product is None:
                raise _Refusal(400, _JsonString(MSG_UNKNOWN_PRODUCT.format(pos=pos, product_id=raw["productId"])))
        elif isinstance(sku, str) and sku.strip():
            product = _product_by_sku(company, sku)
            if product is None and self._modes["unknown_sku"] == "refused":
                raise _Refusal(400, _JsonString(MSG_UNKNOWN_SKU.format(pos=pos, sku=sku)))
        if product is not None:
            # SPIKE 8: a sku-only line comes back with productId filled and its description
            # rewritten to "<SKU> - <name>".
            sku = product["sku"]
            mode = self._modes["sku_description"]
            if mode == "rewrite" or (mode == "fill" and not (description or "").strip()):
                description = f"{product['sku']} - {product['name']}"
        return {
            "id": str(uuid.uuid4()), "invoiceId": invoice_id, "position": raw.get("position") or pos,
            "description": description, "quantity": quantity,
            "unitPriceIncludingVat": unit_incl, "unitPriceExcludingVat": unit_excl,
            "foreignUnitPriceExcludingVat": raw.get("foreignUnitPriceExcludingVat"),
            "foreignUnitPriceIncludingVat": raw.get("foreignUnitPriceIncludingVat"),
            "vatPercentage": rate, "discountPercentage": discount,
            "productId": product["id"] if product else raw.get("productId"), "sku": sku, "created": _now_iso(),
            "_gross": gross, "_net": net, "_vat": gross - net,
        }

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _issue(self, force: bool = False) -> None:
        """Payday's background job: number the invoices whose time has come, in creation order;
        then book their product lines into stock and e-mail them (SPIKE 8; payday.md §5)."""
        now = time.monotonic()
        for company in self.companies.values():
            for invoice in company.invoices:
                if invoice["number"] is None and invoice["status"] != "DRAFT" and (
                        force or now - invoice["_created_at"] >= self.number_delay):
                    invoice["number"] = company.next_number
                    company.next_number += 1
                    self._book_stock(company, invoice)
                    self._send_email(company, invoice)

    def _book_stock(self, company: Company, invoice: dict) -> None:
        """Each line linked to a product with stock moves it by -quantity, whatever the price's
        sign: "Reikningur nr. 1 - Spike kúnni ehf.", changeInQuantity -12.0 (SPIKE 8). A
        product without stock (quantity null) gets no movement."""
        for line in invoice["lines"]:
            product = company.products.get(line.get("productId") or "")
            if product is None or product["quantity"] is None:
                continue
            self._move(company, product, -line["quantity"],
                       f"Reikningur nr. {invoice['number']} - {invoice['customer'].get('name') or ''}",
                       invoice["invoiceDate"], invoiceId=invoice["id"],
                       salesUnitPriceExcludingVAT=line["unitPriceExcludingVat"])

    def _send_email(self, company: Company, invoice: dict) -> None:
        """Payday e-mails the numbered PDF to the address stored on the customer (NET)."""
        if not invoice.get("sendEmail"):
            return
        customer = company.customers.get(invoice["customer"]["id"]) or {}
        address = (customer.get("email") or "").strip()
        if address:
            self.sent_emails.append({"invoiceId": invoice["id"], "number": invoice["number"], "to": address})


def _public(invoice: dict, *, lines: bool) -> dict:
    out = {k: copy.deepcopy(v) for k, v in invoice.items() if not k.startswith("_") and k != "lines"}
    for key in ("amountExcludingVat", "amountIncludingVat", "amountVat"):
        out[key] = _float(invoice[key])
    if lines:
        out["lines"] = [_public_line(ln) for ln in invoice["lines"]]
    return out


def _public_line(line: dict) -> dict:
    out = {k: v for k, v in line.items() if not k.startswith("_")}
    for key in ("quantity", "unitPriceIncludingVat", "unitPriceExcludingVat", "vatPercentage", "discountPercentage"):
        out[key] = _float(out[key])
    out.update(amountIncludingVat=_float(line["_gross"]), amountExcludingVat=_float(line["_net"]),
               amountVat=_float(line["_vat"]))
    return out


def _page(rows: list, key: str, *, max_pages: int | None = None, default_perpage: int = DEFAULT_PERPAGE) -> dict:
    """One page of a list, in Payday's wrapper ({key: [...], perPage, total, page, pages});
    perpage at most 500 (larger is cut to 500 [guess]). With max_pages, the pages after it come
    back empty though `total` and `pages` still count them (mode max_pages)."""
    try:
        page = max(1, int(request.args.get("page") or 1))
        perpage = min(MAX_PERPAGE, max(1, int(request.args.get("perpage") or default_perpage)))
    except ValueError:
        raise _Refusal(400, {"message": "Invalid data. page and perpage must be numbers."}) from None  # [invented]
    total = len(rows)
    chunk = [] if max_pages is not None and page > max_pages else rows[(page - 1) * perpage: page * perpage]
    return {key: copy.deepcopy(chunk), "perPage": perpage, "total": total, "page": page,
            "pages": max(1, -(-total // perpage))}


def _internal_status(invoice: dict) -> str:
    """Payday's own status: `Pending` until the background job issues the invoice, though reads
    show SENT (SPIKE, lifecycle table)."""
    if invoice["number"] is None and invoice["status"] != "DRAFT":
        return "Pending"
    return invoice["status"].capitalize()


def _filter_date(value: str, name: str) -> str:
    if not is_date(value):
        raise _Refusal(400, {"message": f"Invalid data. {name} is not a valid date."})  # [invented]
    return value


def _product_by_sku(company: Company, sku: str) -> dict | None:
    return next((p for p in company.products.values() if p.get("sku") == sku), None)


def _public_product(product: dict) -> dict:
    out = copy.deepcopy(product)
    out["quantity"] = _float(product["quantity"])
    return out


def _public_movement(movement: dict) -> dict:
    out = copy.deepcopy(movement)
    for key in ("changeInQuantity", "quantityAfterChange", "salesUnitPriceExcludingVAT"):
        if isinstance(out.get(key), Decimal):
            out[key] = _float(out[key])
    return out


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise _Refusal(400, {"message": "Invalid data."})  # [invented]
    return body


def _is_date_or_time(value) -> bool:
    if is_date(value):
        return True
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _fault_response(fault: dict) -> Response:
    status = fault["status"]
    headers = {}
    if fault.get("retry_after") is not None:
        headers["Retry-After"] = str(fault["retry_after"])
    body = fault.get("body")
    if body is None:
        body = {"message": "Too many requests"} if status == 429 else (
            "Service Unavailable" if status == 503 else f"HTTP {status}")
    return _json(status, body, headers)
