"""The stand-ins of the Danish accounting systems (e-conomic, Dinero, Billy) for tests: one real
HTTP server each per session, emptied before and after each test that uses it.

- `economic_standin`, `dinero_standin`, `billy_standin`: the running servers (session);
- `danish_books`: all three, emptied, with the environment the adapters (and forked workers)
  read pointing at them (ECONOMIC_BASE_URL, DINERO_BASE_URL, BILLY_BASE_URL);
- `danish_system`: the player's System with the three beside Shopify and Payday.
"""
from __future__ import annotations

import pytest

from shopify_app.sandbox.accounting import danish


@pytest.fixture(scope="session")
def economic_standin():
    from shopify_app.sandbox.accounting.economic import EconomicStandin

    standin = EconomicStandin().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def dinero_standin():
    from shopify_app.sandbox.accounting.dinero import DineroStandin

    standin = DineroStandin().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def billy_standin():
    from shopify_app.sandbox.accounting.billy import BillyStandin

    standin = BillyStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def danish_books(economic_standin, dinero_standin, billy_standin, monkeypatch):
    from shopify_app.accounting import dinero, economic

    books = {"economic": economic_standin, "dinero": dinero_standin, "billy": billy_standin}
    for standin in books.values():
        standin.reset()
    # The adapters' client-side limits are per process; jobs run in this one (RQ's SimpleWorker):
    # an earlier test's spent bucket or minute of requests must not hold this test back.
    economic._BUCKETS.clear()
    dinero._LIMITERS.clear()
    for name, standin in books.items():
        for var in danish.ENV[name]:
            monkeypatch.setenv(var, standin.url)
    yield books
    for standin in books.values():
        standin.reset()   # also abandons any request a test left held


@pytest.fixture
def danish_system(system, danish_books):
    """The player's whole system with the Danish stand-ins beside Shopify and Payday."""
    from dataclasses import replace

    return replace(system, **danish_books)
