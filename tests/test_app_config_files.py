"""The files the platform reads: shopify.app.toml, Procfile, .env.example."""
from __future__ import annotations

import tomllib
from pathlib import Path

from shopify_app.config import REQUIRED_IN_PRODUCTION

ROOT = Path(__file__).resolve().parent.parent


def test_toml_declares_every_topic_we_handle():
    toml = tomllib.loads((ROOT / "shopify.app.toml").read_text())
    topics = {t for s in toml["webhooks"]["subscriptions"] for t in s.get("topics", [])}
    compliance = {t for s in toml["webhooks"]["subscriptions"] for t in s.get("compliance_topics", [])}
    assert {"returns/close", "returns/reopen", "returns/request", "returns/approve", "returns/decline",
            "returns/cancel", "returns/process", "returns/update", "refunds/create",
            "order_transactions/create", "app/uninstalled", "app/scopes_update"} <= topics
    # orders/updated carries protected customer data and wakes the app for any change to any
    # order: settlement in place is found by reconciliation instead (docs/SHOPIFY_MODEL.md).
    assert "orders/updated" not in topics
    assert set(toml["access_scopes"]["scopes"].split(",")) == {"read_orders", "read_all_orders", "read_returns"}
    assert compliance == {"customers/data_request", "customers/redact", "shop/redact"}
    assert toml["webhooks"]["api_version"] == "2026-10"
    assert all(s["uri"].startswith("https://") for s in toml["webhooks"]["subscriptions"])


def test_procfile_has_web_worker_and_release():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert "gunicorn" in lines["web"] and "$PORT" in lines["web"]
    assert lines["worker"].strip() == "python worker.py"
    assert "migrate" in lines["release"]


def test_env_example_documents_every_required_setting():
    text = (ROOT / ".env.example").read_text()
    for name in list(REQUIRED_IN_PRODUCTION) + ["SHOPIFY_API_SECRET_OLD", "SHOPIFY_SCOPES", "SHOPIFY_API_VERSION"]:
        assert f"{name}=" in text
