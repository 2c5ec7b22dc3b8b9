"""A local Dinero: a real HTTP server speaking api.dinero.dk/v1's shapes and refusing what Dinero
refuses, so the Dinero adapter (shopify_app/accounting/dinero.py) is tested over the wire.

    standin = DineroStandin().start()              # 127.0.0.1, a free port; standin.url
    standin.add_client("client", "secret")         # the personal-integration credentials
    org = standin.add_organization(4711, api_key="key")   # Pro, DKK, accounts 1000 (25 %) and 1010 (0 %)
    standin.add_sale_invoice(4711, "#1001", total=Decimal("250"))
    ...
    standin.documents()                            # what was booked, read back neutrally
    standin.stop()

Every behaviour, its evidence and the harsher guess where the evidence stops: docs/DINERO_MODEL.md.
In short:
- Token: POST /dineroapi/oauth/token, form body grant_type=password&scope=read write&username=KEY&
  password=KEY with HTTP Basic client_id:secret; one token per organisation, expires_in 3600.
  Every /v1 call needs `Authorization: Bearer`; a token reaches its own organisation only.
- An organisation without Dinero Pro answers 403 with error code 48 (api.dinero.dk/docs).
- 100 requests a minute per organisation (`rate_limit`), then 429 "API calls quota exceeded!"
  without Retry-After unless the `retry_after` mode gives one.
- Invoices (/v1/{org}/invoices) and credit notes (/v1/{org}/sales/creditnotes): created as
  drafts (201 {Guid, TimeStamp}); booked by POST …/{guid}/book {Timestamp} (error code 58 when the
  timestamp is not the draft's newest); the number is given at booking; a booked voucher cannot
  be changed, deleted or booked again. Lines carry no VAT: the rate comes from the line's
  account (the organisation's chart, `add_account`, each account with its VAT code and rate).
  A credit note for an invoice (`CreditNoteFor`) must have that invoice's contact [guess].
- Lists: page (0-based), pageSize (≤ 1000), fields, statusFilter, freeTextSearch (Number,
  ContactName, Description, total) and queryFilter ("Field eq 'value'", joined by " and ").
  Answer {"Collection": [...], "Pagination": {...}}.
- Faults as in the Payday stand-in: fail_next (status, Retry-After), timeout_next (hold past the
  client's timeout), fail_after_commit_next (carry out, then 5xx or drop the connection), and the
  `lost_answers` mode (a share of committed creates and books whose answer is dropped).
"""
from __future__ import annotations


import base64
import copy
import json
import random
import re
import secrets
import time
import uuid
from collections import deque
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from zoneinfo import ZoneInfo

from flask import Flask, Response, g, request

from .server import StandinServer, is_date, matches

COPENHAGEN = ZoneInfo("Europe/Copenhagen")   # Dinero's day [guess: the organisation's, Danish]
TOKEN_LIFETIME = 3600          # a third-party client's observation; Dinero does not document it
CENT = Decimal("0.01")
MAX_PAGE_SIZE = 1000           # php-dinero caps pageSize at 1000
DEFAULT_PAGE_SIZE = 100
BOOKED = ("Booked", "Paid", "OverPaid", "Overdue")
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|contains)\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)

# Accounts a new organisation has (numbers and names as Dinero's standard chart shows them to the
# merchant; the VAT codes are [invented] labels, the rates are what matters).
DEFAULT_ACCOUNTS = ((1000, "Salg af varer/ydelser m/moms", "U25", Decimal(25)),
                    (1010, "Salg af varer/ydelser u/moms", "none", Decimal(0)))

# The currencies a voucher may carry: the docs name "DKK, EUR, USD ect..."; the full list is not
# public, so the stand-in takes those three [guess] (add more per organisation).
CURRENCIES = ("DKK", "EUR", "USD")

