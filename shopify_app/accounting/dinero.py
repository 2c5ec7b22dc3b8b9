"""Dinero (Visma, Denmark): a neutral credit note as a booked Dinero credit note, linked to the
sale invoice it credits (docs/DINERO_MODEL.md has every fact and its source).

    adapter = DineroAdapter(config)                       # the real API
    adapter = DineroAdapter(config, "http://127.0.0.1:…")  # the stand-in (or DINERO_BASE_URL)

Config keys (a plain dict, as Settings stores it):

    client_id, client_secret   the personal-integration credentials Dinero e-mails the developer
                               (api@dinero.dk); sent as HTTP Basic to the token endpoint
    api_key                    the organisation's API key (Dinero → Indstillinger → API); sent as
                               both username and password of the password grant
    organization_id            the Dinero organisation (an integer id) the documents go to
    accounts                   {"25": 1000, "0": 1010}: VAT rate (percent, as a string) → the sales
                               account a line is booked on. Dinero takes VAT from the account's
                               VAT code, never from the line, so the merchant picks an account
                               whose VAT code carries that rate. A rate not here cannot be booked.
    shipping_account           the account for shipping lines: one account number, or a map of
                               rate → account like `accounts` (a rate missing from it cannot be
                               booked). One account is a sales account with VAT, so it takes
                               the 25 % lines only; a shipping line at another rate (a share of
                               shipping over exempt goods) goes to that rate's account in
                               `accounts`
    fee_account                the same for return fees (return shipping fee, restocking fee)
    default_contact_guid       the Dinero contact that takes a document when Shopify withholds the
                               customer (note.buyer is None) and no sale invoice of the order is
                               found (a found one says who the customer is)
    currencies                 optional: the currencies the shop books in Dinero (default ["DKK"])
    language                   optional: "da-DK" (default) or "en-GB", the document's language
    auth_url                   optional: the token endpoint (else DINERO_AUTH_URL, else derived
                               from a non-default base URL, else Dinero's own)

What a note becomes (the sign convention): Dinero's document type carries the sign, so every line
is sent with a positive quantity and a positive amount including VAT (ShowLinesInclVat=true).
The lines that give the customer money back (amount < 0) make a credit note (`CreditNoteFor` =
the sale invoice when it is found by the order name); the lines the customer pays for (an
exchange's new goods, amount > 0) make an invoice. A plain return is one credit note; an
exchange is a credit note for what came back and an invoice for what went out, whichever way it
nets (a charge with nothing coming back is an invoice alone). Both are booked (numbered,
irreversible). A negative line inside a credit note is not something Dinero documents, so it is
never sent. A note's documents go to one contact: the sale invoice's when one is found (a credit
note goes to the contact of the invoice it credits), else the buyer's (found by CVR or e-mail, or
created), else the default contact.

Exactly once: Dinero has no idempotency key. Each document carries our reference in
`ExternalReference` (the credit note: the note's reference; the invoice: the reference + "/charge"),
and before anything is created the adapter lists the organisation's documents filtered on it
(`queryFilter=ExternalReference eq '…'`) and checks every answer itself. A document found as a
draft (its booking's answer was lost) is booked, not made again.

Rate limit: 100 requests a minute per organisation (Dinero's error page). One limiter per
organisation is shared by every adapter in the process; a 429 holds the whole organisation back
for the answer's Retry-After (a minute when it sends none).
"""
from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections import deque
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar

import requests

from . import DANISH_VAT, AuthError, Base, Booked, Journal, Line, Note, Transient, Unbookable, Unconfirmed, ValidationError

