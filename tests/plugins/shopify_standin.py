"""The Shopify stand-in for tests: one real HTTP server per test session, emptied per test.

- `shopify_standin`: the running stand-in (session), with the tests' client id and secret;
- `shopify_url_template`: where the app finds a shop's Admin API (session);
- `shopify`: the stand-in, reset before and after the test.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shopify_standin():
    from shopify_app.sandbox.shopify.standin import ShopifyStandin
    from tests.conftest import API_KEY, API_SECRET

    standin = ShopifyStandin(client_id=API_KEY, client_secret=API_SECRET).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def shopify_url_template(shopify_standin):
    return shopify_standin.shop_url_template


@pytest.fixture
def shopify(shopify_standin):
    shopify_standin.reset()
    yield shopify_standin
    shopify_standin.reset()