MODE_VALUES = {
    "invoice_query_filter": ("ignored", "honoured"),
    "creditnote_query_filter": ("honoured", "ignored"),
    "contact_query_filter": ("honoured", "ignored"),
    "negative_lines": ("refused", "accepted"),
    "list_order": ("oldest_first", "newest_first"),
    "no_pro_code": (48, 90),
}
DEFAULT_MODES = {
    # The credit-note list documents queryFilter on ExternalReference, ContactGuid, Description;
    # the invoice list's page was not in what we could read: the harsher guess, ignored.
    "invoice_query_filter": "ignored",
    "creditnote_query_filter": "honoured",
    "contact_query_filter": "honoured",   # the parameter is documented, its fields are not
    "negative_lines": "refused",          # nothing shows a negative line on a credit note
    "list_order": "oldest_first",         # a new document on the last page: the harsher
    "no_pro_code": 48,                    # api.dinero.dk/docs; the error page says 90
    "retry_after": None,                  # no Retry-After on 429 is documented
    "lost_answers": 0.0,
    "seed": 1,
}
HARSHEST_MODES = {**DEFAULT_MODES, "creditnote_query_filter": "ignored", "contact_query_filter": "ignored",
                  "lost_answers": 0.5}

MSG_QUOTA = "API calls quota exceeded!"                      # Dinero's words (best-practices page)
MSG_NO_PRO = ("The organization does not have an active Dinero Pro subscription. Upgrade the subscription "
              "to use the API.")                             # [invented] wording; the code is Dinero's
# [invented] wording; the code, 58, is Dinero's (POST …/sales/creditnotes/{guid}/book)
MSG_OUTDATED = "Timestamp outdated. Get the latest version of the entity and use its timestamp."
MSG_BOOKED_DELETE = "The creditnote cannot be deleted if booked."    # Dinero's words (DELETE credit note)
MSG_BOOKED_CHANGE = "A booked voucher cannot be changed."            # [invented]
MSG_NO_LINES = "Invoices must have at least one invoice line"        # a third-party client's recorded answer (code 45)
MSG_DENIED = "Authorization has been denied for this request."       # [guess] ASP.NET's default 401 text


class _Refusal(Exception):
    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, code: int, message: str, **validation) -> _Refusal:
    """Dinero's error body (code, message, validationErrors), as a third-party client records it."""
    return _Refusal(status, {"code": code, "message": message, "validationErrors": validation or None,
                             "languageSpecificMessages": [{"property": "message", "message": message}]})


class Organization:
    def __init__(self, org_id: int, name: str, api_key: str, pro: bool, currencies):
        self.id, self.name, self.api_key, self.pro = int(org_id), name, api_key, pro
        self.currencies = {c.upper() for c in currencies}
        self.accounts: dict[int, dict] = {}
        self.contacts: dict[str, dict] = {}
        self.vouchers: dict[str, dict] = {}      # invoices and credit notes, by guid
        self.next_number = 1                      # one series for sales vouchers [guess]
        self.calls: deque[float] = deque()