BASE_URL = "https://api.dinero.dk"
AUTH_URL = "https://authz.dinero.dk/dineroapi/oauth/token"
AUTH_PATH = "/dineroapi/oauth/token"   # where the stand-in serves the token endpoint
TIMEOUT = (5, 30)                       # connect, read (seconds)
RATE_LIMIT = (100, 60.0)                # requests per window (seconds), per organisation
MAX_INLINE_WAIT = 10.0                  # longer waits go back to the job queue as Transient
DEFAULT_RETRY_AFTER = 60.0              # Dinero: "wait a minute and continue"
TOKEN_MARGIN = 60.0
PAGE_SIZE = 100
MAX_PAGES = 20                          # a reference look-up reads at most 2,000 documents
MAX_REFERENCE = 128                     # ExternalReference: "inclusive between 0 and 128"
CHARGE_SUFFIX = "/charge"
CENT = Decimal("0.01")
NO_PRO_CODES = (48, 90)                 # api.dinero.dk/docs says 48, the error page says 90
OUTDATED_TIMESTAMP = 58
FEE_KINDS = ("return_shipping_fee", "restocking_fee")
CREDIT_FIELDS = "Guid,Number,ExternalReference,Status,TotalInclVat,ContactGuid,Date,Currency,CreditNoteFor"
INVOICE_FIELDS = "Guid,Number,ExternalReference,Status,TotalInclVat,ContactGuid,Date,Currency,Description"
BOOKED_STATUSES = ("Booked", "Paid", "OverPaid", "Overdue")
_WORDS = {"da-DK": {"shipping": "Fragt", "fee": "Gebyr", "credit": "Kreditnota", "invoice": "Faktura",
                    "order": "Ordre"},
          "en-GB": {"shipping": "Shipping", "fee": "Fee", "credit": "Credit note", "invoice": "Invoice",
                    "order": "Order"}}


# --- the per-organisation limiter (shared by every adapter in the process) ----------------


class _Window:
    """At most `limit` requests in any `window` seconds; a 429 holds everyone until its end."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.sent: deque[float] = deque()
        self.blocked_until = 0.0
        self.lock = threading.Lock()

    def acquire(self, max_wait: float) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                while self.sent and self.sent[0] <= now - self.window:
                    self.sent.popleft()
                wait = self.blocked_until - now
                if wait <= 0 and len(self.sent) < self.limit:
                    self.sent.append(now)
                    return
                if wait <= 0:
                    wait = self.sent[0] + self.window - now
            if wait > max_wait:
                raise Transient("Dinero's limit of requests a minute is reached for this organisation",
                                retry_after=round(wait, 1))
            time.sleep(wait)

    def hold(self, seconds: float) -> None:
        with self.lock:
            self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


_LIMITERS: dict[tuple, _Window] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, organization_id, limit: int = RATE_LIMIT[0], window: float = RATE_LIMIT[1]) -> _Window:
    key = (base_url.rstrip("/"), str(organization_id), limit, window)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = _Window(limit, window)
        return _LIMITERS[key]


# --- the adapter -------------------------------------------------------------------------


class _Refused(Exception):
    """A 4xx with Dinero's error code, before it becomes an accounting exception."""

    def __init__(self, status: int, code, message: str, detail: str):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


