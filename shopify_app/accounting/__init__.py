"""The accounting systems behind one neutral credit note (issue 12).

The decision core makes documents (decision.Plan → a `documents` row); this package hands one
to the shop's accounting system and answers with the system's id and number. One module per
system: payday (Iceland), economic, dinero and billy (Denmark). Each adapter does its system's
right thing — a credit note linked to the invoice it credits where the system has one, booked,
found again by our reference before anything is created a second time — and every adapter
speaks the same exceptions, so documents.py keeps one state machine for all four.

Signs are the decision core's: a line's `amount` is VAT included, negative where the customer
gets money back and positive where they pay (an exchange's new item); `quantity` is negative for
goods coming back, positive for goods going out. A note whose total is positive is a charge (an
exchange that costs the customer more): each adapter makes what its system needs of it (an
invoice, or a credit note and an invoice)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Callable, ClassVar, Protocol
from zoneinfo import ZoneInfo

SYSTEMS = ("payday", "economic", "dinero", "billy")
NAMES = {"payday": "Payday", "economic": "e-conomic", "dinero": "Dinero", "billy": "Billy"}   # as each writes itself
# The company's time: a document is dated by the day of what happened in Shopify where its books
# are kept (a return closed at 23:30 UTC is the next day's in Copenhagen, the same day's in
# Reykjavik), and the merchant reads times in it.
# The company's language: what its documents' texts and references are written in.
LANGUAGES = {"payday": "is", "economic": "da", "dinero": "da", "billy": "da"}
ZONES = {"payday": ZoneInfo("Atlantic/Reykjavik"), "economic": ZoneInfo("Europe/Copenhagen"),
         "dinero": ZoneInfo("Europe/Copenhagen"), "billy": ZoneInfo("Europe/Copenhagen")}


def local_day(system: str, moment: datetime | None = None) -> date:
    """The calendar day of a moment (now, without one) in the company's time."""
    return (moment or datetime.now(timezone.utc)).astimezone(ZONES[system]).date()


@dataclass(frozen=True)
class Line:
    kind: str              # decision.py's line kinds: item, exchange_item, shipping, return_fee, ...
    description: str       # the item's title (the adapter adds its own words for fees and shipping)
    sku: str | None
    quantity: int          # negative: comes back to the shop; positive: goes out
    amount: Decimal        # VAT included; negative credits the customer, positive charges them
    vat_rate: Decimal      # percent: Decimal("25"), Decimal("0"), Decimal("24")