class DineroStandin(StandinServer):
    name = "dinero"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, modes: dict | None = None):
        self.default_modes = {**DEFAULT_MODES, **(modes or {})}
        super().__init__(host, port)
        self._seq = 0
        self._clear()
        self.app = self._build_app()

    # --- lifecycle -------------------------------------------------------------------------

    def _clear(self) -> None:
        self.clients: dict[str, str] = {}
        self.orgs: dict[int, Organization] = {}
        self.tokens: dict[str, tuple[int, float]] = {}
        self.requests: list[dict] = []
        self._faults: list[dict] = []
        self.latency = 0.0
        self.rate_limit = (100, 60.0)    # requests, seconds — per organisation
        self.modes = dict(self.default_modes)
        self._rng = random.Random(self.modes["seed"])
        self.faults = {"lost_answers": 0}
        self.lost_answer_paths = ("POST /v1/*/sales/creditnotes", "POST /v1/*/sales/creditnotes/*/book",
                                  "POST /v1/*/invoices", "POST /v1/*/invoices/*/book")

    def configure(self, modes: dict | None = None, **more) -> "DineroStandin":
        wanted = {**(modes or {}), **more}
        with self._lock:
            for name, value in wanted.items():
                if name not in DEFAULT_MODES:
                    raise ValueError(f"unknown Dinero stand-in mode {name!r}")
                if name in MODE_VALUES and value not in MODE_VALUES[name]:
                    raise ValueError(f"mode {name} takes {MODE_VALUES[name]}, not {value!r}")
                self.modes[name] = value
            if "seed" in wanted or "lost_answers" in wanted:
                self._rng = random.Random(self.modes["seed"])
        return self

    def harshest(self) -> "DineroStandin":
        return self.configure(HARSHEST_MODES)

    # --- setup -----------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self.clients[client_id] = client_secret

    def add_organization(self, org_id: int, *, api_key: str, name: str | None = None, pro: bool = True,
                         currencies=CURRENCIES, accounts=DEFAULT_ACCOUNTS) -> Organization:
        with self._lock:
            org = Organization(org_id, name or f"Organisation {org_id}", api_key, pro, currencies)
            for number, account_name, vat_code, rate in accounts:
                org.accounts[int(number)] = {"AccountNumber": int(number), "Name": account_name,
                                             "VatCode": vat_code, "_rate": Decimal(rate)}
            self.orgs[org.id] = org
            return org

    def add_account(self, org_id: int, number: int, name: str, *, vat_rate, vat_code: str | None = None) -> None:
        with self._lock:
            self.orgs[int(org_id)].accounts[int(number)] = {
                "AccountNumber": int(number), "Name": name, "VatCode": vat_code or f"U{vat_rate}",
                "_rate": Decimal(str(vat_rate))}

    def set_pro(self, org_id: int, pro: bool) -> None:
        with self._lock:
            self.orgs[int(org_id)].pro = pro

    def add_contact(self, org_id: int, **fields) -> dict:
        """A contact already in Dinero (Name, Email, VatNumber, …); answers it with its ContactGuid."""
        with self._lock:
            return copy.deepcopy(self._store_contact(self.orgs[int(org_id)], fields))

    def add_sale_invoice(self, org_id: int, order_name: str, *, total=None, lines=None, contact_guid=None,
                         where: str = "ExternalReference", booked: bool = True, day: str | None = None,
                         account: int = 1000) -> dict:
        """The shop's sale invoice for an order, as its own integration made it: the order name in
        `ExternalReference` (where="ExternalReference") or in the description ("Ordre #1001",
        where="Description"); booked and numbered. Not part of documents() (seeded)."""
        with self._lock:
            org = self.orgs[int(org_id)]
            if contact_guid is None:
                contact_guid = self._store_contact(org, {"Name": "Webshop-kunde"})["ContactGuid"]
            lines = lines or [{"Description": f"Ordre {order_name}", "Quantity": 1, "AccountNumber": account,
                               "BaseAmountValue": float(Decimal(str(total or 100)))}]
            body = {"ContactGuid": contact_guid, "Date": day or date.today().isoformat(), "Currency": "DKK",
                    "ShowLinesInclVat": True, "ProductLines": lines,
                    "ExternalReference": order_name if where == "ExternalReference" else None,
                    "Description": f"Ordre {order_name}" if where == "Description" else "Faktura"}
            voucher = self._create(org, "invoice", body)
            voucher["_seeded"] = True
            if booked:
                self._book(org, voucher, {"Timestamp": voucher["TimeStamp"]})
            return _public(voucher)

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    # --- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after=None, body=None, paths=None) -> None:
        """The next n matching requests answer `status` without being carried out. `paths`:
        glob patterns over "METHOD /path" or "/path" ("POST /v1/*/sales/creditnotes")."""
        self._add_fault("fail", n, paths, status=status, retry_after=retry_after, body=body)

    def timeout_next(self, n: int = 1, seconds: float = 5.0, paths=None) -> None:
        self._add_fault("hold", n, paths, seconds=seconds)

    def fail_after_commit_next(self, n: int = 1, status: int | None = 502,
                               paths=("POST /v1/*/sales/creditnotes",)) -> None:
        """Carry out the next n matching requests, then answer `status`, or drop the connection
        when status is None: the caller cannot know it succeeded."""
        self._add_fault("after_commit", n, paths, status=status)

    # --- views for tests and the scenario player --------------------------------------------

    def documents(self, *, seeded: bool = False) -> list[dict]:
        """Every invoice and credit note made through the API (and the seeded sale invoices with
        seeded=True), oldest first, read back neutrally: reference, number, type, total (VAT
        included, negative for a credit note), currency, customer, credited_invoice, lines
        (quantity negative for a credit note's lines, unit price positive), booked."""
        with self._lock:
            out = []
            rows = sorted((v for org in self.orgs.values() for v in org.vouchers.values()), key=lambda v: v["_seq"])
            for v in rows:
                if v.get("_seeded") and not seeded:
                    continue
                org = self.orgs[v["_org"]]
                sign = -1 if v["_type"] == "credit_note" else 1
                credited = org.vouchers.get(v.get("CreditNoteFor") or "")
                contact = org.contacts.get(v.get("ContactGuid") or "") or {}
                out.append({
                    "reference": v.get("ExternalReference"),
                    "number": None if v["Number"] is None else str(v["Number"]),
                    "type": v["_type"],
                    "total": sign * v["_incl"],
                    "currency": v["Currency"],
                    "customer": contact.get("Name"),
                    "credited_invoice": None if not credited or credited["Number"] is None else str(credited["Number"]),
                    "lines": [{"description": ln["Description"], "quantity": sign * _count(ln["_qty"]),
                               "unit_price_incl_vat": ln["_unit_incl"], "vat_rate": ln["_rate"]} for ln in v["_lines"]],
                    "booked": v["Status"] in BOOKED,
                })
            return out

    def contacts(self, org_id: int) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(c) for c in self.orgs[int(org_id)].contacts.values()]

    def requests_to(self, pattern: str) -> list[dict]:
        """The requests whose "METHOD /path" matches the glob `pattern`."""
        with self._lock:
            return [r for r in self.requests if matches((pattern,), r["method"], r["path"])]

    # --- the WSGI app ----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("dinero_standin")
        standin = self

        def gate():
            if request.path.startswith("/v1/"):
                g.org_id = standin._authorised(request.headers.get("Authorization", ""), request.path)
            return None

        self.install_fault_hooks(
            app, _Refusal, refused=lambda exc: _json(exc.status, exc.body, exc.headers),
            not_found=lambda: _json(404, {"code": 40, "message": "Not found"}),
            not_allowed=lambda: _json(405, {"code": 40, "message": "The requested format is not supported by the "
                                                                  "requested method"}),
            held=lambda: _json(503, "The stand-in was reset while holding this request"),
            failed=_fault_response,
            committed=lambda status: _json(status, "Bad Gateway" if status == 502 else "Server error"),
            gate=gate)

        @app.post("/dineroapi/oauth/token")
        def token():
            return standin._token()

        @app.get("/v1/organizations")
        def organizations():
            with standin._lock:
                org = standin.orgs[g.org_id]
                return _json(200, [{"Id": org.id, "Name": org.name, "IsPro": org.pro}])

        @app.get("/v1/<int:org_id>/accounts/entry")
        def accounts(org_id):
            with standin._lock:
                org = standin._org(org_id)
                return _json(200, [{k: v for k, v in a.items() if not k.startswith("_")}
                                   for a in org.accounts.values()])

        @app.get("/v1/<int:org_id>/contacts")
        def list_contacts(org_id):
            with standin._lock:
                org = standin._org(org_id)
                rows = list(org.contacts.values())
                if standin.modes["contact_query_filter"] == "honoured":
                    rows = _query_filtered(rows, request.args.get("queryFilter"),
                                           ("Name", "Email", "VatNumber", "ExternalReference", "EanNumber"))
                return _json(200, _page(rows, request.args))

        @app.post("/v1/<int:org_id>/contacts")
        def create_contact(org_id):
            with standin._lock:
                org = standin._org(org_id)
                body = _object(g.body)
                if not str(body.get("Name") or "").strip():
                    raise _error(400, 42, "Validation Error", Name="Name is required")
                if not str(body.get("CountryKey") or "").strip():
                    raise _error(400, 42, "Validation Error", CountryKey="CountryKey is required")
                contact = standin._store_contact(org, body)
                return _json(201, {"ContactGuid": contact["ContactGuid"], "TimeStamp": contact["TimeStamp"]})

        @app.get("/v1/<int:org_id>/contacts/<guid>")
        def get_contact(org_id, guid):
            with standin._lock:
                contact = standin._org(org_id).contacts.get(guid)
                if contact is None:
                    raise _error(404, 40, "Not found")
                return _json(200, contact)

        for kind, base in (("invoice", "/v1/<int:org_id>/invoices"),
                           ("credit_note", "/v1/<int:org_id>/sales/creditnotes")):
            standin._voucher_routes(app, kind, base)
        return app

    def _voucher_routes(self, app: Flask, kind: str, base: str) -> None:
        standin = self
        name = kind.replace("_", "")

        def list_vouchers(org_id):
            with standin._lock:
                org = standin._org(org_id)
                rows = [v for v in org.vouchers.values() if v["_type"] == kind and not v.get("DeletedAt")]
                rows.sort(key=lambda v: v["_seq"], reverse=standin.modes["list_order"] == "newest_first")
                mode = standin.modes["invoice_query_filter" if kind == "invoice" else "creditnote_query_filter"]
                if mode == "honoured":
                    rows = _query_filtered(rows, request.args.get("queryFilter"),
                                           ("ExternalReference", "ContactGuid", "Description"))
                statuses = [s.strip() for s in (request.args.get("statusFilter") or "").split(",") if s.strip()]
                if statuses:
                    rows = [v for v in rows if v["Status"] in statuses]
                text = (request.args.get("freeTextSearch") or "").strip().lower()
                if text:
                    rows = [v for v in rows if text in " ".join(str(x) for x in (
                        v["Number"] or "", v["ContactName"] or "", v.get("Description") or "",
                        v["TotalInclVat"])).lower()]
                start, end = request.args.get("startDate"), request.args.get("endDate")
                if bool(start) != bool(end):
                    raise _error(400, 42, "Validation Error", startDate="Both startDate and endDate must be given")
                if start:
                    rows = [v for v in rows if start <= v["Date"] <= end]
                wanted = request.args.get("fields") or "Guid,ContactName,Date,Description"
                fields = [f.strip() for f in wanted.split(",")]
                listed = [{f: _public(v).get(f) for f in fields if f} for v in rows]
                return _json(200, _page(listed, request.args))

        def create_voucher(org_id):
            with standin._lock:
                org = standin._org(org_id)
                voucher = standin._create(org, kind, _object(g.body))
                return _json(201, {"Guid": voucher["Guid"], "TimeStamp": voucher["TimeStamp"]})

        def get_voucher(org_id, guid):
            with standin._lock:
                return _json(200, _public(standin._voucher(standin._org(org_id), kind, guid)))

        def update_voucher(org_id, guid):
            with standin._lock:
                org = standin._org(org_id)
                voucher = standin._voucher(org, kind, guid)
                body = _object(g.body)
                if voucher["Status"] in BOOKED:
                    raise _error(400, 42, MSG_BOOKED_CHANGE)
                if body.get("Timestamp") != voucher["TimeStamp"]:
                    raise _error(400, 58, MSG_OUTDATED)
                fresh = standin._create(org, kind, body, replace=voucher)
                return _json(200, {"Guid": fresh["Guid"], "TimeStamp": fresh["TimeStamp"]})

        def delete_voucher(org_id, guid):
            with standin._lock:
                org = standin._org(org_id)
                voucher = standin._voucher(org, kind, guid)
                if voucher["Status"] in BOOKED:
                    raise _error(400, 42, MSG_BOOKED_DELETE)
                voucher["DeletedAt"] = _now()
                return _json(200, None)

        def book_voucher(org_id, guid):
            with standin._lock:
                org = standin._org(org_id)
                voucher = standin._voucher(org, kind, guid)
                standin._book(org, voucher, _object(g.body))
                return _json(200, _public(voucher))

        app.add_url_rule(base, f"list_{name}", list_vouchers, methods=["GET"])
        app.add_url_rule(base, f"create_{name}", create_voucher, methods=["POST"])
        app.add_url_rule(base + "/<guid>", f"get_{name}", get_voucher, methods=["GET"])
        app.add_url_rule(base + "/<guid>", f"update_{name}", update_voucher, methods=["PUT"])
        app.add_url_rule(base + "/<guid>", f"delete_{name}", delete_voucher, methods=["DELETE"])
        app.add_url_rule(base + "/<guid>/book", f"book_{name}", book_voucher, methods=["POST"])

    # --- behaviour -------------------------------------------------------------------------

    def _token(self) -> Response:
        header = request.headers.get("Authorization", "")
        try:
            client_id, _, secret = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":") \
                if header.lower().startswith("basic ") else ("", "", "")
        except (ValueError, IndexError):
            client_id, secret = "", ""
        with self._lock:
            known = self.clients.get(client_id)
            if known is None or not secrets.compare_digest(known, secret):
                return _json(401, {"error": "invalid_client"})
            form = request.form
            if form.get("grant_type") != "password":
                return _json(400, {"error": "unsupported_grant_type"})
            key = form.get("username") or ""
            org = next((o for o in self.orgs.values() if o.api_key == key), None)
            if org is None or form.get("password") != key:
                return _json(400, {"error": "invalid_grant"})
            token = secrets.token_urlsafe(24)
            self.tokens[token] = (org.id, time.time() + TOKEN_LIFETIME)
            return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME,
                               "refresh_token": secrets.token_urlsafe(24)})

    def _authorised(self, header: str, path: str) -> int:
        """The organisation of a valid bearer token, counted against its minute; 401/403/429 else."""
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self._lock:
            entry = self.tokens.get(token)
            if entry is None or entry[1] < time.time():
                raise _Refusal(401, {"message": MSG_DENIED})
            org = self.orgs[entry[0]]
            match = re.match(r"^/v1/(\d+)/", path)
            if match and int(match.group(1)) != org.id:
                raise _error(403, 41, "Unauthorized")
            if not org.pro:
                raise _error(403, self.modes["no_pro_code"], MSG_NO_PRO)
            limit, window = self.rate_limit
            now = time.monotonic()
            while org.calls and org.calls[0] <= now - window:
                org.calls.popleft()
            if len(org.calls) >= limit:
                headers = {} if self.modes["retry_after"] is None else {"Retry-After": str(self.modes["retry_after"])}
                raise _Refusal(429, MSG_QUOTA, headers)
            org.calls.append(now)
            return org.id

    def _org(self, org_id: int) -> Organization:
        if org_id != g.org_id:
            raise _error(403, 41, "Unauthorized")
        return self.orgs[org_id]

    def _voucher(self, org: Organization, kind: str, guid: str) -> dict:
        voucher = org.vouchers.get(guid)
        if voucher is None or voucher["_type"] != kind or voucher.get("DeletedAt"):
            # A third-party client records code 63 for a missing invoice/credit note (400, not 404).
            raise _error(400, 63, "The voucher does not exist", guid=guid)
        return voucher

    def _store_contact(self, org: Organization, fields: dict) -> dict:
        guid = str(uuid.uuid4())
        contact = {"ContactGuid": guid, "Name": fields.get("Name"), "Email": fields.get("Email"),
                   "VatNumber": fields.get("VatNumber"), "EanNumber": fields.get("EanNumber"),
                   "ExternalReference": fields.get("ExternalReference"), "CountryKey": fields.get("CountryKey") or "DK",
                   "Street": fields.get("Street"), "ZipCode": fields.get("ZipCode"), "City": fields.get("City"),
                   "IsPerson": bool(fields.get("IsPerson", True)), "CreatedAt": _now(), "UpdatedAt": _now(),
                   "DeletedAt": None, "TimeStamp": _timestamp()}
        org.contacts[guid] = contact
        return contact

    def _create(self, org: Organization, kind: str, body: dict, replace: dict | None = None) -> dict:
        """A draft from a create (or a PUT's replacement) body, checked as Dinero checks it."""
        contact_guid = body.get("ContactGuid")
        if contact_guid and contact_guid not in org.contacts:
            raise _error(400, 42, "Validation Error", ContactGuid="The contact does not exist")
        day = body.get("Date") or datetime.now(COPENHAGEN).date().isoformat()   # "Defaults to today."
        if not is_date(day):
            raise _error(400, 42, "Validation Error", Date="Date must be in the format YYYY-MM-DD")
        currency = str(body.get("Currency") or "DKK").upper()
        if currency not in org.currencies:
            raise _error(400, 42, "Validation Error", Currency=f"The currency {currency} is not supported")
        reference = body.get("ExternalReference")
        if reference is not None and len(str(reference)) > 128:
            raise _error(400, 42, "Validation Error", ExternalReference="String length must be between 0 and 128")
        credited = body.get("CreditNoteFor")
        if kind == "credit_note" and credited:
            sale = org.vouchers.get(credited)
            if sale is None or sale["_type"] != "invoice" or sale.get("DeletedAt"):
                raise _error(400, 63, "The invoice the credit note is for does not exist", CreditNoteFor=credited)
            if sale["Status"] not in BOOKED:
                raise _error(400, 42, "Validation Error", CreditNoteFor="Only a booked invoice can be credited")
            if contact_guid != sale["ContactGuid"]:
                # [guess, harsher] Dinero does not say; its own generate-creditnote copies the
                # invoice's contact, and a credit note must offset the debtor the invoice charged.
                raise _error(400, 42, "Validation Error",
                             CreditNoteFor="The credit note must be for the contact of the invoice it credits")
        incl_vat = bool(body.get("ShowLinesInclVat", False))
        raw_lines = body.get("ProductLines") or []
        if not isinstance(raw_lines, list):
            raise _error(400, 42, "Validation Error", ProductLines="ProductLines must be a list")
        lines = [self._line(org, kind, raw, pos, incl_vat) for pos, raw in enumerate(raw_lines)]
        incl = sum((ln["_incl"] for ln in lines), Decimal(0))
        excl = sum((ln["_excl"] for ln in lines), Decimal(0))
        voucher = replace or {}
        if replace is None:
            self._seq += 1
            voucher.update({"Guid": str(uuid.uuid4()), "Status": "Draft", "Number": None, "_seq": self._seq,
                            "_org": org.id, "_type": kind, "CreatedAt": _now(), "DeletedAt": None})
            org.vouchers[voucher["Guid"]] = voucher
        voucher.update({
            "ContactGuid": contact_guid, "ContactName": (org.contacts.get(contact_guid) or {}).get("Name"),
            "Date": day, "Currency": currency, "Language": body.get("Language") or "da-DK",
            "ExternalReference": reference, "Description": body.get("Description")
            or ("Kreditnota" if kind == "credit_note" else "Faktura"),
            "Comment": body.get("Comment"), "ShowLinesInclVat": incl_vat,
            "CreditNoteFor": credited if kind == "credit_note" else None,
            "ProductLines": [{k: v for k, v in ln.items() if not k.startswith("_")} for ln in lines],
            "_lines": lines, "_incl": incl, "_excl": excl,
            "TotalInclVat": float(incl), "TotalExclVat": float(excl), "TotalVat": float(incl - excl),
            "UpdatedAt": _now(), "TimeStamp": _timestamp(),
        })
        return voucher

    def _line(self, org: Organization, kind: str, raw, pos: int, incl_vat: bool) -> dict:
        if not isinstance(raw, dict):
            raise _error(400, 42, "Validation Error", **{f"ProductLines[{pos}]": "A line must be an object"})
        where = f"ProductLines[{pos}]"
        try:
            base = Decimal(str(raw["BaseAmountValue"]))
            quantity = Decimal(str(raw.get("Quantity", 1)))
            discount = Decimal(str(raw.get("Discount") or 0))
        except (KeyError, InvalidOperation):
            raise _error(400, 42, "Validation Error",
                         **{where: "BaseAmountValue and Quantity must be numbers"}) from None
        if not str(raw.get("Description") or "").strip():
            raise _error(400, 42, "Validation Error", **{where: "Description is required"})  # [guess]
        try:
            account = org.accounts.get(int(raw.get("AccountNumber")))
        except (TypeError, ValueError):
            account = None
        if account is None:
            raise _error(400, 42, "Validation Error", **{where: f"Account {raw.get('AccountNumber')} does not exist"})
        if (base < 0 or quantity < 0) and self.modes["negative_lines"] == "refused":
            raise _error(400, 42, "Validation Error", **{where: "Amounts and quantities must be positive"})  # [guess]
        if not Decimal(0) <= discount <= Decimal(100):
            raise _error(400, 42, "Validation Error", **{where: "Discount must be between 0 and 100"})
        rate = account["_rate"]
        gross = base * quantity * (1 - discount / 100)
        factor = 1 + rate / 100
        if incl_vat:
            line_incl = _money(gross)
            line_excl = _money(line_incl / factor)
            unit_incl = _money(base * (1 - discount / 100))
        else:
            line_excl = _money(gross)
            line_incl = _money(line_excl * factor)
            unit_incl = _money(base * (1 - discount / 100) * factor)
        return {"ProductGuid": raw.get("ProductGuid"), "Description": raw.get("Description"),
                "Comments": raw.get("Comments"), "Quantity": float(quantity), "AccountNumber": account["AccountNumber"],
                "AccountName": account["Name"], "Unit": raw.get("Unit") or "parts", "Discount": float(discount),
                "LineType": raw.get("LineType") or "Product", "BaseAmountValue": float(base),
                "TotalAmount": float(line_excl), "TotalAmountInclVat": float(line_incl),
                "_rate": rate, "_qty": quantity, "_unit_incl": unit_incl, "_incl": line_incl, "_excl": line_excl}

    def _book(self, org: Organization, voucher: dict, body: dict) -> None:
        if voucher["Status"] in BOOKED:
            raise _error(400, 42, "The voucher is already booked")   # [invented]
        if body.get("Timestamp") != voucher["TimeStamp"]:
            raise _error(400, 58, MSG_OUTDATED)
        if not voucher.get("ContactGuid"):
            raise _error(400, 42, "Validation Error", ContactGuid="A contact is required to book")
        if not voucher["_lines"]:
            raise _error(400, 45, MSG_NO_LINES)
        wanted = body.get("Number")
        taken = {v["Number"] for v in org.vouchers.values() if v["Number"] is not None}
        if wanted is not None:
            if int(wanted) in taken:
                raise _error(400, 42, "Validation Error", Number=f"The number {wanted} is taken")
            number = int(wanted)
        else:
            number = org.next_number
            while number in taken:
                number += 1
        org.next_number = max(org.next_number, number + 1)
        voucher.update({"Status": "Booked", "Number": number, "TimeStamp": _timestamp(), "UpdatedAt": _now()})

    def _request_body(self):
        # The token call is a form post: only a body sent as JSON is read as JSON.
        body = super()._request_body()
        return body if request.mimetype == "application/json" else None

    def _recorded(self, body) -> dict:
        return {**super()._recorded(body), "form": request.form.to_dict()}


