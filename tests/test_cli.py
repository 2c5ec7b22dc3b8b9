"""The command-line tools: migrations, a shop's settings, a retry."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from shopify_app import crypto, db, jobqueue, shop_settings, shops
from tests.helpers import SHOP

ROOT = Path(__file__).resolve().parent.parent


def test_flask_migrate_runs_from_the_command_line_twice(servers):
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "shopify_app", "migrate"], cwd=ROOT,
                                env=dict(os.environ), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


def test_shop_settings_are_set_from_the_command_line_with_the_secret_encrypted(app):
    shops.save_tokens(SHOP, shops.Tokens(access_token="x"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["shop-settings", SHOP, "--payday-client-id", "cid", "--payday-secret", "s3cret",
                                 "--payday-env", "test", "--payment-type", "shopify_payments=pt-1",
                                 "--payment-type", "Peningar í kassa=pt-2", "--send-email", "--auto"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    loaded = shop_settings.load(shops.get(SHOP)["id"])
    assert (loaded.payday_client_id, loaded.payday_client_secret, loaded.payday_environment) == ("cid", "s3cret", "test")
    assert loaded.payment_types == {"shopify_payments": "pt-1", "Peningar í kassa": "pt-2"}
    assert loaded.send_email and loaded.auto_process
    with db.transaction() as conn:
        stored = conn.execute("SELECT payday_client_secret_enc FROM shop_settings").fetchone()["payday_client_secret_enc"]
    assert b"s3cret" not in bytes(stored) and crypto.decrypt(stored) == "s3cret"


def test_an_earlier_start_of_invoicing_from_the_command_line_asks_for_the_history(app):
    shops.save_tokens(SHOP, shops.Tokens(access_token="x"))
    result = app.test_cli_runner().invoke(args=["shop-settings", SHOP, "--invoices-from", "2026-01-01"])
    assert result.exit_code == 0, result.output
    start = shop_settings.load(shops.get(SHOP)["id"]).invoices_from
    assert start == datetime(2026, 1, 1, tzinfo=timezone.utc) and "invoices_from: 2026-01-01" in result.output
    assert [job_id.split("-")[0] for job_id in jobqueue.queue(history=True).job_ids] == ["backfill"]


def test_a_danish_shops_start_of_invoicing_is_a_day_in_denmark(app):
    shops.save_tokens(SHOP, shops.Tokens(access_token="x"))
    shop_settings.save(shops.get(SHOP)["id"], accounting="dinero")
    result = app.test_cli_runner().invoke(args=["shop-settings", SHOP, "--invoices-from", "2026-01-01"])
    assert result.exit_code == 0, result.output
    start = shop_settings.load(shops.get(SHOP)["id"]).invoices_from
    assert start == datetime(2025, 12, 31, 23, 0, tzinfo=timezone.utc)   # midnight in Copenhagen


def test_automatic_processing_needs_payday_first(app):
    shops.save_tokens(SHOP, shops.Tokens(access_token="x"))
    result = app.test_cli_runner().invoke(args=["shop-settings", SHOP, "--auto"])
    assert result.exit_code != 0 and "Payday connection" in result.output


def test_unknown_shop_is_refused(app):
    result = app.test_cli_runner().invoke(args=["shop-settings", "nobody.myshopify.com"])
    assert result.exit_code != 0 and "no installed shop" in result.output