class DineroAdapter(Base):
    system: ClassVar[str] = "dinero"

    def __init__(self, config: dict, base_url: str | None = None, *, auth_url: str | None = None,
                 timeout=TIMEOUT, rate_limit: tuple[int, float] = RATE_LIMIT,
                 max_inline_wait: float = MAX_INLINE_WAIT):
        self.config = dict(config)
        self.base_url = (base_url or os.environ.get("DINERO_BASE_URL") or BASE_URL).rstrip("/")
        self.auth_url = (auth_url or self.config.get("auth_url") or os.environ.get("DINERO_AUTH_URL")
                         or (self.base_url + AUTH_PATH if self.base_url != BASE_URL else AUTH_URL))
        self.org = str(self.config.get("organization_id") or "")
        self.timeout = timeout
        self.max_inline_wait = max_inline_wait
        self.limiter = limiter_for(self.base_url, self.org, *rate_limit)
        self.language = self.config.get("language") or "da-DK"
        self.words = _WORDS.get(self.language, _WORDS["da-DK"])
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json",
                                     "User-Agent": "skilvis-shopify-app:1.0 (Skilvis, Shopify credit notes)"})
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        self._invoice_numbers: dict[str, str | None] = {}   # sale invoice guid -> its number, as listed

    # --- the Adapter protocol --------------------------------------------------------------

    def bookable_rates(self) -> frozenset[Decimal]:
        return frozenset(_rate(key) for key in (self.config.get("accounts") or {}))

    def test_connection(self) -> dict:
        """Logs in afresh and lists what Settings maps to, in Dinero's words: the organisations
        the key reaches (Pro or not) and the organisation's entry accounts with their VAT codes."""
        with self._token_lock:
            self._token = None
        try:
            organizations = self._call("GET", "/v1/organizations", params={"fields": "Name,Id,IsPro"},
                                       scoped=False)
            accounts = self._call("GET", f"/v1/{self.org}/accounts/entry",
                                  params={"fields": "AccountNumber,Name,VatCode"})
        except (AuthError, Transient, ValidationError) as exc:
            return {"ok": False, "message": exc.message, "detail": exc.detail, "choices": {}}
        return {"ok": True, "message": "Connected to Dinero",
                "choices": {"organizations": [{"id": o.get("Id"), "name": o.get("Name"), "pro": o.get("IsPro")}
                                              for o in _collection(organizations)],
                            "accounts": [{"number": a.get("AccountNumber"), "name": a.get("Name"),
                                          "vat_code": a.get("VatCode")} for a in _collection(accounts)]}}

    def find(self, note: Note, sent: dict | None = None) -> Booked | None:
        """The booked documents made for this note earlier, or None while any part is missing or
        still a draft (send() then makes or books only what is missing)."""
        credits, charges = _split(note)
        found = []
        if credits:
            doc = self._find_own("credit", note.reference)
            if doc is None or not _booked(doc):
                return None
            found.append(doc)
        if charges:
            doc = self._find_own("invoice", note.reference + CHARGE_SUFFIX)
            if doc is None or not _booked(doc):
                return None
            found.append(doc)
        if not found:
            return None
        return self._answer(found, credited=found[0].get("CreditNoteFor") if credits else None)

    def send(self, note: Note, journal: Journal | None = None) -> Booked:
        credits, charges = _split(note)
        plan = self._check(note, credits, charges)      # Unbookable before any call
        self.journaled(note, journal)
        made = []
        sale, contact, looked = None, None, False
        for kind, lines, reference in plan:
            doc = self._find_own(kind, reference)
            if doc is None:
                if not looked:
                    # A credit note goes to the contact of the invoice it credits (model D3), and
                    # the note's documents keep to one customer; only a note crediting no sale
                    # invoice needs the buyer, or the default contact when Shopify withholds them.
                    sale = self._sale_invoice(note.order_name) if credits else None
                    contact = sale["ContactGuid"] if sale else self._contact(note.buyer)
                    looked = True
                credited = sale["Guid"] if sale and kind == "credit" else None
                doc = self._create(kind, note, lines, reference, contact, credited)
            if not _booked(doc):
                doc = self._book(kind, doc)
            made.append(doc)
        credited = next((d.get("CreditNoteFor") for d in made if d.get("CreditNoteFor")), None)
        return self._answer(made, credited=credited)

    # --- what a note becomes -----------------------------------------------------------------

    def _check(self, note: Note, credits, charges) -> list[tuple[str, list[dict], str]]:
        """Every line's account, the currency and the references, before any call (D3)."""
        currencies = [str(c).upper() for c in (self.config.get("currencies") or ["DKK"])]
        if note.currency.upper() not in currencies:
            raise Unbookable(f"Dinero is not set up to book in {note.currency}", code="unsupported_currency",
                             params={"currency": note.currency})
        if len(note.reference) + len(CHARGE_SUFFIX) > MAX_REFERENCE:
            raise ValidationError("The reference is longer than Dinero's ExternalReference takes",
                                  detail=note.reference)
        if note.buyer is None and not self.config.get("default_contact_guid"):
            raise ValidationError("No default Dinero contact is chosen for customers Shopify withholds")
        plan = []
        for kind, group, reference in (("credit", credits, note.reference),
                                       ("invoice", charges, note.reference + CHARGE_SUFFIX)):
            if group:
                plan.append((kind, [self._product_line(line) for line in group], reference))
        if not plan:
            raise ValidationError("The note has no lines")
        return plan

    def _product_line(self, line: Line) -> dict:
        account = self._account(line)
        quantity = abs(int(line.quantity)) or 1
        amount = abs(Decimal(line.amount))
        unit = (amount / quantity).quantize(CENT, ROUND_HALF_UP)
        description = self._description(line)
        if unit * quantity != amount:
            # Dinero multiplies unit by quantity; an amount that does not divide evenly goes as one
            # line of the whole amount so the booked total is exactly the note's.
            description, unit, quantity = f"{quantity} × {description}", amount, 1
        return {"Description": description[:2000], "Quantity": quantity, "AccountNumber": account,
                "Unit": "parts", "Discount": 0, "LineType": "Product", "BaseAmountValue": float(unit)}

    def _account(self, line: Line) -> int:
        rate = _rate(line.vat_rate)
        if line.kind == "shipping":
            source = self.config.get("shipping_account")
        elif line.kind in FEE_KINDS:
            source = self.config.get("fee_account")
        else:
            source = None
        accounts = {_rate(k): v for k, v in (self.config.get("accounts") or {}).items()}
        if isinstance(source, dict):
            choice = {_rate(k): v for k, v in source.items()}.get(rate)
        elif source not in (None, "") and rate == DANISH_VAT and rate in accounts:
            # One account for the kind is a sales account with VAT (accounting.DANISH_VAT), and
            # only while the shop books 25 % at all, as bookable_rates says.
            choice = source
        else:
            choice = accounts.get(rate)
        if choice in (None, ""):
            raise Unbookable(f"No Dinero account is chosen for VAT {_plain(rate)} %",
                             code="unsupported_vat_rate", params={"rate": _plain(rate), "item": line.description})
        try:
            return int(choice)
        except (TypeError, ValueError):
            raise Unbookable(f"The Dinero account for VAT {_plain(rate)} % is not a number",
                             code="unsupported_vat_rate", params={"rate": _plain(rate), "item": line.description})

    def _description(self, line: Line) -> str:
        if line.kind == "shipping":
            return f"{self.words['shipping']}: {line.description}" if line.description else self.words["shipping"]
        if line.kind in FEE_KINDS:
            return f"{self.words['fee']}: {line.description}" if line.description else self.words["fee"]
        return line.description or line.sku or "—"

    # --- Dinero calls ------------------------------------------------------------------------

    def _find_own(self, kind: str, reference: str) -> dict | None:
        """The document whose ExternalReference is `reference`: the list is filtered on it, and
        each answer is checked here too (a filter Dinero ignored must not make a match). Pages on
        while a page is full; gives up (Unconfirmed) rather than answer "none" unread."""
        path = f"/v1/{self.org}/sales/creditnotes" if kind == "credit" else f"/v1/{self.org}/invoices"
        params = {"queryFilter": f"ExternalReference eq '{_quoted(reference)}'", "pageSize": PAGE_SIZE,
                  "fields": CREDIT_FIELDS if kind == "credit" else INVOICE_FIELDS}
        for page in range(MAX_PAGES):
            answer = self._call("GET", path, params={**params, "page": page})
            rows = _collection(answer)
            for row in rows:
                if row.get("ExternalReference") == reference and not row.get("DeletedAt"):
                    return self._read(kind, row["Guid"])
            if len(rows) < PAGE_SIZE:
                return None
        raise Unconfirmed(f"Dinero listed more than {MAX_PAGES * PAGE_SIZE} documents without the reference "
                          f"{reference}; look for it in Dinero before it is sent again")

    def _read(self, kind: str, guid: str) -> dict:
        path = f"/v1/{self.org}/sales/creditnotes/{guid}" if kind == "credit" else f"/v1/{self.org}/invoices/{guid}"
        doc = self._call("GET", path)
        doc["_kind"] = kind
        return doc

    def _sale_invoice(self, order_name: str) -> dict | None:
        """The booked sale invoice naming the order ({"Guid", "ContactGuid"}): first by
        ExternalReference (where shop integrations put the order), then by Dinero's free-text
        search (number, contact, description). Each candidate is checked here: the order name
        as a whole word."""
        name = (order_name or "").strip()
        if not name:
            return None
        bare = name.lstrip("#")
        word = re.compile(r"(?<![\w])#?" + re.escape(bare) + r"(?![\w])")
        base = {"fields": INVOICE_FIELDS, "pageSize": PAGE_SIZE, "page": 0,
                "statusFilter": ",".join(BOOKED_STATUSES)}
        searches = [{"queryFilter": f"ExternalReference eq '{_quoted(name)}'"}]
        if bare != name:
            searches.append({"queryFilter": f"ExternalReference eq '{_quoted(bare)}'"})
        searches.append({"freeTextSearch": bare})
        for extra in searches:
            for page in range(3):
                rows = _collection(self._call("GET", f"/v1/{self.org}/invoices",
                                              params={**base, **extra, "page": page}))
                for row in rows:
                    reference = str(row.get("ExternalReference") or "")
                    if row.get("Status") not in BOOKED_STATUSES or reference.endswith(CHARGE_SUFFIX):
                        continue   # a draft, or an exchange's invoice this adapter made: not the sale
                    if word.search(reference) or word.search(str(row.get("Description") or "")):
                        contact = row.get("ContactGuid")
                        if not contact:   # a list that left the field out: the invoice itself has it
                            contact = self._call("GET", f"/v1/{self.org}/invoices/{row['Guid']}").get("ContactGuid")
                        if not contact:
                            continue      # cannot be credited to its own contact: not linked
                        number = row.get("Number")
                        self._invoice_numbers[row["Guid"]] = None if number in (None, "") else str(number)
                        return {"Guid": row["Guid"], "ContactGuid": contact}
                if len(rows) < PAGE_SIZE:
                    break
        return None

    def _contact(self, buyer) -> str:
        if buyer is None:
            return str(self.config["default_contact_guid"])
        cvr = re.sub(r"\s", "", buyer.national_id or "")
        email = (buyer.email or "").strip()
        for field, value in (("VatNumber", cvr), ("Email", email)):
            if not value:
                continue
            for page in range(MAX_PAGES):
                rows = _collection(self._call("GET", f"/v1/{self.org}/contacts", params={
                    "queryFilter": f"{field} eq '{_quoted(value)}'", "pageSize": PAGE_SIZE, "page": page,
                    "fields": "ContactGuid,Name,Email,VatNumber,DeletedAt"}))
                for row in rows:
                    if str(row.get(field) or "").strip().lower() == value.lower() and not row.get("DeletedAt"):
                        return row["ContactGuid"]
                if len(rows) < PAGE_SIZE:
                    break
        address = buyer.address or {}
        country = str(address.get("country") or "").strip().upper()
        body = {"Name": buyer.name or email or cvr or "Shopify", "CountryKey": country if len(country) == 2 else "DK",
                "IsPerson": not cvr, "Email": email or None, "VatNumber": cvr or None,
                "Street": address.get("line1"), "ZipCode": address.get("zip"), "City": address.get("city")}
        made = self._call("POST", f"/v1/{self.org}/contacts",
                          json={k: v for k, v in body.items() if v not in (None, "")})
        return made.get("ContactGuid") or made.get("Guid")

    def _create(self, kind: str, note: Note, lines: list[dict], reference: str, contact: str,
                credited: str | None) -> dict:
        body = {"ContactGuid": contact, "Currency": note.currency.upper(), "Language": self.language,
                "ExternalReference": reference, "Date": note.date.isoformat(), "ShowLinesInclVat": True,
                "Description": f"{self.words['credit' if kind == 'credit' else 'invoice']} – "
                               f"{self.words['order']} {note.order_name}",
                "Comment": (note.text or "")[:2000] or None, "ProductLines": lines}
        if kind == "credit":
            if credited:
                body["CreditNoteFor"] = credited
            path = f"/v1/{self.org}/sales/creditnotes"
        else:
            path = f"/v1/{self.org}/invoices"
        made = self._call("POST", path, json=body, create=True)
        return {"Guid": made.get("Guid") or made.get("guid"),
                "TimeStamp": made.get("TimeStamp") or made.get("Timestamp"), "Status": "Draft", "_kind": kind}

    def _book(self, kind: str, doc: dict) -> dict:
        """Book with the draft's timestamp; an outdated one (code 58) is read again and tried once
        more; a second refusal of that kind is transient (someone is editing the draft)."""
        path = (f"/v1/{self.org}/sales/creditnotes/{doc['Guid']}/book" if kind == "credit"
                else f"/v1/{self.org}/invoices/{doc['Guid']}/book")
        timestamp = doc.get("TimeStamp")
        for attempt in (1, 2):
            try:
                answer = self._call("POST", path, json={"Timestamp": timestamp}, create=True, raw_refusal=True)
                if isinstance(answer, dict) and _booked(answer) and answer.get("Guid"):
                    return {**answer, "_kind": kind}     # the booked voucher, with its number
                break
            except _Refused as refusal:
                if refusal.code != OUTDATED_TIMESTAMP:
                    raise self._refusal_error(refusal)
                if attempt == 2:
                    raise Transient("Dinero's draft kept changing while it was booked", detail=refusal.detail)
                fresh = self._read(kind, doc["Guid"])
                if _booked(fresh):
                    return fresh
                timestamp = fresh.get("TimeStamp")
        return self._read(kind, doc["Guid"])

    def _answer(self, docs: list[dict], credited: str | None) -> Booked:
        first = docs[0]
        number = None if first.get("Number") in (None, "", 0) else str(first["Number"])
        credited_number = self._invoice_numbers.get(credited) if credited else None
        if credited and credited not in self._invoice_numbers:
            try:
                sale = self._call("GET", f"/v1/{self.org}/invoices/{credited}")
                credited_number = None if sale.get("Number") in (None, "") else str(sale["Number"])
            except (ValidationError, Transient):
                credited_number = None   # the link is made; only its number is not read now
        return Booked(id=first["Guid"], number=number, credited_invoice=credited_number,
                      ids=tuple(d["Guid"] for d in docs))

    # --- HTTP --------------------------------------------------------------------------------

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token and self._token[1] > time.monotonic():
                return self._token[0]
            basic = base64.b64encode(f"{self.config.get('client_id', '')}:{self.config.get('client_secret', '')}"
                                     .encode()).decode()
            key = str(self.config.get("api_key") or "")
            try:
                resp = self.session.post(self.auth_url, timeout=self.timeout, headers={
                    "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
                    data={"grant_type": "password", "scope": "read write", "username": key, "password": key})
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise Transient("Dinero's login did not answer", detail=str(exc))
            if resp.status_code == 429 or resp.status_code >= 500:
                raise Transient(f"Dinero's login answered {resp.status_code}", retry_after=_retry_after(resp),
                                detail=resp.text[:500])
            if resp.status_code != 200:
                raise AuthError("Dinero refused the client id, secret or API key", detail=resp.text[:500])
            body = _json(resp) or {}
            token = body.get("access_token")
            if not token:
                raise AuthError("Dinero's login gave no access token", detail=resp.text[:500])
            lifetime = float(body.get("expires_in") or 3600)
            self._token = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN, 1.0))
            return token

    def _call(self, method: str, path: str, *, params=None, json=None, create: bool = False,
              scoped: bool = True, raw_refusal: bool = False):
        if scoped and not self.org:
            raise AuthError("No Dinero organisation is chosen")
        for attempt in (1, 2):
            token = self._access_token()
            self.limiter.acquire(self.max_inline_wait)
            try:
                resp = self.session.request(method, self.base_url + path, params=params, json=json,
                                            timeout=self.timeout, headers={"Authorization": f"Bearer {token}"})
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise Transient(f"Dinero did not answer {method} {path}", outcome_unknown=create, detail=str(exc))
            if resp.status_code == 401 and attempt == 1:
                with self._token_lock:
                    self._token = None       # expired or revoked: one fresh login
                continue
            return self._result(resp, method, path, create, raw_refusal)
        raise AssertionError("unreachable")

    def _result(self, resp, method: str, path: str, create: bool, raw_refusal: bool):
        status = resp.status_code
        if status < 300:
            return _json(resp) if resp.content else {}
        body = _json(resp)
        code = body.get("code") if isinstance(body, dict) else None
        message = (body.get("message") if isinstance(body, dict) else None) or resp.text[:300] or f"HTTP {status}"
        detail = resp.text[:1000]
        if status == 429:
            wait = _retry_after(resp) or DEFAULT_RETRY_AFTER
            self.limiter.hold(wait)
            raise Transient("Dinero's limit of requests a minute is reached", retry_after=wait, detail=detail)
        if status == 480:
            # "Brownout": a deprecated endpoint fails at random before it is removed; a later try
            # may pass, and support must hear of it (the detail says which endpoint).
            raise Transient(f"Dinero is retiring {method} {path} (480 Brownout)", outcome_unknown=create,
                            detail=detail)
        if status >= 500:
            # A create's 5xx may come after Dinero committed it: look before creating again.
            raise Transient(f"Dinero answered {status} to {method} {path}", retry_after=_retry_after(resp),
                            outcome_unknown=create, detail=detail)
        if status == 401:
            raise AuthError("Dinero refused the access token", detail=detail)
        if status == 403:
            if code in NO_PRO_CODES:
                raise AuthError("The Dinero organisation has no active Dinero Pro subscription",
                                setup_required=True, detail=detail)
            raise AuthError("Dinero refused access to the organisation", detail=detail)
        refusal = _Refused(status, code, message, detail)
        if raw_refusal:
            raise refusal
        raise self._refusal_error(refusal)

    @staticmethod
    def _refusal_error(refusal: _Refused) -> ValidationError:
        return ValidationError(f"Dinero refused the request: {refusal.message}",
                               detail=f"HTTP {refusal.status}, code {refusal.code}: {refusal.detail}")


# --- helpers ------------------------------------------------------------------------------


def _split(note: Note) -> tuple[list[Line], list[Line]]:
    """Credits (money back, goods back) and charges (goods out, money in)."""
    credits, charges = [], []
    for line in note.lines:
        amount = Decimal(line.amount)
        if amount < 0 or (amount == 0 and line.quantity < 0):
            credits.append(line)
        elif amount > 0 or line.quantity > 0:
            charges.append(line)
    return credits, charges


def _booked(doc: dict) -> bool:
    return doc.get("Status") in BOOKED_STATUSES


def _collection(answer) -> list[dict]:
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        return answer.get("Collection") or []
    return []


def _json(resp):
    try:
        return resp.json()
    except ValueError:
        return None


def _retry_after(resp) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime
            return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return None


def _rate(value) -> Decimal:
    try:
        return Decimal(str(value)).normalize() + Decimal(0)
    except InvalidOperation:
        return Decimal(-1)


def _plain(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _quoted(value: str) -> str:
    return str(value).replace("'", "''")


__all__ = ["DineroAdapter", "limiter_for", "BASE_URL", "AUTH_URL"]
