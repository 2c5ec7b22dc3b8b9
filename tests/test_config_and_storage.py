"""Configuration from the environment, migrations, and secrets encrypted at rest."""
from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from shopify_app import config, crypto, db, shops
from tests.helpers import SHOP


def test_production_without_settings_names_every_missing_variable():
    with pytest.raises(config.ConfigError) as err:
        config.load({"SKILVIS_ENV": "production", "SHOPIFY_API_KEY": "k"})
    message = str(err.value)
    for name in ("SHOPIFY_API_SECRET", "SHOPIFY_APP_URL", "DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEY"):
        assert name in message
    assert "SHOPIFY_API_KEY" not in message


def test_production_start_up_fails_with_one_clear_message():
    env = {"SKILVIS_ENV": "production", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import shopify_app.wsgi"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "these environment variables are not set" in result.stderr
    assert "DATABASE_URL" in result.stderr


def test_defaults_api_version_and_scopes():
    settings = config.load({"SHOPIFY_API_SECRET": "s", "SESSION_SECRET": "t"})
    assert settings.api_version == "2026-10"
    assert "read_returns" in settings.scopes and "read_orders" in settings.scopes


def test_migrations_are_safe_to_run_twice(servers):
    assert db.migrate(servers["database_url"]) == []


def test_heroku_style_postgres_url_works(servers):
    url = servers["database_url"]
    if not url.startswith("postgresql://"):
        pytest.skip("the test database is not given as a URL")
    with psycopg.connect("postgres://" + url[len("postgresql://"):]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_tokens_are_encrypted_at_rest(servers):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_PLAINTEXT_ACCESS", refresh_token="shprt_PLAINTEXT_REFRESH"))
    with psycopg.connect(servers["database_url"]) as conn:
        dump = "\n".join(str(row) for row in conn.execute("SELECT shops::text FROM shops"))
        raw = b"".join(bytes(r[0]) + bytes(r[1]) for r in conn.execute(
            "SELECT access_token_enc, refresh_token_enc FROM shops"))
    assert "PLAINTEXT" not in dump and b"PLAINTEXT" not in raw
    row = shops.get(SHOP)
    assert crypto.decrypt(row["access_token_enc"]) == "shpat_PLAINTEXT_ACCESS"


def test_encryption_keys_rotate(monkeypatch):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEY", old)
    sealed = crypto.encrypt("secret")
    monkeypatch.setenv("ENCRYPTION_KEY", f"{new},{old}")
    assert crypto.decrypt(sealed) == "secret"
    rotated = crypto.rotate(sealed)
    monkeypatch.setenv("ENCRYPTION_KEY", new)
    assert crypto.decrypt(rotated) == "secret"
    with pytest.raises(crypto.EncryptionKeyError):
        crypto.decrypt(sealed)


@pytest.mark.parametrize("value,expected", [
    ("shop-1.myshopify.com", "shop-1.myshopify.com"),
    ("Shop.myshopify.com", None), ("shop", None), ("https://shop.myshopify.com", None),
    ("shop.myshopify.com.evil.com", None), ("-shop.myshopify.com", None), ("", None), (None, None),
    ("shop.myshopify.com/admin", None), ("sh op.myshopify.com", None),
])
def test_shop_domains_are_validated(value, expected):
    assert shops.valid_shop_domain(value) == expected