@dataclass(frozen=True)
class Buyer:
    """Who the document is for, as Shopify shares it (None on the note: Shopify withholds the
    customer's details, and the shop's chosen default customer takes the document)."""
    name: str | None
    email: str | None
    national_id: str | None = None     # a kennitala (Iceland) or a CVR number (Denmark): the company field
    address: dict | None = None        # {"line1", "city", "zip", "country"} when known
    shopify_id: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a note comes from in Skilvís's tables: a system whose lookups are cached in Postgres
    (Payday's customers and sale-invoice windows) keys them by it."""
    shop_id: int
    order_id: int
    document_id: int
    order_heard_at: datetime | None = None   # when Skilvís first heard of the order


@dataclass(frozen=True)
class Note:
    reference: str         # unique in the shop's company and stable: written where the system can find it again
    order_name: str        # "#1001": the sale invoice is looked for by it
    currency: str
    date: date             # the day of what happened in Shopify (the close, the refund, the settlement)
    paid_date: date | None  # the day the money moved; None when it is not (yet) paid
    gateway: str | None    # Shopify's gateway id; the shop maps it to the system's payment account
    buyer: Buyer | None
    lines: tuple[Line, ...]
    text: str              # what the customer reads, in the company's language: the order, the return, the reason
    order_placed: date | None = None
    # What the text is made of, for a system that writes its own (Payday names the sale invoice in it).
    trigger: str = "return_close"   # decision.py's triggers: return_close, exchange_settled, refund, manual, correction
    return_name: str | None = None  # "#1001-R1"
    reason: str | None = None       # the customer's reason for the return, as Shopify gives it
    remark: str | None = None       # the merchant's note on the refund
    source: Source | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def is_charge(self) -> bool:
        return self.total > 0

    def as_json(self) -> dict:
        """What was handed to the adapter, kept on the document (the case page shows its lines)."""
        return {"reference": self.reference, "text": self.text, "currency": self.currency,
                "date": self.date.isoformat(),
                "lines": [{"description": l.description, "quantity": l.quantity, "amount": str(l.amount),
                           "vat_rate": str(l.vat_rate), "kind": l.kind} for l in self.lines]}


@dataclass(frozen=True)
class Booked:
    """The system's answer: its id (several when one note became several documents) and the
    number it gave (None until the system numbers it), and the invoice it credits, if linked."""
    id: str
    number: str | None
    credited_invoice: str | None = None   # the sale invoice's number, when the system links it
    ids: tuple[str, ...] = field(default=())


class AccountingError(Exception):
    def __init__(self, message: str, *, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail   # for support: the system's own words, never shown to the customer


class Transient(AccountingError):
    """Try again later: a 5xx, a timeout, a 429 (with the system's Retry-After), a stale
    timestamp. `outcome_unknown`: the request may have been carried out (a lost answer), so the
    next attempt looks for the document by its reference first."""

    def __init__(self, message: str, *, retry_after: float | None = None, outcome_unknown: bool = False,
                 detail: str | None = None):
        super().__init__(message, detail=detail)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class AuthError(AccountingError):
    """The credentials are refused, or the company cannot take documents yet (`setup_required`:
    e.g. Dinero without Pro, Payday's unfinished system setup)."""

    def __init__(self, message: str, *, setup_required: bool = False, detail: str | None = None):
        super().__init__(message, detail=detail)
        self.setup_required = setup_required


class ValidationError(AccountingError):
    """The system refused the document as it is; sending it again will not help."""


class Unbookable(ValidationError):
    """D3 in general form: a line the system cannot book as the shop is set up (a VAT rate
    without a product or account mapped to it, a currency the system does not take)."""

    def __init__(self, message: str, *, code: str, params: dict | None = None):
        super().__init__(message)
        self.code = code           # a reason code (reasons.py): unsupported_vat_rate, unsupported_currency
        self.params = params or {}


class Unconfirmed(AccountingError):
    """A lost answer the system could not settle: the merchant looks in the system."""


class Adapter(Protocol):
    system: ClassVar[str]

    def test_connection(self) -> dict:
        """{"ok": bool, "message": str, "choices": {...}}: logs in afresh and lists what the
        settings map to (products, accounts, layouts, payment terms, VAT zones, organisations)."""

    def bookable_rates(self) -> frozenset[Decimal]:
        """The VAT rates a document can carry as the shop is set up (D3)."""

    def find(self, note: Note, sent: dict | None = None) -> Booked | None:
        """The document made for this note earlier, found by its reference (called before a
        create whose last attempt's outcome is unknown, and wherever the system has no
        server-side idempotency). `sent`: the request journaled before that attempt."""

    def send(self, note: Note, journal: Journal | None = None) -> Booked:
        """Make the note in the system, booked (numbered, irreversible), linked to the invoice it
        credits where the system has the link. Raises Unbookable before any call when a line
        cannot be booked. `journal(request, **columns)` is called before the first call that
        may create something, with what will be sent: the document is `sending` from then on."""

    def record_booked(self, conn, doc: dict) -> None:
        """Noted in the transaction that records the document as booked (Payday: the stock
        moves it owes)."""

    def follow_up(self, order_id: int) -> None:
        """Work the order's documents left for later in this system (Payday: returned goods
        back into stock); called after each pass's sends."""


# journal(request, **columns): the columns a system may note on the document while sending it
# (documents.JOURNAL_COLUMNS).
Journal = Callable[..., None]


class Base:
    """What an adapter of a system that keeps nothing of ours between documents has in common."""

    def record_booked(self, conn, doc: dict) -> None:
        pass

    def follow_up(self, order_id: int) -> None:
        pass

    @staticmethod
    def journaled(note: Note, journal: Journal | None) -> None:
        if journal:
            journal(note.as_json())


# --- the shop's system ---------------------------------------------------------------------

CREDENTIALS = {
    "economic": ("app_secret_token", "agreement_grant_token"),
    "dinero": ("client_id", "client_secret", "api_key", "organization_id"),
    "billy": ("access_token",),
}


def has_credentials(system: str, config: dict) -> bool:
    return all(str(config.get(key) or "").strip() for key in CREDENTIALS.get(system, ("?",)))


def for_shop(settings) -> Adapter:
    """The shop's system, connected as its settings say (shop_settings.ShopSettings)."""
    if settings.accounting == "payday":
        from .payday.adapter import PaydayAdapter
        return PaydayAdapter(settings)
    return adapter(settings.accounting, settings.accounting_config)


def adapter(system: str, config: dict) -> Adapter:
    """A Danish system's adapter for a connection's config (Settings' test connection, before
    it is saved). Base URLs from <SYSTEM>_BASE_URL, as Payday's."""
    if system == "economic":
        from .economic import EconomicAdapter
        return EconomicAdapter(config)
    if system == "dinero":
        from .dinero import DineroAdapter
        return DineroAdapter(config)
    if system == "billy":
        from .billy import BillyAdapter
        return BillyAdapter(config)
    raise ValueError(f"no adapter for {system!r}")


# Denmark has one VAT rate: a Danish system's single shipping or fee product (or account) books
# it, so it takes only lines at that rate; a share at another rate (over exempt goods) takes that
# rate's own product or account, or the system would add VAT the customer never paid.
DANISH_VAT = Decimal(25)

PAYDAY_RATES = frozenset({Decimal(0), Decimal(11), Decimal(24)})


def bookable_rates(system: str, config: dict) -> frozenset[Decimal]:
    """D3 in general form: the VAT rates a document of this shop can carry (Payday's three; a
    Danish system's, those the merchant mapped to a product or account). Read from the
    settings alone, so the pure decision can use it."""
    if system == "payday":
        return PAYDAY_RATES
    return frozenset(Decimal(str(rate)) for rate in (config.get("products") or config.get("accounts") or {}))
