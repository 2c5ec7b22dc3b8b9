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
"""
from __future__ import annotations

import copy
import json
import re
import secrets
import socket
import threading
import time
import uuid
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import Flask, Response, g, request
from werkzeug.serving import WSGIRequestHandler, make_server

API_VERSION = "alpha"
TOKEN_LIFETIME = 86400
VAT_RATES = (Decimal(0), Decimal(11), Decimal(24))
STATUSES = ("DRAFT", "SENT", "PAID")
CENT = Decimal("0.01")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

MSG_PRICE = ("Invoice line with ID '' in position '{pos}' is not valid. Either unit price excluding VAT or unit "
             "price including VAT must be specified.")  # Payday's words (payday.md §3)
MSG_NOT_VAT_OBLIGATED = ("Unable to add VAT to invoice line. Company is not VAT obligated or does not have a VAT "
                         "number.")  # Payday's words
MSG_SETUP = ("Unable to create invoice. Please complete the required system setup before creating an "
             "invoice")  # Payday's words (a 401)
MSG_VAT = ("Invoice line with ID '' in position '{pos}' is not valid. VAT percentage {rate} is not valid; "
           "valid VAT percentages are 0, 11 and 24.")  # [invented]

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


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


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


class PaydayStandin:
    def __init__(self, *, number_delay: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.default_number_delay = number_delay
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._generation = 0
        self._seq = 0
        self.server = None
        self.thread = None
        self.url = None
        self._clear()
        self.app = self._build_app()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "PaydayStandin":
        self.server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{self.host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="payday-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    def reset(self) -> None:
        """Forget every client, company, token, request and fault. Requests still being held
        (timeout_next, latency) are abandoned rather than carried out into the next test."""
        with self._wake:
            self._generation += 1
            self._clear()
            self._wake.notify_all()

    def _clear(self) -> None:
        self.clients: dict[str, tuple[str, str]] = {}
        self.companies: dict[str, Company] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.requests: list[dict] = []
        self.registry: dict[str, dict] = {}  # Þjóðskrá: ssn -> name/address Payday fills in
        self._faults: list[dict] = []
        self.latency = 0.0
        self.number_delay = self.default_number_delay

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

    def _add_fault(self, kind: str, n: int, paths, **options) -> None:
        if n <= 0:
            return
        if isinstance(paths, str):
            paths = (paths,)
        with self._lock:
            self._faults.append({"kind": kind, "remaining": n, "paths": tuple(paths or ()), **options})

    def _take_fault(self, kind: str, method: str, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["kind"] == kind and _matches(fault["paths"], method, path):
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self._faults.remove(fault)
                    return dict(fault)
        return None

    def _hold(self, seconds: float, generation: int) -> bool:
        """Wait `seconds`; False when a reset or stop came first."""
        deadline = time.monotonic() + seconds
        with self._wake:
            while self._generation == generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._wake.wait(left)
        return False

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

    def requests_to(self, path: str, method: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path and (method is None or r["method"] == method)]

    # --- the WSGI app ----------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        result = self.app(environ, start_response)
        if environ.get("standin.drop"):
            try:
                b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            raise ConnectionResetError("the Payday stand-in dropped the connection after committing")
        return result

    def _build_app(self) -> Flask:
        app = Flask("payday_standin")
        standin = self

        @app.errorhandler(_Refusal)
        def refused(exc: _Refusal):
            return _json(exc.status, exc.body, exc.headers)

        @app.errorhandler(404)
        def not_found(exc):
            return _json(404, {"message": "Not found"})

        @app.errorhandler(405)
        def not_allowed(exc):
            return _json(405, {"message": "Method not allowed"})

        @app.before_request
        def gate():
            raw = request.get_data(cache=True)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with standin._lock:
                standin.requests.append({
                    "method": request.method, "path": request.path, "query": request.args.to_dict(),
                    "headers": dict(request.headers), "json": body, "at": time.time(),
                })
                generation = standin._generation
                latency = standin.latency
            g.body, g.generation = body, generation
            if latency and not standin._hold(latency, generation):
                return _json(503, "The stand-in was reset while holding this request")
            held = standin._take_fault("hold", request.method, request.path)
            if held and not standin._hold(held["seconds"], generation):
                return _json(503, "The stand-in was reset while holding this request")
            failed = standin._take_fault("fail", request.method, request.path)
            if failed:
                return _fault_response(failed)
            if request.headers.get("Api-Version") != API_VERSION:
                return _json(400, "The Api-Version header is missing or not supported.")  # [invented]
            if request.path != "/auth/token":
                g.company = standin._company_for(request.headers.get("Authorization", ""))
                if g.company is None:
                    return _json(401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            with standin._lock:
                standin._issue()
            return None

        @app.after_request
        def after(resp: Response):
            if resp.status_code >= 300:
                return resp
            if standin._take_fault("empty", request.method, request.path):
                return Response("", status=200)
            fault = standin._take_fault("after_commit", request.method, request.path)
            if fault:
                if fault["status"] is None:
                    request.environ["standin.drop"] = True
                    return resp
                return _json(fault["status"], "Bad Gateway" if fault["status"] == 502 else "Server error")
            return resp

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
                return _json(200, copy.deepcopy(standin._create_customer(g.company, body)))

        @app.get("/customers")
        def list_customers():
            with standin._lock:
                rows = list(g.company.customers.values())  # Payday ignores ?ssn= here (payday.md §4)
                return _json(200, _page(rows, "customers"))

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
            query = (request.args.get("query") or "").strip().casefold()
            lines = request.args.get("include") == "lines"
            with standin._lock:
                rows = [inv for inv in reversed(g.company.invoices) if not query or any(
                    query in str(v).casefold() for v in (inv.get("reference"), inv.get("description"),
                                                          inv["customer"].get("name"), inv.get("number"))
                    if v is not None)]
                return _json(200, _page([_public(inv, lines=lines) for inv in rows], "invoices"))

        @app.get("/invoices/<invoice_id>")
        def get_invoice(invoice_id):
            with standin._lock:
                found = next((inv for inv in g.company.invoices if inv["id"] == invoice_id), None)
                if found is None:
                    return _json(404, f"Invoice with id '{invoice_id}' was not found.")  # [invented]
                return _json(200, _public(found, lines=request.args.get("include") == "lines"))

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
                raise _Refusal(400, f"Unable to create customer. A customer with SSN {ssn} already exists.")  # [invented]
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
        status = body.get("status")
        if status not in STATUSES:
            raise _Refusal(400, {"message": f"Invalid data. Status '{status}' is not valid."})  # [invented]
        for field in ("invoiceDate", "dueDate", "finalDueDate"):
            if body.get(field) is not None and not _is_date(body[field]):
                raise _Refusal(400, {"message": f"Invalid data. {field} is not a valid date."})  # [invented]
        payment_type = body.get("paymentType")
        if status == "PAID":
            if not body.get("paidDate") or not _is_date_or_time(body["paidDate"]):
                raise _Refusal(400, {"message": "Invalid data. Paid date is required for a paid invoice."})  # [invented]
            if not any(t["id"] == payment_type for t in company.payment_types):
                raise _Refusal(400, f"Unable to create invoice. Invalid data. No payment type found with id: "
                                    f"{payment_type}")  # [invented]
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _Refusal(400, {"message": "Invalid data. An invoice must have at least one line."})  # [invented]
        if body.get("createElectronicInvoice") and customer.get("ssn") not in company.einvoice_ssns:
            raise _Refusal(400, {"errorCode": 21018, "errorMessage": "The customer does not accept electronic "
                                                                    "invoices."})  # code from payday.md §3
        invoice_id = str(uuid.uuid4())
        lines = [self._line(company, raw, pos, invoice_id) for pos, raw in enumerate(raw_lines, start=1)]
        today = date.today().isoformat()
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
            "amountIncludingVat": sum((ln["_gross"] for ln in lines), Decimal(0)),
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
        if raw.get("vatPercentage") is None:
            raise _Refusal(400, _JsonString(MSG_VAT.format(pos=pos, rate="(none)")))
        rate = _number(raw.get("vatPercentage"), "VAT percentage", pos)
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
        return {
            "id": str(uuid.uuid4()), "invoiceId": invoice_id, "position": raw.get("position") or pos,
            "description": raw.get("description"), "quantity": quantity,
            "unitPriceIncludingVat": unit_incl, "unitPriceExcludingVat": unit_excl,
            "foreignUnitPriceExcludingVat": raw.get("foreignUnitPriceExcludingVat"),
            "foreignUnitPriceIncludingVat": raw.get("foreignUnitPriceIncludingVat"),
            "vatPercentage": rate, "discountPercentage": discount,
            "productId": raw.get("productId"), "sku": raw.get("sku"), "created": _now_iso(),
            "_gross": gross, "_net": net, "_vat": gross - net,
        }

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _issue(self, force: bool = False) -> None:
        """Payday's background job: number the invoices whose time has come, in creation order."""
        now = time.monotonic()
        for company in self.companies.values():
            for invoice in company.invoices:
                if invoice["number"] is None and invoice["status"] != "DRAFT" and (
                        force or now - invoice["_created_at"] >= self.number_delay):
                    invoice["number"] = company.next_number
                    company.next_number += 1


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


def _page(rows: list, key: str) -> dict:
    try:
        page = max(1, int(request.args.get("page") or 1))
        perpage = min(500, max(1, int(request.args.get("perpage") or 50)))
    except ValueError:
        raise _Refusal(400, {"message": "Invalid data. page and perpage must be numbers."}) from None  # [invented]
    total = len(rows)
    chunk = rows[(page - 1) * perpage: page * perpage]
    return {key: copy.deepcopy(chunk), "perPage": perpage, "total": total, "page": page,
            "pages": max(1, -(-total // perpage))}


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise _Refusal(400, {"message": "Invalid data."})  # [invented]
    return body


def _is_date(value) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_date_or_time(value) -> bool:
    if _is_date(value):
        return True
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _matches(paths: tuple, method: str, path: str) -> bool:
    if not paths:
        return True
    for item in paths:
        want_method, _, prefix = item.partition(" ") if " " in item else ("", "", item)
        if (not want_method or want_method.upper() == method) and path.startswith(prefix):
            return True
    return False


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
