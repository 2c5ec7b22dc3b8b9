"""Shops: who installed the app, their tokens (encrypted), uninstall and deletion."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from shopify.utils.shop_url import sanitize_shop_domain

from . import crypto, db
from .config import ALL_ORDERS_SCOPE, REQUIRED_SCOPES


def valid_shop_domain(value) -> str | None:
    """The shop's `name.myshopify.com` if `value` is exactly that, else None.

    Stricter than ShopifyAPI's sanitizer, which also completes bare names and strips schemes:
    what Shopify sends us is always the full domain, so anything else is refused."""
    if not isinstance(value, str) or not value or len(value) > 255:
        return None
    clean = sanitize_shop_domain(value)
    return clean if clean == value else None


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)   # secrets never show in a repr (logs, tracebacks)
    scope: str | None = None
    expires_in: int | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_expires_in: int | None = None

    @classmethod
    def from_response(cls, body: dict) -> "Tokens":
        return cls(
            access_token=body["access_token"],
            scope=body.get("scope"),
            expires_in=body.get("expires_in"),
            refresh_token=body.get("refresh_token"),
            refresh_token_expires_in=body.get("refresh_token_expires_in"),
        )


def _after(seconds: int | None, now: datetime) -> datetime | None:
    return None if seconds is None else now + timedelta(seconds=int(seconds))


def get(domain: str, conn=None) -> dict | None:
    sql = "SELECT * FROM shops WHERE domain = %s"
    if conn is not None:
        return conn.execute(sql, (domain,)).fetchone()
    with db.transaction() as c:
        return c.execute(sql, (domain,)).fetchone()


def save_tokens(domain: str, tokens: Tokens, conn=None) -> dict:
    """Record a fresh token pair for the shop (creating or reinstalling it)."""
    now = datetime.now(timezone.utc)
    params = {
        "domain": domain,
        "access": crypto.encrypt(tokens.access_token),
        "access_exp": _after(tokens.expires_in, now),
        "refresh": crypto.encrypt(tokens.refresh_token),
        "refresh_exp": _after(tokens.refresh_token_expires_in, now),
        "scopes": tokens.scope,
    }
    sql = """
        INSERT INTO shops (domain, access_token_enc, access_token_expires_at, refresh_token_enc,
                           refresh_token_expires_at, scopes, installed_at)
        VALUES (%(domain)s, %(access)s, %(access_exp)s, %(refresh)s, %(refresh_exp)s, %(scopes)s, now())
        ON CONFLICT (domain) DO UPDATE SET
            access_token_enc = EXCLUDED.access_token_enc,
            access_token_expires_at = EXCLUDED.access_token_expires_at,
            refresh_token_enc = EXCLUDED.refresh_token_enc,
            refresh_token_expires_at = EXCLUDED.refresh_token_expires_at,
            scopes = COALESCE(EXCLUDED.scopes, shops.scopes),
            installed_at = CASE WHEN shops.uninstalled_at IS NOT NULL OR shops.installed_at IS NULL
                                THEN now() ELSE shops.installed_at END,
            uninstalled_at = NULL,
            updated_at = now()
        RETURNING *"""
    if conn is not None:
        return conn.execute(sql, params).fetchone()
    with db.transaction() as c:
        return c.execute(sql, params).fetchone()


def set_scopes(domain: str, scopes: str) -> dict | None:
    with db.transaction() as c:
        return c.execute("UPDATE shops SET scopes = %s, updated_at = now() WHERE domain = %s RETURNING *",
                         (scopes, domain)).fetchone()


def mark_uninstalled(domain: str) -> None:
    """Drop the tokens (they are dead anyway) and mark the shop. Safe to run twice:
    the first uninstall time is kept."""
    with db.transaction() as c:
        c.execute(
            """UPDATE shops SET access_token_enc = NULL, access_token_expires_at = NULL,
                   refresh_token_enc = NULL, refresh_token_expires_at = NULL,
                   uninstalled_at = COALESCE(uninstalled_at, now()), updated_at = now()
               WHERE domain = %s""",
            (domain,),
        )


def forget_tokens(domain: str, conn) -> None:
    """Shopify refuses the shop's tokens for good (refresh token expired or revoked): drop them,
    so the shop reads as not installed and its next embedded request exchanges its ID token for
    a new pair. Unlike an uninstall, uninstalled_at stays NULL: the app is still installed.
    Runs on the caller's connection, which holds the shop row's lock (see AdminClient)."""
    conn.execute(
        """UPDATE shops SET access_token_enc = NULL, access_token_expires_at = NULL,
               refresh_token_enc = NULL, refresh_token_expires_at = NULL,
               access_lost_at = COALESCE(access_lost_at, now()), updated_at = now()
           WHERE domain = %s""",
        (domain,),
    )


def take_access_lost(shop_id: int):
    """When Shopify last refused the shop's tokens for good, once: the home page tells the next
    person who opens Skilvís (whose ID token got a new pair), then it is forgotten."""
    with db.transaction() as c:
        row = c.execute("""UPDATE shops SET access_lost_at = NULL FROM (SELECT access_lost_at FROM shops
                                                                         WHERE id = %s FOR UPDATE) old
                           WHERE shops.id = %s AND old.access_lost_at IS NOT NULL
                           RETURNING old.access_lost_at""", (shop_id, shop_id)).fetchone()
    return row["access_lost_at"] if row else None


# A refresh token this close to its end is replaced by a token exchange on the next embedded
# load (refresh tokens live 90 days; a shop nobody touched for that long would otherwise lose
# Skilvís's access for good).
RENEW_BEFORE = timedelta(days=14)


def needs_new_tokens(shop: dict | None) -> bool:
    """Installed, but the tokens should be replaced while an ID token is at hand: a token
    without an expiry (retired by Shopify on 2027-01-01), or a refresh token near its end."""
    if not is_installed(shop):
        return False
    if shop["access_token_expires_at"] is None:
        return True
    ends = shop["refresh_token_expires_at"]
    return ends is not None and ends - RENEW_BEFORE < datetime.now(timezone.utc)


def sees_all_orders(scopes: str | None) -> bool:
    """Whether Shopify granted read_all_orders: without it the app sees 60 days of orders."""
    return ALL_ORDERS_SCOPE in {s.strip() for s in (scopes or "").split(",")}


def missing_scopes(scopes: str | None) -> list[str]:
    """The scopes Skilvís needs that Shopify has not granted (read_all_orders among them)."""
    granted = {s.strip() for s in (scopes or "").split(",")}
    # read_orders is implied by read_all_orders' grant and by write_orders; read_returns by write_returns.
    granted |= {s.replace("write_", "read_") for s in granted}
    return [s for s in (*REQUIRED_SCOPES, ALL_ORDERS_SCOPE) if s not in granted]


def is_installed(shop: dict | None) -> bool:
    return bool(shop and shop["uninstalled_at"] is None and shop["access_token_enc"] is not None)
