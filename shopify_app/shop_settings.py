"""Each shop's settings for the pipeline: Payday credentials (secret encrypted), environment,
gateway → Payday payment type mapping, e-mail, kennitala and automatic processing switches,
and the moment automatic invoicing begins."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from psycopg.types.json import Jsonb

from . import crypto, db


@dataclass(frozen=True)
class ShopSettings:
    shop_id: int
    payday_client_id: str | None = None
    payday_client_secret: str | None = field(default=None, repr=False)   # never in a repr (logs, tracebacks)
    payday_environment: str = "production"
    payment_types: dict = field(default_factory=dict)
    send_email: bool = False
    kennitala_from_company: bool = True
    auto_process: bool = False
    # Returns closed and refunds made before this are not invoiced automatically (None: no limit;
    # a stored shop always has one, by default when it installed Skilvís).
    invoices_from: datetime | None = None
    # The Payday customer that credit invoices go to when Shopify withholds the buyer's data
    # (protected customer data not approved): Icelandic shops book such sales to a cash customer.
    payday_default_customer_id: str | None = None
    payday_default_customer_name: str | None = None
    # Payday's own Shopify app, in this shop: unknown | not_installed | credits_off | credits_on.
    payday_app: str = "unknown"
    # Payday keeps stock for the shop's products (by sku): exchange items go out with their sku
    # and returned items are put back by a product movement (stock.py).
    payday_keeps_stock: bool = False
    # The shop's accounting system (accounting.SYSTEMS) and, for a Danish one, its credentials
    # and the merchant's mappings (shopify_app/accounting/<system>.py lists the keys).
    accounting: str = "payday"
    accounting_config: dict = field(default_factory=dict, repr=False)

    @property
    def payday_connected(self) -> bool:
        return bool(self.payday_client_id and self.payday_client_secret)

    @property
    def default_customer(self) -> str | None:
        """Whom a document goes to while Shopify withholds the buyer: the system's own customer."""
        if self.accounting == "payday":
            return self.payday_default_customer_id
        return self.accounting_config.get(DEFAULT_CUSTOMER_KEYS[self.accounting])

    @property
    def vat_rates(self) -> frozenset:
        """The VAT rates the chosen system can book as this shop is set up (D3)."""
        from . import accounting
        return accounting.bookable_rates(self.accounting, self.accounting_config)

    @property
    def connected(self) -> bool:
        """The chosen system has what it needs to log in."""
        if self.accounting == "payday":
            return self.payday_connected
        from . import accounting
        return accounting.has_credentials(self.accounting, self.accounting_config)

    def holds_back(self, customer_withheld: bool = False) -> str | None:
        """Why these settings keep a wanted credit invoice from being made (a reason code), or
        None. Automatic processing needs Payday; a buyer Shopify withholds needs the default customer."""
        if not self.connected:
            return "payday_not_connected" if self.accounting == "payday" else "accounting_not_connected"
        if not self.auto_process:
            return "automatic_processing_off"
        if self.payday_app == "credits_on":
            return "payday_app_credits"   # its credit invoice and ours: one return credited twice
        if customer_withheld and not self.default_customer:
            return "default_customer_missing"
        return None


def load(shop_id: int, conn=None) -> ShopSettings:
    sql = """SELECT s.*, COALESCE(s.invoices_from, shops.created_at) AS starts
             FROM shops LEFT JOIN shop_settings s ON s.shop_id = shops.id WHERE shops.id = %s"""
    with db.joined(conn) as c:
        row = c.execute(sql, (shop_id,)).fetchone()
    if row is None:
        return ShopSettings(shop_id)
    if row["shop_id"] is None:
        return ShopSettings(shop_id, invoices_from=row["starts"])
    return ShopSettings(
        shop_id=shop_id, payday_client_id=row["payday_client_id"],
        payday_client_secret=crypto.decrypt(row["payday_client_secret_enc"]),
        payday_environment=row["payday_environment"], payment_types=dict(row["payment_types"] or {}),
        send_email=row["send_email"], kennitala_from_company=row["kennitala_from_company"],
        auto_process=row["auto_process"], invoices_from=row["starts"],
        payday_default_customer_id=row["payday_default_customer_id"],
        payday_default_customer_name=row["payday_default_customer_name"], payday_app=row["payday_app"],
        payday_keeps_stock=row["payday_keeps_stock"], accounting=row["accounting"],
        accounting_config=json.loads(crypto.decrypt(row["accounting_config_enc"]) or "{}"),
    )


_FIELDS = ("payday_client_id", "payday_client_secret", "payday_environment", "payment_types", "send_email",
           "kennitala_from_company", "auto_process", "invoices_from", "payday_default_customer_id",
           "payday_default_customer_name", "payday_app", "payday_keeps_stock", "accounting", "accounting_config")


