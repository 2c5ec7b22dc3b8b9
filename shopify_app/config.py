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
}

DEFAULT_SCOPES = "read_orders,read_all_orders,read_returns"
# Without these Skilvís reads nothing; without read_all_orders it sees the last 60 days only.
REQUIRED_SCOPES = ("read_orders", "read_returns")
ALL_ORDERS_SCOPE = "read_all_orders"
DEFAULT_API_VERSION = "2026-10"


@dataclass(frozen=True)
class Settings:
    env: str
    api_key: str
    api_secret: str
    old_api_secret: str | None
    app_url: str
    scopes: str
    api_version: str
    database_url: str
    redis_url: str
    encryption_keys: tuple[str, ...]
    # Where a shop's Admin API lives; `{shop}` is the myshopify domain. Only the sandbox and the
    # tests point this at the local Shopify stand-in.
    shop_url_template: str = "https://{shop}"
    # Payday's API by the shop's chosen environment, unless this names another (the sandbox's stand-in).
    payday_base_url: str | None = None
    # `make run` without Shopify credentials: the stand-ins serve as Shopify and Payday, and the
    # sandbox panel (/sandbox) is on. Never in production.
    sandbox: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_secret, self.old_api_secret) if s)

    def shop_url(self, shop: str) -> str:
        return self.shop_url_template.format(shop=shop).rstrip("/")


def load(environ: dict | None = None) -> Settings:
    """Read the settings. In production a missing setting stops start-up with one message
    naming every missing variable; in development, harmless local defaults stand in."""
    env = dict(os.environ if environ is None else environ)
    mode = env.get("SKILVIS_ENV", "development")
    if mode == "production":
        missing = [k for k in REQUIRED_IN_PRODUCTION if not env.get(k)]
        if missing:
            lines = "\n".join(f"  {k}: {REQUIRED_IN_PRODUCTION[k]}" for k in missing)
            raise ConfigError(f"Skilvís cannot start: these environment variables are not set:\n{lines}")
    keys = tuple(k.strip() for k in env.get("ENCRYPTION_KEY", "").split(",") if k.strip())
    return Settings(
        env=mode,
        api_key=env.get("SHOPIFY_API_KEY") or "dev-client-id",
        api_secret=env.get("SHOPIFY_API_SECRET") or "dev-client-secret",
        old_api_secret=env.get("SHOPIFY_API_SECRET_OLD") or None,
        app_url=(env.get("SHOPIFY_APP_URL") or f"http://localhost:{env.get('PORT', '8000')}").rstrip("/"),
        scopes=env.get("SHOPIFY_SCOPES") or DEFAULT_SCOPES,
        api_version=env.get("SHOPIFY_API_VERSION") or DEFAULT_API_VERSION,
        database_url=env.get("DATABASE_URL", ""),
        redis_url=env.get("REDIS_URL", ""),
        encryption_keys=keys,
        shop_url_template=env.get("SHOPIFY_SHOP_URL_TEMPLATE") or "https://{shop}",
        payday_base_url=env.get("PAYDAY_BASE_URL") or None,
        sandbox=mode != "production" and env.get("SKILVIS_SANDBOX", "").lower() in ("1", "true", "yes"),
    )
