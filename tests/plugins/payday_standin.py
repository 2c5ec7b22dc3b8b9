"""The Payday stand-in for tests: one real HTTP server per session, emptied before each test."""
from __future__ import annotations

import pytest

from shopify_app.sandbox.accounting.payday import PaydayStandin

PAYDAY_CLIENT_ID = "payday-client"
PAYDAY_CLIENT_SECRET = "payday-secret"
PAYMENT_TYPES = ("Greiðslukort", "Millifærsla")


@pytest.fixture(scope="session")
def payday_standin():
    standin = PaydayStandin(number_delay=0).start()
    yield standin
    standin.stop()


@pytest.fixture
def payday(payday_standin):
    """The stand-in with one client (PAYDAY_CLIENT_ID / PAYDAY_CLIENT_SECRET) and two payment
    types; numbers are assigned by the next read (number_delay 0)."""
    payday_standin.reset()
    payday_standin.add_client(PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET)
    for title in PAYMENT_TYPES:
        payday_standin.add_payment_type(title)
    yield payday_standin
    payday_standin.reset()  # also abandons any request a test left held
