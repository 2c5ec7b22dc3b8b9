"""Settings, all from environment variables (12-factor). `.env.example` documents each one."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


class ConfigError(RuntimeError):
    pass


# Name -> what it is; every one of these must be set in production.
REQUIRED_IN_PRODUCTION = {
    "SHOPIFY_API_KEY": "the app's client id",
    "SHOPIFY_API_SECRET": "the app's client secret",
    "SHOPIFY_APP_URL": "the public https URL of the app",
    "DATABASE_URL": "PostgreSQL URL",
    "REDIS_URL": "Redis URL",
    "ENCRYPTION_KEY": "Fernet key(s) for tokens and secrets at rest, comma-separated, newest first",
    "SESSION_SECRET": "signs the Flask session cookie (the OAuth state): a long random string of its own",
}
# Outside production these must be set too, except in the sandbox (`make run` without
# SHOPIFY_API_KEY), which alone has development defaults: a public default secret would let
# anyone sign webhooks, ID tokens or session cookies for a real app.
REQUIRED_OUTSIDE_SANDBOX = ("SHOPIFY_API_SECRET", "SESSION_SECRET")
SANDBOX_SECRETS = {"SHOPIFY_API_SECRET": "dev-client-secret", "SESSION_SECRET": "sandbox-session-secret"}

# Bodies bigger than these get 413 before they are read: Shopify's webhooks are far smaller than
# 2 MiB, and the pages' JSON far smaller than 256 KiB.
DEFAULT_WEBHOOK_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_REQUEST_MAX_BYTES = 256 * 1024

DEFAULT_SCOPES = "read_orders,read_all_orders,read_returns"
# Without these Skilvís reads nothing; without read_all_orders it sees the last 60 days only.
REQUIRED_SCOPES = ("read_orders", "read_returns")
ALL_ORDERS_SCOPE = "read_all_orders"
DEFAULT_API_VERSION = "2026-10"


@dataclass(frozen=True)
class Settings:
    # Secrets (and URLs that may carry a password) are left out of repr(): a settings object in
    # a log line or a traceback shows none of them.
    env: str
    api_key: str
    api_secret: str = field(repr=False)
    old_api_secret: str | None = field(repr=False)
    app_url: str
    scopes: str
    api_version: str
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    encryption_keys: tuple[str, ...] = field(repr=False)
    # Where a shop's Admin API lives; `{shop}` is the myshopify domain. Only the sandbox and the
    # tests point this at the local Shopify stand-in.
    shop_url_template: str = "https://{shop}"
    # Payday's API by the shop's chosen environment, unless this names another (the sandbox's stand-in).
    payday_base_url: str | None = None
    # `make run` without Shopify credentials: the stand-ins serve as Shopify and Payday, and the
    # sandbox panel (/sandbox) is on. Never in production.
    sandbox: bool = False
    extra: dict = field(default_factory=dict)
    # Signs the Flask session cookie; never the Shopify secret.
    session_secret: str = field(default="", repr=False)
    # `Authorization: Bearer <this>` on GET /healthz shows the details (unset: never shown).
    healthz_token: str | None = field(default=None, repr=False)
    webhook_max_bytes: int = DEFAULT_WEBHOOK_MAX_BYTES
    request_max_bytes: int = DEFAULT_REQUEST_MAX_BYTES

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_secret, self.old_api_secret) if s)

    def shop_url(self, shop: str) -> str:
        return self.shop_url_template.format(shop=shop).rstrip("/")


def load(environ: dict | None = None) -> Settings:
    """Read the settings. A missing setting stops start-up with one message naming every
    missing variable: in production each of REQUIRED_IN_PRODUCTION, elsewhere the secrets
    (REQUIRED_OUTSIDE_SANDBOX); only the sandbox has development defaults for those."""
    env = dict(os.environ if environ is None else environ)
    mode = env.get("SKILVIS_ENV", "development")
    sandbox = mode != "production" and env.get("SKILVIS_SANDBOX", "").lower() in ("1", "true", "yes")
    if mode == "production":
        missing = [k for k in REQUIRED_IN_PRODUCTION if not env.get(k)]
    elif sandbox:
        env.update({k: v for k, v in SANDBOX_SECRETS.items() if not env.get(k)})
        missing = []
    else:
        missing = [k for k in REQUIRED_OUTSIDE_SANDBOX if not env.get(k)]
    if missing:
        lines = "\n".join(f"  {k}: {REQUIRED_IN_PRODUCTION[k]}" for k in missing)
        where = "" if mode == "production" else " (development defaults exist only in the sandbox)"
        raise ConfigError(f"Skilvís cannot start: these environment variables are not set{where}:\n{lines}")
    if env["SESSION_SECRET"] == env["SHOPIFY_API_SECRET"]:
        raise ConfigError("SESSION_SECRET must be a secret of its own, not SHOPIFY_API_SECRET")
    if mode == "production" and len(env["SESSION_SECRET"]) < 32:
        raise ConfigError("SESSION_SECRET must be at least 32 characters long")
    keys = tuple(k.strip() for k in env.get("ENCRYPTION_KEY", "").split(",") if k.strip())
    return Settings(
        env=mode,
        api_key=env.get("SHOPIFY_API_KEY") or "dev-client-id",
        api_secret=env["SHOPIFY_API_SECRET"],
        old_api_secret=env.get("SHOPIFY_API_SECRET_OLD") or None,
        app_url=(env.get("SHOPIFY_APP_URL") or f"http://localhost:{env.get('PORT', '8000')}").rstrip("/"),
        scopes=env.get("SHOPIFY_SCOPES") or DEFAULT_SCOPES,
        api_version=env.get("SHOPIFY_API_VERSION") or DEFAULT_API_VERSION,
        database_url=env.get("DATABASE_URL", ""),
        redis_url=env.get("REDIS_URL", ""),
        encryption_keys=keys,
        shop_url_template=env.get("SHOPIFY_SHOP_URL_TEMPLATE") or "https://{shop}",
        payday_base_url=env.get("PAYDAY_BASE_URL") or None,
        sandbox=sandbox,
        session_secret=env["SESSION_SECRET"],
        healthz_token=env.get("HEALTHZ_TOKEN") or None,
        webhook_max_bytes=_bytes(env, "WEBHOOK_MAX_BYTES", DEFAULT_WEBHOOK_MAX_BYTES),
        request_max_bytes=_bytes(env, "REQUEST_MAX_BYTES", DEFAULT_REQUEST_MAX_BYTES),
    )


def _bytes(env: dict, name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ConfigError(f"{name} must be a whole number of bytes, not {value!r}")
    return limit