def save(shop_id: int, **changes) -> ShopSettings:
    """Change some settings; the others keep their values. Automatic processing stays off
    until Payday is connected. What the change unblocks is asked for at once (_unblocked)."""
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    current = load(shop_id)
    merged = {name: changes.get(name, getattr(current, name)) for name in _FIELDS}
    if merged["payday_app"] not in PAYDAY_APP_ANSWERS:
        raise ValueError("payday_app is one of " + ", ".join(PAYDAY_APP_ANSWERS))
    if merged["payday_environment"] not in ("production", "test"):
        raise ValueError("payday_environment is production or test")
    if merged["accounting"] not in SYSTEMS:
        raise ValueError("accounting is one of " + ", ".join(SYSTEMS))
    if merged["auto_process"] and not ShopSettings(shop_id, **merged).connected:
        raise ValueError("automatic processing needs a Payday connection first" if merged["accounting"] == "payday"
                         else "automatic processing needs a connection to the accounting system first")
    if merged["invoices_from"] is not None and merged["invoices_from"].tzinfo is None:
        raise ValueError("invoices_from needs a time zone")
    with db.transaction() as conn:
        conn.execute(
            """INSERT INTO shop_settings (shop_id, payday_client_id, payday_client_secret_enc, payday_environment,
                                          payment_types, send_email, kennitala_from_company, auto_process,
                                          invoices_from, payday_default_customer_id, payday_default_customer_name,
                                          payday_app, payday_keeps_stock, accounting, accounting_config_enc)
               VALUES (%(shop_id)s, %(payday_client_id)s, %(secret)s, %(payday_environment)s, %(payment_types)s,
                       %(send_email)s, %(kennitala_from_company)s, %(auto_process)s, %(invoices_from)s,
                       %(payday_default_customer_id)s, %(payday_default_customer_name)s, %(payday_app)s,
                       %(payday_keeps_stock)s, %(accounting)s, %(config)s)
               ON CONFLICT (shop_id) DO UPDATE SET
                   payday_client_id = EXCLUDED.payday_client_id,
                   payday_client_secret_enc = EXCLUDED.payday_client_secret_enc,
                   payday_environment = EXCLUDED.payday_environment,
                   payment_types = EXCLUDED.payment_types, send_email = EXCLUDED.send_email,
                   kennitala_from_company = EXCLUDED.kennitala_from_company,
                   auto_process = EXCLUDED.auto_process, invoices_from = EXCLUDED.invoices_from,
                   payday_default_customer_id = EXCLUDED.payday_default_customer_id,
                   payday_default_customer_name = EXCLUDED.payday_default_customer_name,
                   payday_app = EXCLUDED.payday_app, payday_keeps_stock = EXCLUDED.payday_keeps_stock,
                   accounting = EXCLUDED.accounting, accounting_config_enc = EXCLUDED.accounting_config_enc,
                   updated_at = now()""",
            {**merged, "shop_id": shop_id, "secret": crypto.encrypt(merged["payday_client_secret"]),
             "payment_types": Jsonb(merged["payment_types"]),
             "config": crypto.encrypt(json.dumps(merged["accounting_config"])) if merged["accounting_config"] else None},
        )
        if moves_start_back(current, ShopSettings(shop_id, **merged)):
            from . import reconcile
            reconcile.record_backfill(conn, shop_id, merged["invoices_from"])
    saved = load(shop_id)
    _unblocked(current, saved)
    return saved


# The reasons a case waits for the settings rather than for Shopify or Payday.
WAITING_FOR_SETTINGS = ("automatic_processing_off", "payday_not_connected", "accounting_not_connected",
                        "default_customer_missing", "payday_app_credits")
SYSTEMS = ("payday", "economic", "dinero", "billy")   # accounting.SYSTEMS (not imported: it imports us late)
DEFAULT_CUSTOMER_KEYS = {"economic": "default_customer_number", "dinero": "default_contact_guid",
                         "billy": "default_contact_id"}
PAYDAY_APP_ANSWERS = ("unknown", "not_installed", "credits_off", "credits_on")


def _unblocked(before: ShopSettings, after: ShopSettings) -> None:
    from . import orders, reconcile

    def blocks(s: ShopSettings) -> set:
        return {s.holds_back(False), s.holds_back(True)} - {None}

    if blocks(before) - blocks(after):
        orders.ask_again_where(after.shop_id, WAITING_FOR_SETTINGS)   # what waited for the change
    if moves_start_back(before, after):
        reconcile.enqueue_backfill(after.shop_id, after.invoices_from)


def moves_start_back(before: ShopSettings, after: ShopSettings) -> bool:
    """Whether invoicing now begins earlier: the history since then is read again (backfill)."""
    return bool(before.invoices_from and after.invoices_from and after.invoices_from < before.invoices_from)


def note_gateways(shop_id: int, gateways, conn=None) -> None:
    """Remember the Shopify payment gateways seen on the shop's orders (settings lists them)."""
    names = sorted({g for g in gateways if g})
    if not names:
        return
    sql = """INSERT INTO shop_gateways (shop_id, gateway) SELECT %s, unnest(%s::text[])
             ON CONFLICT DO NOTHING"""
    with db.joined(conn) as c:
        c.execute(sql, (shop_id, names))


def gateways(shop_id: int, settings: ShopSettings | None = None) -> list[str]:
    """The shop's gateways seen so far, and any its mapping names already."""
    with db.transaction() as conn:
        seen = {r["gateway"] for r in conn.execute("SELECT gateway FROM shop_gateways WHERE shop_id = %s", (shop_id,))}
    return sorted(seen | set((settings or load(shop_id)).payment_types))