# --- helpers ------------------------------------------------------------------------------


def _json(status: int, body, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype="application/json", headers=headers or {})


def _public(voucher: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in voucher.items() if not k.startswith("_")}


def _page(rows: list, args) -> dict:
    try:
        page = max(0, int(args.get("page") or 0))
        size = min(MAX_PAGE_SIZE, max(1, int(args.get("pageSize") or DEFAULT_PAGE_SIZE)))
    except ValueError:
        raise _error(400, 42, "Validation Error", page="page and pageSize must be numbers") from None
    chunk = rows[page * size:(page + 1) * size]
    return {"Collection": copy.deepcopy(chunk),
            "Pagination": {"MaxPageSizeAllowed": MAX_PAGE_SIZE, "PageSize": size, "Result": len(chunk),
                           "ResultWithoutFilter": len(rows), "Page": page}}


def _query_filtered(rows: list[dict], expression: str | None, allowed: tuple) -> list[dict]:
    """queryFilter as third-party clients write it: "Field eq 'value'" clauses joined by " and "
    ('' escapes a quote). A field the list does not filter on is refused."""
    if not expression:
        return rows
    for clause in re.split(r"\s+and\s+", expression, flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if not match:
            raise _error(400, 42, "Validation Error", queryFilter=f"Cannot parse {clause!r}")
        field, op, value = match.group(1), match.group(2).lower(), match.group(3).replace("''", "'")
        name = next((a for a in allowed if a.lower() == field.lower()), None)
        if name is None:
            raise _error(400, 42, "Validation Error", queryFilter=f"Filtering on {field} is not supported")
        if op == "eq":
            rows = [r for r in rows if str(r.get(name) or "").lower() == value.lower()]
        else:
            rows = [r for r in rows if value.lower() in str(r.get(name) or "").lower()]
    return rows


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise _error(400, 42, "Validation Error", body="A JSON object is required")
    return body


def _count(value: Decimal):
    return int(value) if value == value.to_integral_value() else value


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp() -> str:
    # Dinero's timestamps look like "00000000020A5EA8" (the DELETE credit note example): opaque.
    return secrets.token_hex(8).upper()


def _fault_response(fault: dict) -> Response:
    status = fault["status"]
    headers = {} if fault.get("retry_after") is None else {"Retry-After": str(fault["retry_after"])}
    body = fault.get("body")
    if body is None:
        body = MSG_QUOTA if status == 429 else ("Service Unavailable" if status == 503 else f"HTTP {status}")
    return _json(status, body, headers)
